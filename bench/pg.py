"""PostgreSQL benchmarks (bench/README.md, "PostgreSQL"): per operation, the SDK and the C++
Engine on the PostgreSQL store against the fewest raw libpq statements; throughput of 4
processes against 1 on one database; purge_expired of many expired workspaces by 1 and by
4 engines at once, exactly-once checked. Prints tables, then one line of JSON.

    .venv/bin/python bench/pg.py --url URL [--n 2000] [--purge-n 20000]
    .venv/bin/python bench/pg.py --url URL --latency-ms 1 --per-op-only   # behind a network's latency
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import recyclebin as rb
from latency_proxy import LatencyProxy

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
OPS = ("create", "get", "soft_delete", "list_page", "recover")


def via_port(url: str, port: int) -> str:
    """The URL with its port replaced (the same server, reached through a proxy)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)
    netloc = (host[0] + "@" if len(host) == 2 else "") + f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def schema_url(url: str) -> str:
    schema = "bench_" + uuid.uuid4().hex[:12]
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def sdk_per_op(url: str, n: int, pages: int) -> dict[str, float]:
    clock = rb.ManualClock(START)
    out: dict[str, float] = {}
    with rb.Engine.open(url, clock=clock) as engine:
        t = time.perf_counter()
        handles = [rb.Workspace.create("sub", "rg", f"ws{i}", engine=engine,
                                       components=[rb.Component("run_history", f"r{i}")])
                   for i in range(n)]
        out["create"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for i in range(n):
            rb.Workspace.get(f"ws{i}", "sub", "rg", engine=engine)
        out["get"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for ws in handles:
            clock.advance(timedelta(microseconds=1))
            ws.delete()
        out["soft_delete"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        cursor = None
        for _ in range(pages):
            page = rb.Workspace.list_deleted("sub", limit=100, cursor=cursor, engine=engine)
            cursor = page.next_cursor
        out["list_page"] = (time.perf_counter() - t) / pages * 1e6
        t = time.perf_counter()
        for i in range(0, n, 2):
            rb.Workspace.recover("sub", "rg", f"ws{i}", engine=engine)
        out["recover"] = (time.perf_counter() - t) / (n // 2) * 1e6
    return out


def core_per_op(binary: str, impl: str, url: str, n: int, pages: int) -> dict[str, float]:
    done = subprocess.run([binary, "--impl", impl, "--url", url, "--n", str(n), "--pages", str(pages)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        sys.exit(f"bench/pg.py: {binary} --impl {impl} failed: {done.stderr}")
    return json.loads(done.stdout)


# --- several processes --------------------------------------------------------------------

def _churn(url: str, index: int, count: int, barrier: Any, results: Any) -> None:
    with rb.Engine.open(url, clock=rb.ManualClock(START)) as engine:
        handles = [rb.Workspace.create("sub", f"rg-{index}", f"ws{i}", engine=engine) for i in range(count)]
        barrier.wait(timeout=600)
        t = time.perf_counter()
        for i, ws in enumerate(handles):
            ws.delete()
            rb.Workspace.recover("sub", f"rg-{index}", f"ws{i}", engine=engine)
        results.put(time.perf_counter() - t)


def throughput(url: str, processes: int, total: int) -> float:
    """Soft delete + recover pairs per second, `total` pairs split over `processes`."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    each = total // processes
    workers = [context.Process(target=_churn, args=(url, i, each, barrier, results)) for i in range(processes)]
    for w in workers:
        w.start()
    barrier.wait(timeout=600)
    t = time.perf_counter()
    for _ in workers:
        results.get(timeout=1800)
    elapsed = time.perf_counter() - t
    for w in workers:
        w.join(timeout=60)
    return each * processes / elapsed


def _purge(url: str, now: datetime, barrier: Any, results: Any) -> None:
    with rb.Engine.open(url, clock=rb.ManualClock(now)) as engine:
        barrier.wait(timeout=600)
        report = engine.purge_expired()
        results.put(([tuple(p) for p in report.purged], [t.id for t in report.cleanup]))


def purge(url: str, engines: int, count: int) -> dict[str, Any]:
    clock = rb.ManualClock(START)
    with rb.Engine.open(url, clock=clock) as engine:
        batch = []
        for i in range(count):
            batch.append(rb.Workspace.create("sub", f"rg-{i % 50}", f"ws{i}", soft_delete_retention_days=1,
                                             engine=engine, components=[rb.Component("run_history", f"r{i}")]))
            if len(batch) == 1000:
                rb.Workspace.delete_many(batch, engine=engine)
                batch = []
        if batch:
            rb.Workspace.delete_many(batch, engine=engine)
        now = START + timedelta(days=2)
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(engines + 1), context.Queue()
        workers = [context.Process(target=_purge, args=(url, now, barrier, results)) for _ in range(engines)]
        for w in workers:
            w.start()
        barrier.wait(timeout=600)
        t = time.perf_counter()
        reports = [results.get(timeout=1800) for _ in workers]
        elapsed = time.perf_counter() - t
        for w in workers:
            w.join(timeout=60)
        purged = [p for items, _ in reports for p in items]
        tasks = [task for _, ids in reports for task in ids]
        expires = Counter(r.action for r in engine.audit_log())["expire"]
        exactly_once = (len(purged) == len(set(purged)) == count and len(tasks) == len(set(tasks)) == count
                        and expires == count)
        return {"engines": engines, "workspaces": count, "seconds": elapsed, "per_second": count / elapsed,
                "per_engine": [len(items) for items, _ in reports], "exactly_once": exactly_once}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=2000, help="workspaces per per-operation case")
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="rounds of the per-operation cases (medians)")
    parser.add_argument("--churn", type=int, default=2000, help="soft delete + recover pairs, in all")
    parser.add_argument("--purge-n", type=int, default=20_000)
    parser.add_argument("--core-bin", default=str(ROOT / "build/bench/recyclebin_bench_pg"))
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="per operation: reach the server through a proxy that holds each message "
                             "this long each way (a network's latency; default 0: directly)")
    parser.add_argument("--per-op-only", action="store_true", help="only the per-operation cases")
    args = parser.parse_args()
    proxy = None
    if args.latency_ms > 0:
        port = urllib.parse.urlsplit(args.url).port
        if port is None:
            sys.exit("bench/pg.py: --latency-ms needs a URL with a port")
        proxy = LatencyProxy(port, args.latency_ms / 1000)
    op_url = via_port(args.url, proxy.port) if proxy else args.url

    rounds: dict[str, list[dict[str, float]]] = {"sdk": [], "engine": [], "raw": []}
    cases = {
        "raw": lambda: core_per_op(args.core_bin, "raw", schema_url(op_url), args.n, args.pages),
        "engine": lambda: core_per_op(args.core_bin, "engine", schema_url(op_url), args.n, args.pages),
        "sdk": lambda: sdk_per_op(schema_url(op_url), args.n, args.pages),
    }
    order = list(cases)
    for run in range(args.runs):
        # Each round in another order: a case that runs behind another's writes (autovacuum,
        # checkpoints) is not always the same one.
        for impl in order[run % len(order):] + order[:run % len(order)]:
            rounds[impl].append(cases[impl]())
    if proxy:
        proxy.close()
    per_op = {impl: {op: statistics.median(r[op] for r in runs) for op in OPS} for impl, runs in rounds.items()}
    behind = f", {args.latency_ms:g} ms added each way" if proxy else ""
    print(f"PostgreSQL, one client{behind}, N = {args.n:,} (median of {args.runs}), microseconds per operation")
    print(f"{'operation':<12} {'SDK':>9} {'C++ Engine':>11} {'raw libpq':>10} {'SDK/raw':>8}")
    for op in OPS:
        ratio = per_op["sdk"][op] / per_op["raw"][op]
        print(f"{op:<12} {per_op['sdk'][op]:>9.1f} {per_op['engine'][op]:>11.1f} {per_op['raw'][op]:>10.1f} "
              f"{ratio:>7.2f}x")

    if args.per_op_only:
        print(json.dumps({"per_op_us": per_op, "latency_ms": args.latency_ms}))
        return
    one = throughput(schema_url(args.url), 1, args.churn)
    four = throughput(schema_url(args.url), 4, args.churn)
    print(f"\nsoft delete + recover pairs per second on one database: 1 process {one:,.0f}, "
          f"4 processes {four:,.0f} ({four / one:.2f}x)")

    purges = [purge(schema_url(args.url), engines, args.purge_n) for engines in (1, 4)]
    for p in purges:
        print(f"purge_expired of {p['workspaces']:,} by {p['engines']} engine(s): {p['per_second']:,.0f} "
              f"workspaces/s ({p['seconds']:.2f} s; per engine {p['per_engine']}; "
              f"exactly once: {p['exactly_once']})")
    print(json.dumps({"per_op_us": per_op, "throughput": {"1": one, "4": four}, "purge": purges}))


if __name__ == "__main__":
    main()
