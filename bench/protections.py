"""What protections cost a purge sweep: ``purge_expired`` over N due workspaces, mixed, against
the same N workspaces plainly expired, in the same run, on the same store.

    .venv/bin/python bench/protections.py [--n 10000] [--url postgresql://...] [--runs 3]

Mixed (as the issue's test): of every five, one plainly expired, one expired and held (it
stays), one expired and purge-protected (expiry purges it as usual), one due for
auto-deletion, one due for auto-deletion but refused by a blocker fact. Plain: N expired
workspaces, nothing else. Each case on a fresh store (a SQLite file in a temporary
directory, or a fresh schema of ``--url``), timed around the one ``purge_expired()`` call
(wall and process CPU), median of ``--runs``. Prints a table and a last line of JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import recyclebin as rb

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SUB, RG = "bench-sub", "bench-rg"
POLICY = """version: 1
name: bench
retention: {default_days: 1, min_days: 1, max_days: 1}
preconditions: {blockers: [running_jobs]}
"""


def location(url: str | None, directory: Path) -> str:
    if url is None:
        return str(directory / f"{uuid.uuid4().hex}.db")
    schema = "bench_" + uuid.uuid4().hex[:16]
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def seed(engine: rb.Engine, n: int, mixed: bool) -> None:
    due = START + timedelta(hours=1)
    for i in range(n):
        kind = i % 5 if mixed else 0
        name = f"w{i}"
        if kind == 0:
            rb.Workspace.create(SUB, RG, name, engine=engine).delete()
        elif kind == 1:
            ws = rb.Workspace.create(SUB, RG, name, engine=engine)
            engine.place_hold(ws.id, "bench hold")
            ws.delete()
        elif kind == 2:
            rb.Workspace.create(SUB, RG, name, engine=engine, purge_protection=True).delete()
        else:
            rb.Workspace.create(SUB, RG, ("blocked-" if kind == 4 else "") + name, engine=engine,
                                auto_delete_at=due)


def one_run(n: int, mixed: bool, url: str | None, directory: Path) -> dict[str, float]:
    clock = rb.ManualClock(START)
    policy = rb.Policy.from_yaml(POLICY)
    with rb.Engine.open(location(url, directory), policy=policy, clock=clock) as engine:
        engine.set_facts_provider(lambda w: {"running_jobs": 1 if w.name.startswith("blocked") else 0})
        seed(engine, n, mixed)
        clock.set(START + timedelta(days=1))
        wall, cpu = time.perf_counter(), time.process_time()
        report = engine.purge_expired()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    handled = len(report.purged) + len(report.auto_deleted) + len(report.auto_delete_refused)
    expected = n if not mixed else n - n // 5  # the held ones stay, untouched
    if handled != expected:
        raise SystemExit(f"the sweep handled {handled} workspaces, expected {expected}")
    return {"wall_s": wall, "cpu_s": cpu, "handled": handled,
            "purged": len(report.purged), "auto_deleted": len(report.auto_deleted),
            "refused": len(report.auto_delete_refused)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (default: SQLite files)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, mixed in (("plain", False), ("mixed", True)):
            runs = [one_run(args.n, mixed, args.url, Path(tmp)) for _ in range(args.runs)]
            wall = statistics.median(r["wall_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            results[case] = {**runs[0], "wall_s": wall, "cpu_s": cpu,
                             "per_second": runs[0]["handled"] / wall}
    store = "postgresql" if args.url else "sqlite"
    print(f"purge_expired over {args.n} due workspaces ({store}, median of {args.runs})")
    print(f"{'case':<8}{'handled':>9}{'purged':>8}{'auto':>7}{'refused':>9}{'wall s':>9}{'cpu s':>8}{'per s':>10}")
    for case, r in results.items():
        print(f"{case:<8}{r['handled']:>9.0f}{r['purged']:>8.0f}{r['auto_deleted']:>7.0f}"
              f"{r['refused']:>9.0f}{r['wall_s']:>9.3f}{r['cpu_s']:>8.3f}{r['per_second']:>10.0f}")
    print(json.dumps({"store": store, "n": args.n, **results}))


if __name__ == "__main__":
    main()
