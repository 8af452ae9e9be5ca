"""The SDK's overhead over the C++ Engine, in instructions per operation (callgrind).

    .venv/bin/python bench/overhead.py                         # SDK vs C++ Engine, in-memory store
    .venv/bin/python bench/overhead.py --before /tmp/rb-old    # also an older build of the package

Wall times on a shared machine swing by 10-25% between runs; instruction counts do not. Each
figure is a difference of two runs under ``valgrind --tool=callgrind`` that differ only in
how many operations they make, so start-up and set-up cancel out:

- create: 2n creates minus n creates, over n;
- soft delete: n creates + n deletes, minus n creates, over n;
- list_deleted page (100 items): 6k pages minus k pages, over 5k;
- recover: n creates, deletes and n/2 recovers, minus the same without the recovers, over n/2.

The SDK runs bench/worker.py (rb.Workspace calls, in-memory store, ManualClock); the C++ Engine
runs build/bench/recyclebin_bench_core --impl engine, the same calls without Python.
The SDK's runs set PYTHONHASHSEED=0: with a random seed, str hashes (and so the layout of
dicts and sets) differ per process, which moves the counts by a few thousand instructions.
``--before DIR`` runs the SDK a second time with DIR first on PYTHONPATH (a copy of an older
installed ``recyclebin`` package, _core included), for a before/after of the same machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CORE_BIN = ROOT / "build/bench/recyclebin_bench_core"
OPERATIONS = ("create", "soft delete", "list_deleted page", "recover")
Run = Callable[[str, int, int], int]  # (ops, n, pages) -> instructions


def instructions(command: list[str], env: dict[str, str]) -> int:
    """Instructions executed by ``command`` under callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                       check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"overhead: no instruction count in callgrind's output for {command[0]}")
        return int(found.group(1))


def per_operation(run: Run, n: int, pages: int) -> dict[str, float]:
    """Instructions per operation, from runs that differ only in the operation's count."""
    creates = run("create", n, pages)
    deletes = run("create,delete", n, pages)
    return {
        "create": (run("create", 2 * n, pages) - creates) / n,
        "soft delete": (deletes - creates) / n,
        "list_deleted page": (run("create,delete,list", n, 6 * pages) - run("create,delete,list", n, pages))
        / (5 * pages),
        "recover": (run("create,delete,recover", n, pages) - deletes) / ((n + 1) // 2),
    }


def sdk(python_path: str | None) -> Run:
    env = dict(os.environ, PYTHONHASHSEED="0")  # str hashes, hence dict and set layouts, alike in every run
    if python_path:
        env["PYTHONPATH"] = python_path + os.pathsep + env.get("PYTHONPATH", "")
    scratch = tempfile.gettempdir()

    def run(ops: str, n: int, pages: int) -> int:
        return instructions([sys.executable, str(BENCH / "worker.py"), "--impl", "rb", "--mode", "memory",
                             "--n", str(n), "--pages", str(pages), "--ops", ops, "--dir", scratch], env)

    return run


def engine() -> Run:
    scratch = tempfile.gettempdir()

    def run(ops: str, n: int, pages: int) -> int:
        return instructions([str(CORE_BIN), "--impl", "engine", "--mode", "memory", "--n", str(n),
                             "--pages", str(pages), "--ops", ops, "--dir", scratch,
                             "--schema", str(BENCH / "ceiling_schema.sql")], dict(os.environ))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="workspaces per run (default 1,000)")
    parser.add_argument("--pages", type=int, default=20, help="list pages of the shorter list run (default 20)")
    parser.add_argument("--before", metavar="DIR", help="also the SDK with DIR first on PYTHONPATH")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("overhead: needs valgrind (apt-get install valgrind)")
    if not CORE_BIN.exists():
        raise SystemExit(f"overhead: needs {CORE_BIN.relative_to(ROOT)} (./scripts/bench.sh builds it, or "
                         "cmake --build build/bench --target recyclebin_bench_core)")

    columns = {"C++ Engine": per_operation(engine(), args.n, args.pages)}
    if args.before:
        columns["SDK before"] = per_operation(sdk(args.before), args.n, args.pages)
    columns["SDK"] = per_operation(sdk(None), args.n, args.pages)

    base = columns["C++ Engine"]
    sdks = [name for name in columns if name != "C++ Engine"]
    print(f"instructions per operation (callgrind), in-memory store, n={args.n:,}; "
          "overhead: SDK minus C++ Engine")
    print(f"{'operation':<18}" + "".join(f"{name:>14}" for name in columns)
          + "".join(f"{'overhead' + name[3:]:>18}" for name in sdks))
    for op in OPERATIONS:
        print(f"{op:<18}" + "".join(f"{column[op]:>14,.0f}" for column in columns.values())
              + "".join(f"{columns[name][op] - base[op]:>18,.0f}" for name in sdks))


if __name__ == "__main__":
    main()
