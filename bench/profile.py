"""Says where the time of each operation goes.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile.py [--mode memory|file] [--n 10000] [--pages 300]
    .venv/bin/python bench/profile.py --engine     # the C++ Engine alone, with perf

SDK (py-spy, native frames included): each sample is charged to the first frame from the leaf
up that is one of: SQLite (split by the store method that ran the statement, where the module
has symbols), engine C++ (recyclebin::), binding (pybind11, recyclebin::bindings), or Python
(the innermost .py frame). Samples are grouped by the facade operation on their stack.

--engine (perf record --call-graph dwarf on build/bench/recyclebin_bench_core --impl engine):
each sample of an Engine operation is charged to the store method whose SQL it was running
(read_workspaces/read_one: stepping a SELECT, e.g. find_deleted or find_by_id), or to the
engine's own C++.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OPERATIONS = {
    "Workspace.create": "create",
    "Workspace.delete": "soft delete",
    "Workspace.list_deleted": "list_deleted page",
    "Workspace.recover": "recover",
    "Workspace.delete_many": "delete_many",
    "Engine.purge_expired": "purge_expired",
}
STORE_METHOD = re.compile(r"(SqliteTransaction::~?\w+|Connection::exec|SqliteStore::\w+|Statement::\w+)")
PY_FRAME = re.compile(r"^(\S+) \((\S+\.py):\d+\)$")


def classify(frames: list[str]) -> tuple[str, str]:
    """(category, detail) for one stack, frames root first."""
    for i in range(len(frames) - 1, -1, -1):
        frame = frames[i]
        if "libsqlite3" in frame:
            for outer in reversed(frames[:i]):
                found = STORE_METHOD.search(outer)
                if found:
                    return "SQLite", found.group(1)
            return "SQLite", "?"
        if "pybind11::" in frame or "recyclebin::bindings" in frame:
            return "binding", ""
        if "recyclebin::" in frame:
            return "engine C++", re.sub(r"\(.*", "", frame.split(" (")[0])[:60]
        if "_core." in frame:  # a frame of recyclebin._core without a symbol (stripped wheel)
            return "engine C++ or binding (no symbols)", ""
        match = PY_FRAME.match(frame)
        if match:
            return "Python", f"{match.group(1)} ({os.path.basename(match.group(2))})"
    return "other", ""


ENGINE_OPERATIONS = {
    "Engine::create": "create",
    "Engine::remove_many": "soft delete",
    "Engine::list_deleted": "list_deleted page",
    "Engine::recover": "recover",
    "Engine::purge_expired": "purge_expired",
}
ENGINE_SQL = re.compile(r"(SqliteTransaction::~?\w+|Connection::exec|SqliteStore::\w+|read_workspaces|read_one)")


def profile_engine(args: argparse.Namespace) -> None:
    perf = shutil.which("perf")
    binary = BENCH.parent / "build/bench/recyclebin_bench_core"
    if not perf or not binary.exists():
        raise SystemExit("profile: needs perf and build/bench/recyclebin_bench_core (./scripts/bench.sh builds it)")
    data = Path(tempfile.mkdtemp()) / "perf.data"
    subprocess.run([perf, "record", "--call-graph", "dwarf,32768", "-F", "2000", "-o", str(data), "--",
                    str(binary), "--impl", "engine", "--mode", args.mode, "--n", str(args.n), "--pages",
                    str(args.pages), "--ops", "create,delete,list,recover,purge"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    script = subprocess.run([perf, "script", "-i", str(data)], check=True, capture_output=True, text=True).stdout
    by_op: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for sample in script.split("\n\n"):
        frames = [line.strip() for line in sample.strip().splitlines()[1:]]  # leaf first
        op = next((name for frame in frames for key, name in ENGINE_OPERATIONS.items()
                   if f"recyclebin::{key}(" in frame or f"recyclebin::{key}+" in frame), None)
        if op is None:
            continue
        where = "engine C++ (rules, records, strings)"
        for frame in frames:
            found = ENGINE_SQL.search(frame)
            if found:
                where = f"SQL in {found.group(1)}"
                break
            if "recyclebin::" in frame and "Statement::" not in frame:
                break
        by_op[op][where] += 1
    print(f"perf, C++ Engine, {args.mode} store, n={args.n:,}: where each operation's samples fall")
    for op in ENGINE_OPERATIONS.values():
        counts = by_op.get(op)
        if not counts:
            continue
        total = sum(counts.values())
        print(f"\n{op}: {total} samples")
        for where, count in counts.most_common():
            if count / total >= 0.02:
                print(f"  {100 * count / total:5.1f}%  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", default="memory", choices=["memory", "file"])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--engine", action="store_true", help="profile the C++ Engine alone, with perf")
    args = parser.parse_args()
    if args.engine:
        profile_engine(args)
        return
    py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if not py_spy:
        raise SystemExit("profile: py-spy is missing; .venv/bin/pip install py-spy")

    raw = Path(tempfile.mkdtemp()) / "profile.txt"
    subprocess.run([py_spy, "record", "--native", "--rate", str(args.rate), "--format", "raw", "--output", str(raw),
                    "--", sys.executable, str(BENCH / "worker.py"), "--impl", "rb", "--mode", args.mode,
                    "--n", str(args.n), "--pages", str(args.pages)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    by_op: dict[str, collections.Counter[tuple[str, str]]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        op = next((OPERATIONS[name] for frame in frames for name in OPERATIONS
                   if frame.startswith(name + " (")), None)
        if op is not None:
            by_op[op][classify(frames)] += int(count)

    print(f"py-spy, {args.mode} store, n={args.n:,}: where each SDK operation's samples fall")
    for op in OPERATIONS.values():
        counts = by_op.get(op)
        if not counts:
            continue
        total = sum(counts.values())
        print(f"\n{op}: {total} samples")
        categories: collections.Counter[str] = collections.Counter()
        for (category, _), count in counts.items():
            categories[category] += count
        for category, count in categories.most_common():
            print(f"  {100 * count / total:5.1f}%  {category}")
            details = [(d, c) for (cat, d), c in counts.items() if cat == category and d]
            for detail, c in sorted(details, key=lambda x: -x[1])[:6]:
                if c / total >= 0.02:
                    print(f"           {100 * c / total:5.1f}%  {detail}")


if __name__ == "__main__":
    main()
