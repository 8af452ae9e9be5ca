"""Runs every benchmark case, prints the tables and the targets, then one JSON line.

    python bench/run.py [--n N] [--quick] [--runs R] [--scale] ...   (see --help)

Normally started by ./scripts/bench.sh, which installs the package and builds the C++
program first. Each case runs in a fresh process on a fresh database; the order of the
implementations rotates from round to round, and every figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import ALL_OPS, PAGE_SIZE  # noqa: E402

IMPLS = ("rb", "engine", "django", "rawpy", "raw")
TITLES = {
    "rb": "recyclebin SDK (Python)",
    "engine": "recyclebin C++ Engine",
    "django": "django-safedelete",
    "rawpy": "raw sqlite3 (Python)",
    "raw": "raw SQLite (C)",
}
MODES = ("file", "memory", "full")
MODE_TITLES = {
    "file": "durable: file, WAL, synchronous=NORMAL",
    "memory": "in-memory (CPU cost without disk waits)",
    "full": "durable: file, WAL, synchronous=FULL",
}
FULL_OPS = ("create", "delete")
OP_TITLES = {
    "create": "create",
    "delete": "soft delete (one by one)",
    "list": f"list_deleted page of {PAGE_SIZE}",
    "recover": "recover (one by one)",
    "purge": "purge_expired",
    "delete_many": "delete_many (1,000 per call)",
}


# --- running cases ----------------------------------------------------------------------------

def run_json(command: list[str], label: str) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"bench: case {label} failed (exit {completed.returncode})")
    print(f"  {label:<44} {elapsed:6.1f} s", file=sys.stderr, flush=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def case_command(args: argparse.Namespace, impl: str, mode: str, n: int, ops: tuple[str, ...]) -> list[str]:
    common = ["--mode", mode, "--n", str(n), "--pages", str(args.pages), "--ops", ",".join(ops),
              "--dir", args.dir]
    if impl in ("engine", "raw"):
        return [str(args.core_bin), "--impl", impl, "--schema", str(BENCH / "ceiling_schema.sql"), *common]
    return [sys.executable, str(BENCH / "worker.py"), "--impl", impl, *common]


def rotate(items: tuple[str, ...], k: int) -> list[str]:
    k %= len(items)
    return list(items[k:] + items[:k])


def per_op(cases: list[dict]) -> dict[str, dict[str, float]]:
    """Median over rounds of wall and CPU microseconds per operation (per row for purge)."""
    out: dict[str, dict[str, float]] = {}
    for op in ALL_OPS:
        samples = [c["ops"][op] for c in cases if op in c["ops"] and c["ops"][op]["count"] > 0]
        if not samples:
            continue
        out[op] = {
            "count": samples[0]["count"],
            "wall_us": statistics.median(s["wall_s"] / s["count"] * 1e6 for s in samples),
            "cpu_us": statistics.median(s["cpu_s"] / s["count"] * 1e6 for s in samples),
            "written_b": statistics.median(s.get("written", 0) / s["count"] for s in samples),
            "runs": len(samples),
        }
    return out


# --- reporting --------------------------------------------------------------------------------

def fmt_us(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} ms"
    return f"{value:.1f} µs" if value >= 10 else f"{value:.2f} µs"


def fmt_rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k/s"
    return f"{per_second:.0f} /s"


class Report:
    """Rich tables when rich is there (it is a dependency of recyclebin), plain text if not."""

    def __init__(self) -> None:
        try:
            from rich.console import Console

            width = None if sys.stdout.isatty() else 170
            self.console = Console(width=width)
        except ImportError:
            self.console = None

    def table(self, title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> None:
        if self.console is not None:
            from rich.table import Table

            table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
            for i, column in enumerate(columns):
                table.add_column(column, justify="left" if i == 0 else "right")
            for row in rows:
                style = None
                if row and row[-1] in ("PASS", "MISS"):
                    style = "green" if row[-1] == "PASS" else "red"
                table.add_row(*row, style=style)
            self.console.print(table)
            return
        widths = [max(len(str(x)) for x in [c, *[r[i] for r in rows]]) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for row in rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        if caption:
            print(caption)
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description="recyclebin benchmarks (bench/README.md)")
    parser.add_argument("--n", type=int, default=None, help="workspaces per case (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=2,000 (unless --n is given)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; figures are medians (default 3)")
    parser.add_argument("--pages", type=int, default=1000, help="list_deleted pages per case (default 1,000)")
    parser.add_argument("--peer-n", type=int, default=None,
                        help="workspaces for django-safedelete (default: N, at most 5,000: it is the slow one)")
    parser.add_argument("--full-n", type=int, default=None,
                        help="workspaces for the synchronous=FULL row (default: N, at most 1,000)")
    parser.add_argument("--threads", type=int, default=8, help="threads in the threads case (default 8)")
    parser.add_argument("--thread-n", type=int, default=None,
                        help="workspaces in the threads case (default: N, at most 5,000)")
    parser.add_argument("--scale", action="store_true", help="also the scale row: 10k, 100k, 1M workspaces")
    parser.add_argument("--scale-only", action="store_true", help="only the scale row")
    parser.add_argument("--scale-points", default="10000,100000,1000000",
                        help="checkpoints of the scale row (default 10000,100000,1000000)")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"subset of {','.join(IMPLS)}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"subset of {','.join(MODES)}")
    parser.add_argument("--no-threads", action="store_true", help="skip the threads case")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the database files go")
    parser.add_argument("--core-bin", default=str(ROOT / "build/bench/recyclebin_bench_core"),
                        help="the C++ program (built by scripts/bench.sh)")
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 20_000)
    peer_n = args.peer_n or min(n, 5_000)
    full_n = args.full_n or min(n, 1_000)
    thread_n = args.thread_n or min(n, 5_000)
    impls = tuple(i for i in IMPLS if i in args.impls.split(","))
    modes = tuple(m for m in MODES if m in args.modes.split(","))
    if args.scale_only:
        args.scale, args.runs, modes = True, 0, ()
    if ("engine" in impls or "raw" in impls) and not Path(args.core_bin).exists():
        raise SystemExit(f"bench: {args.core_bin} is missing; run ./scripts/bench.sh (it builds it)")

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    print(f"bench: N={n:,}, {args.runs} rounds, {len(impls)} implementations, modes {', '.join(modes)}; "
          f"load average {load_before:.2f}", file=sys.stderr)
    cases: dict[tuple[str, str], list[dict]] = {}
    threads: dict[tuple[str, int, str], list[dict]] = {}
    # Threads run with NORMAL (commits wait for the CPU) and FULL (commits wait for the disk,
    # fewer workspaces: the slow one).
    thread_modes = [("file", thread_n)] + ([("full", min(thread_n, full_n))] if "full" in modes else [])
    for round_ in range(args.runs):
        print(f"round {round_ + 1}/{args.runs}", file=sys.stderr)
        for mode in modes:
            ops = FULL_OPS if mode == "full" else ALL_OPS
            for impl in rotate(impls, round_):
                count = full_n if mode == "full" else peer_n if impl == "django" else n
                label = f"{mode:<6} {impl:<7} n={count}"
                cases.setdefault((mode, impl), []).append(
                    run_json(case_command(args, impl, mode, count, ops), label))
        if not args.no_threads:
            for thread_mode, count in thread_modes:
                for impl in rotate(tuple(i for i in ("rb", "engine", "raw") if i in impls), round_):
                    for t in ([1, args.threads] if round_ % 2 == 0 else [args.threads, 1]):
                        if impl == "rb":
                            command = [sys.executable, str(BENCH / "worker.py"), "--threads", str(t)]
                        else:
                            command = [str(args.core_bin), "--impl", impl, "--threads", str(t),
                                       "--schema", str(BENCH / "ceiling_schema.sql")]
                        command += ["--mode", thread_mode, "--n", str(count), "--dir", args.dir]
                        threads.setdefault((impl, t, thread_mode), []).append(
                            run_json(command, f"threads {thread_mode:<4} {impl:<7} t={t} n={count}"))
    scale = None
    if args.scale:
        command = [sys.executable, str(BENCH / "worker.py"), "--scale", args.scale_points, "--dir", args.dir]
        scale = run_json(command, f"scale {args.scale_points}")
    elapsed = time.perf_counter() - started

    results = {mode: {impl: per_op(cases[(mode, impl)]) for impl in impls if (mode, impl) in cases}
               for mode in modes}
    sizes = {impl: statistics.median(c.get("db_bytes", 0) for c in cases[("file", impl)]) / (
        peer_n if impl == "django" else n) for impl in impls if ("file", impl) in cases}
    rss = {impl: max((c.get("peak_rss_kb", 0) for m in modes if (m, impl) in cases for c in cases[(m, impl)]),
                     default=0)
           for impl in impls}
    thread_figures = {thread_key(impl, t, m): {"impl": impl, "threads": t, "mode": m,
                                               "ops_per_s": statistics.median(r["ops_per_s"] for r in runs),
                                               "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                                               "wall_s": statistics.median(r["wall_s"] for r in runs),
                                               "ops": runs[0]["ops"]}
                      for (impl, t, m), runs in threads.items()}

    report = Report()
    render_results(report, results, impls, modes, n, peer_n, full_n, sizes, rss)
    for thread_mode, count in thread_modes:
        figures = {k: f for k, f in thread_figures.items() if f["mode"] == thread_mode}
        if figures:
            render_threads(report, figures, count, thread_mode)
    if scale:
        render_scale(report, scale)
    targets = compute_targets(results, thread_figures, scale, args.threads)
    render_targets(report, targets)
    print(f"bench: done in {elapsed:.0f} s (load average now {os.getloadavg()[0]:.2f})", file=sys.stderr)

    summary = {
        "bench": "recyclebin",
        "n": n, "peer_n": peer_n, "full_n": full_n, "thread_n": thread_n, "runs": args.runs,
        "pages": args.pages, "page_size": PAGE_SIZE,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "sqlite": cases.get(("file", "raw"), [{}])[0].get("sqlite"),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()[0]},
        "units": "wall_us/cpu_us per operation (per workspace for purge and delete_many)",
        "results": results,
        "db_bytes_per_workspace": sizes,
        "peak_rss_kb": rss,
        "threads": thread_figures,
        "scale": scale,
        "targets": targets,
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(summary, separators=(",", ":")))


def render_results(report: Report, results: dict, impls: tuple[str, ...], modes: tuple[str, ...], n: int,
                   peer_n: int, full_n: int, sizes: dict, rss: dict) -> None:
    columns = ["operation", *[TITLES[i] for i in impls]]
    for mode in modes:
        rows = []
        for op in (FULL_OPS if mode == "full" else ALL_OPS):
            row = [OP_TITLES[op]]
            for impl in impls:
                figure = results[mode].get(impl, {}).get(op)
                if figure is None:
                    row.append("-")
                elif op == "purge":
                    row.append(f"{fmt_rate(1e6 / figure['wall_us'])} ({fmt_rate(1e6 / figure['cpu_us'])})")
                else:
                    row.append(f"{fmt_us(figure['wall_us'])} ({fmt_us(figure['cpu_us'])})")
            rows.append(row)
        if mode == "file":
            rows.append(["db size per workspace", *[f"{sizes.get(i, 0):.0f} B" for i in impls]])
            rows.append(["peak RSS (any mode)", *[f"{rss.get(i, 0) / 1024:.0f} MiB" for i in impls]])
        if mode == "file":
            for op in ALL_OPS:
                figures = [results[mode].get(impl, {}).get(op) for impl in impls]
                rows.append([f"  bytes written / {op}",
                             *["-" if f is None else f"{f['written_b'] / 1024:.1f} KiB" for f in figures]])
        count = f"N={full_n:,}" if mode == "full" else f"N={n:,}" + (
            f" (django-safedelete: {peer_n:,})" if peer_n != n and "django" in impls else "")
        report.table(f"{MODE_TITLES[mode]} — {count}", columns, rows,
                     "wall time per operation (CPU time in parentheses), median of the rounds; "
                     "purge: workspaces/s with audit records and cleanup tasks")


def thread_key(impl: str, threads: int, mode: str) -> str:
    """"rb/8" for the NORMAL row (the key earlier runs used), "rb/8/full" for FULL."""
    return f"{impl}/{threads}" + ("" if mode == "file" else f"/{mode}")


def render_threads(report: Report, figures: dict, thread_n: int, mode: str) -> None:
    rows = []
    for f in sorted(figures.values(), key=lambda f: (IMPLS.index(f["impl"]), f["threads"])):
        single = figures.get(thread_key(f["impl"], 1, mode), {}).get("ops_per_s")
        speedup = f"{f['ops_per_s'] / single:.2f}x" if single else "-"
        rows.append([TITLES[f["impl"]], str(f["threads"]), f"{f['ops']:,}", fmt_rate(f["ops_per_s"]),
                     f"{f['cpu_s'] / f['wall_s'] * 100:.0f}%", speedup])
    setting = "synchronous=FULL: each commit waits for the disk" if mode == "full" else "synchronous=NORMAL"
    report.table(f"threads: soft delete + recover of each workspace, durable file ({setting}), "
                 f"{thread_n:,} workspaces",
                 ["implementation", "threads", "operations", "throughput", "CPU use", "vs 1 thread"], rows,
                 f"{os.cpu_count()} CPUs on this machine; CPU use = process CPU time / wall time "
                 "(100% = one core busy)")


def render_scale(report: Report, scale: dict) -> None:
    rows = []
    for p in scale["points"]:
        rows.append([f"{p['workspaces']:,}", f"{p['in_bin']:,}", fmt_us(p["create_us"]), fmt_us(p["delete_us"]),
                     fmt_us(p["recover_us"]), fmt_us(p["list_page_us"]), fmt_us(p["list_first_pages_us"]), fmt_us(p["list_last_pages_us"]),
                     f"{p['bytes_per_workspace']:.0f} B", f"{p['peak_rss_kb'] / 1024:.0f} MiB"])
    report.table(f"scale: SDK, durable file (window of {scale['window']:,} operations at each point)",
                 ["workspaces", "in bin", "create", "soft delete", "recover", "list page (all)", "first 100 pages",
                  "last 100 pages", "db/workspace", "peak RSS"], rows,
                 f"wall time per operation; filling took {scale['fill_wall_s']:.0f} s")


# --- targets ----------------------------------------------------------------------------------

def compute_targets(results: dict, threads: dict, scale: dict | None, thread_count: int) -> list[dict]:
    targets: list[dict] = []

    def get(mode: str, impl: str, op: str, key: str) -> float | None:
        return results.get(mode, {}).get(impl, {}).get(op, {}).get(key)

    def add(name: str, measured: float | None, versus: float | None, versus_label: str, limit: float,
            kind: str, unit: str = "µs") -> None:
        """kind 'within': time measured/versus <= limit; 'faster': time versus/measured >= limit;
        'rate_ratio': rate measured/versus >= limit; 'at_least': measured >= limit (no versus)."""
        if measured is None or (versus is None and kind != "at_least"):
            return
        if kind == "within":
            ratio = measured / versus
            ok = ratio <= limit
            need = f"≤ {limit:g}x"
        elif kind == "faster":
            ratio = versus / measured
            ok = ratio >= limit
            need = f"≥ {limit:g}x"
        elif kind == "rate_ratio":
            ratio = measured / versus
            ok = ratio >= limit
            need = f"≥ {limit:g}x"
        else:
            ratio = measured / limit
            ok = measured >= limit
            need = f"≥ {limit:,.0f} {unit}"
        targets.append({"target": name, "measured": measured, "versus": versus, "versus_label": versus_label,
                        "unit": unit, "ratio": ratio, "required": need, "pass": ok})

    for op in ("delete", "recover", "create"):
        sdk = get("file", "rb", op, "wall_us")
        add(f"durable {op}: SDK within 1.3x of raw C single-statement commit", sdk,
            get("file", "raw", op, "wall_us"), "raw C", 1.3, "within")
        add(f"durable {op}: SDK within 1.3x of raw Python sqlite3 (same language)", sdk,
            get("file", "rawpy", op, "wall_us"), "raw py", 1.3, "within")
        add(f"durable {op}: SDK ≥4x faster than django-safedelete", sdk,
            get("file", "django", op, "wall_us"), "django", 4, "faster")
    for op in ("delete", "recover", "create"):
        sdk = get("memory", "rb", op, "cpu_us")
        add(f"in-memory CPU/{op}: SDK ≤2x raw C", sdk, get("memory", "raw", op, "cpu_us"), "raw C", 2, "within")
        add(f"in-memory CPU/{op}: SDK ≤2x raw Python sqlite3", sdk, get("memory", "rawpy", op, "cpu_us"),
            "raw py", 2, "within")
        add(f"in-memory CPU/{op}: SDK ≥20x below django-safedelete", sdk,
            get("memory", "django", op, "cpu_us"), "django", 20, "faster")
    sdk = get("file", "rb", "list", "wall_us")
    add("list_deleted page of 100: SDK ≤1.5x raw C query", sdk, get("file", "raw", "list", "wall_us"),
        "raw C", 1.5, "within")
    add("list_deleted page of 100: SDK ≥10x faster than django-safedelete", sdk,
        get("file", "django", "list", "wall_us"), "django", 10, "faster")
    purge = get("file", "rb", "purge", "wall_us")
    if purge:
        add("purge_expired (durable) ≥300,000 workspaces/s with audit + cleanup tasks", 1e6 / purge, None, "",
            300_000, "at_least", "workspaces/s")
    if scale and len(scale["points"]) >= 2:
        first, last = scale["points"][0], scale["points"][-1]
        label = f"at {first['workspaces']:,}"
        for key, title in (("create_us", "create"), ("delete_us", "soft delete"), ("list_page_us", "list page")):
            add(f"scale: {title} at {last['workspaces']:,} within 1.5x of {first['workspaces']:,}",
                last[key], first[key], label, 1.5, "within")
    for mode, setting in (("file", "synchronous=NORMAL"), ("full", "synchronous=FULL")):
        single, multi = threads.get(thread_key("rb", 1, mode)), threads.get(thread_key("rb", thread_count, mode))
        if single and multi and thread_count != 1:
            add(f"{thread_count} threads ≥3x single-thread durable throughput (SDK, {setting})",
                multi["ops_per_s"], single["ops_per_s"], "1 thread", 3, "rate_ratio", "ops/s")
    return targets


def render_targets(report: Report, targets: list[dict]) -> None:
    rows = []
    for t in targets:
        if t["unit"] == "µs":
            measured, versus = fmt_us(t["measured"]), f"{fmt_us(t['versus'])} ({t['versus_label']})"
        elif t["versus"] is None:
            measured, versus = fmt_rate(t["measured"]), "-"
        else:
            measured, versus = fmt_rate(t["measured"]), f"{fmt_rate(t['versus'])} ({t['versus_label']})"
        ratio = f"{t['ratio']:.2f}x" if t["versus"] is not None else f"{t['ratio']:.2f} of goal"
        rows.append([t["target"], measured, versus, ratio, t["required"], "PASS" if t["pass"] else "MISS"])
    passed = sum(t["pass"] for t in targets)
    report.table(f"targets: {passed} of {len(targets)} met", ["target", "measured", "compared with", "ratio",
                                                                "required", "result"], rows,
                 "ratio: SDK/comparison for 'within', comparison/SDK for 'faster'")


if __name__ == "__main__":
    main()
