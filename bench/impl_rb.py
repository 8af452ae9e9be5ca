"""recyclebin through its Python SDK: the facade platforms call (rb.Workspace, rb.Engine).

Besides the operation sequence, two cases only recyclebin has here: threads (many threads
deleting and recovering through one engine) and scale (per-operation cost as the store
grows to a million workspaces).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sqlite3
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone

from common import (
    BATCH,
    COMPONENT_KIND,
    PAGE_SIZE,
    RETENTION_DAYS,
    SUBSCRIPTION,
    CaseResult,
    db_bytes,
    fresh_path,
    group_of,
    name_of,
    peak_rss_kb,
    ref_of,
    remove_db,
)

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

# --- synchronous=FULL -------------------------------------------------------------------------
# The store sets synchronous=NORMAL on every connection it opens and offers no option. For
# the FULL row, an SQLite auto extension (registered in the one libsqlite3 this process
# shares with recyclebin._core) sets FULL on each new connection and installs an authorizer
# that ignores the store's own "PRAGMA synchronous = NORMAL".

_SQLITE_PRAGMA = 19
_SQLITE_IGNORE = 2
_AUTHORIZER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p)
_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_keep_alive: list[object] = []
ignored_synchronous = 0


def force_synchronous_full() -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    lib.sqlite3_exec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p]
    lib.sqlite3_set_authorizer.argtypes = [ctypes.c_void_p, _AUTHORIZER, ctypes.c_void_p]
    lib.sqlite3_auto_extension.argtypes = [_ENTRY]

    @_AUTHORIZER
    def authorizer(_arg, action, arg1, arg2, _db, _trigger):  # type: ignore[no-untyped-def]
        global ignored_synchronous
        if action == _SQLITE_PRAGMA and arg1 and arg2 and arg1.lower() == b"synchronous":
            ignored_synchronous += 1
            return _SQLITE_IGNORE
        return 0

    @_ENTRY
    def entry(db, _errmsg, _api):  # type: ignore[no-untyped-def]
        lib.sqlite3_exec(db, b"PRAGMA synchronous = FULL", None, None, None)
        lib.sqlite3_set_authorizer(db, authorizer, None)
        return 0

    _keep_alive.extend([lib, authorizer, entry])
    lib.sqlite3_auto_extension(entry)


# --- the operation sequence -------------------------------------------------------------------

def open_engine(mode: str, directory: str, label: str):  # type: ignore[no-untyped-def]
    import recyclebin as rb

    clock = rb.ManualClock(START)
    path = None if mode == "memory" else fresh_path(directory, label)
    return rb.Engine.open(path or ":memory:", policy="default", clock=clock), clock, path


def run(mode: str, n: int, pages: int, ops: set[str], directory: str) -> CaseResult:
    import recyclebin as rb

    if mode == "full":
        force_synchronous_full()
    engine, clock, path = open_engine(mode, directory, f"rb-{mode}")
    result = CaseResult("rb", mode, n)
    Workspace, Component = rb.Workspace, rb.Component
    workspaces: list[rb.Workspace] = []

    if "create" in ops:
        with result.timed("create", n):
            for i in range(n):
                workspaces.append(Workspace.create(
                    SUBSCRIPTION, group_of(i), name_of(i),
                    components=[Component(COMPONENT_KIND, ref_of(i))], engine=engine))

    if "delete" in ops:
        with result.timed("delete", n):
            for workspace in workspaces:
                workspace.delete()

    if "list" in ops:
        with result.timed("list", pages) as record:
            cursor = None
            rows = 0
            for _ in range(pages):
                page = Workspace.list_deleted(SUBSCRIPTION, limit=PAGE_SIZE, cursor=cursor, engine=engine)
                rows += len(page)
                cursor = page.next_cursor  # None after the last page: start over
            record["rows"] = rows

    if "recover" in ops:
        with result.timed("recover", (n + 1) // 2):
            for i in range(0, n, 2):
                Workspace.recover(SUBSCRIPTION, group_of(i), name_of(i), engine=engine)

    if "purge" in ops:
        clock.advance(timedelta(days=RETENTION_DAYS + 1))
        with result.timed("purge") as record:
            report = engine.purge_expired()
            record["count"] = len(report.purged)
        if len(report.cleanup) != len(report.purged):
            raise RuntimeError("purge_expired wrote no cleanup task for some workspaces")

    if "delete_many" in ops:
        live = workspaces[0::2]
        with result.timed("delete_many", len(live)):
            for start in range(0, len(live), BATCH):
                Workspace.delete_many(live[start:start + BATCH], engine=engine)

    engine.close()
    if mode == "full":
        result.extra["ignored_synchronous_pragmas"] = ignored_synchronous
        if ignored_synchronous == 0:
            raise RuntimeError("synchronous=FULL was not forced on the store's connections")
    if path is not None:
        result.extra["db_bytes"] = db_bytes(path)
        remove_db(path)
    return result


# --- threads ----------------------------------------------------------------------------------

def run_threads(threads: int, n: int, directory: str, mode: str = "file") -> dict[str, object]:
    """``threads`` threads, each deleting then recovering its own share of ``n`` workspaces
    through one engine (durable file store; ``mode`` "full": synchronous=FULL, every commit
    waits for the disk); throughput in operations per second."""
    import recyclebin as rb

    if mode == "full":
        force_synchronous_full()
    engine, _clock, path = open_engine(mode, directory, f"rb-threads{threads}")
    workspaces = [rb.Workspace.create(SUBSCRIPTION, group_of(i), name_of(i),
                                      components=[rb.Component(COMPONENT_KIND, ref_of(i))], engine=engine)
                  for i in range(n)]
    shares = [workspaces[t::threads] for t in range(threads)]
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(share: list[rb.Workspace]) -> None:
        barrier.wait()
        try:
            for workspace in share:
                workspace.delete()
                rb.Workspace.recover(SUBSCRIPTION, workspace.resource_group, workspace.name, engine=engine)
        except BaseException as error:  # reported below, after every thread is done
            errors.append(error)

    pool = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in pool:
        thread.start()
    barrier.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in pool:
        thread.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.close()
    remove_db(path)
    if errors:
        raise errors[0]
    if mode == "full" and not ignored_synchronous:
        raise RuntimeError("synchronous=FULL was not forced on the store's connections")
    return {"impl": "rb", "mode": mode, "case": "threads", "threads": threads, "n": n,
            "ops": 2 * n, "wall_s": wall, "cpu_s": cpu, "ops_per_s": 2 * n / wall,
            "peak_rss_kb": peak_rss_kb()}


# --- scale ------------------------------------------------------------------------------------

def run_scale(checkpoints: list[int], window: int, directory: str) -> dict[str, object]:
    """Grows one durable store to each checkpoint (about half the rows soft-deleted) and
    measures there: ``window`` creates, soft deletes and recovers of new workspaces, and every
    list_deleted page of 100 from newest to oldest."""
    import recyclebin as rb

    engine, _clock, path = open_engine("file", directory, "rb-scale")
    Workspace, Component = rb.Workspace, rb.Component
    created = 0
    points = []
    fill_wall = 0.0

    def create(i: int) -> rb.Workspace:
        return Workspace.create(SUBSCRIPTION, group_of(i), name_of(i),
                                components=[Component(COMPONENT_KIND, ref_of(i))], engine=engine)

    for checkpoint in checkpoints:
        started = time.perf_counter()
        while created < checkpoint - window:
            workspace = create(created)
            if created % 2:
                workspace.delete()
            created += 1
        fill_wall += time.perf_counter() - started

        wall, cpu = time.perf_counter(), time.process_time()
        fresh = [create(created + k) for k in range(window)]
        create_wall, create_cpu = time.perf_counter() - wall, time.process_time() - cpu
        created += window
        wall, cpu = time.perf_counter(), time.process_time()
        for workspace in fresh:
            workspace.delete()
        delete_wall, delete_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        for workspace in fresh:
            Workspace.recover(SUBSCRIPTION, workspace.resource_group, workspace.name, engine=engine)
        recover_wall, recover_cpu = time.perf_counter() - wall, time.process_time() - cpu
        for workspace in fresh:  # back in the bin: half the rows stay soft-deleted
            workspace.delete()
        del fresh

        page_times = []
        cursor = None
        listed = 0
        while True:
            wall = time.perf_counter()
            page = Workspace.list_deleted(SUBSCRIPTION, limit=PAGE_SIZE, cursor=cursor, engine=engine)
            page_times.append(time.perf_counter() - wall)
            listed += len(page)
            cursor = page.next_cursor
            if cursor is None:
                break

        with sqlite3.connect(path) as checkpoint_connection:  # fold the WAL in before measuring size
            checkpoint_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db_bytes(path)
        points.append({
            "workspaces": created,
            "in_bin": listed,
            "create_us": create_wall / window * 1e6,
            "create_cpu_us": create_cpu / window * 1e6,
            "delete_us": delete_wall / window * 1e6,
            "delete_cpu_us": delete_cpu / window * 1e6,
            "recover_us": recover_wall / window * 1e6,
            "recover_cpu_us": recover_cpu / window * 1e6,
            "list_page_us": statistics.median(page_times) * 1e6,
            "list_first_pages_us": statistics.median(page_times[:100]) * 1e6,
            "list_last_pages_us": statistics.median(page_times[-100:]) * 1e6,
            "pages": len(page_times),
            "db_bytes": size,
            "bytes_per_workspace": size / created,
            "peak_rss_kb": peak_rss_kb(),
        })
    engine.close()
    remove_db(path)
    return {"impl": "rb", "mode": "file", "case": "scale", "window": window, "points": points,
            "fill_wall_s": fill_wall, "peak_rss_kb": peak_rss_kb()}
