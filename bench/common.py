"""What every benchmark case shares: the workload's names, timing, and the result record.

A case runs in its own process (bench/worker.py) on a fresh database, so one case's heap,
caches and connections never colour another's numbers.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SUBSCRIPTION = "sub-bench"
GROUPS = 100                 # workspaces are spread over this many resource groups
RETENTION_DAYS = 14          # the default policy's retention
PAGE_SIZE = 100
BATCH = 1000                 # delete_many batch size
COMPONENT_KIND = "run_history"   # retained by the default policy: purge writes its cleanup task
JAN1_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds
DAY_US = 86_400 * 1_000_000

ALL_OPS = ("create", "delete", "list", "recover", "purge", "delete_many")


def group_of(i: int) -> str:
    return f"rg-{i % GROUPS}"


def name_of(i: int) -> str:
    return f"ws-{i}"


def ref_of(i: int) -> str:
    return f"blob/{i}"


def fresh_path(directory: str, label: str) -> str:
    """A database path that does not exist yet (with no WAL or SHM file beside it)."""
    path = os.path.join(directory, f"bench-{label}-{os.getpid()}.db")
    remove_db(path)
    return path


def remove_db(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def db_bytes(path: str) -> int:
    """The database file plus its WAL."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(path + suffix)
        except FileNotFoundError:
            pass
    return total


def written_bytes() -> int:
    """Bytes this process handed to write() so far (/proc/self/io ``wchar``): with WAL, what
    each commit appends to the log. 0 where /proc is missing."""
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@dataclass
class CaseResult:
    """Per operation: how many were done, wall seconds, process CPU seconds."""

    impl: str
    mode: str
    n: int
    ops: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    @contextmanager
    def timed(self, op: str, count: int | None = None) -> Iterator[dict[str, float]]:
        """Times the block (wall: perf_counter, CPU: process_time, all threads). The block
        may set ``record["count"]`` when the count is known only afterwards."""
        gc.collect()
        record: dict[str, float] = {"count": float(count or 0)}
        written = written_bytes()
        wall, cpu = time.perf_counter(), time.process_time()
        yield record
        record["wall_s"] = time.perf_counter() - wall
        record["cpu_s"] = time.process_time() - cpu
        record["written"] = written_bytes() - written
        self.ops[op] = record

    def as_json(self) -> dict[str, object]:
        return {
            "impl": self.impl,
            "mode": self.mode,
            "n": self.n,
            "peak_rss_kb": peak_rss_kb(),
            "ops": {op: {"count": int(r["count"]), "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                         "written": int(r["written"])}
                    for op, r in self.ops.items()},
            **self.extra,
        }
