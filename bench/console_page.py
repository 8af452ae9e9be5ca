"""The console's recycle-bin page with 100 rows: what the server does to show it.

    .venv/bin/python bench/console_page.py [--rows 100] [--requests 300]

Starts a real ``recyclebin serve`` on a free 127.0.0.1 port (file database, default
policy, a temporary token file), puts ``--rows`` workspaces in one subscription's recycle
bin, then times, over one keep-alive HTTP connection as a browser would hold it, what the
page costs the server each time it is opened:

- ``GET /console/recycle-bin?subscription=...&limit=100`` (the HTML);
- ``GET /subscriptions/{s}/deletedWorkspaces?limit=100`` (its API call, 100 rows of JSON);
- ``GET /subscriptions/{s}/policy`` (the rules the page reads once, in parallel with the
  list in the browser; counted here in sequence).

The script and style sheet are left out: the browser revalidates them with their ETag
(304) or takes them from its cache. Prints the median and 95th percentile of each and of
the whole (target: the whole under 50 ms), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TARGET_MS = 50.0
TOKEN = "bench-console-token"
SUB = "bench-sub"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps({TOKEN: {"principal": "bench", "platform": True}}))
    port = _free_port()
    script = Path(sys.executable).parent / "recyclebin"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "recyclebin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECYCLEBIN_")}
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--db",
         str(directory / "rb.db"), "--tokens", str(tokens), "--reaper-interval", "0",
         "--log-level", "warning"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(base + "/healthz", timeout=1, trust_env=False).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start:\n" +
                     (directory / "server.log").read_text(errors="replace"))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100, help="workspaces in the bin")
    parser.add_argument("--requests", type=int, default=300, help="page loads to time")
    args = parser.parse_args()
    if not 1 <= args.rows <= 1000 or not 1 <= args.requests <= 100_000:
        parser.error("--rows 1..1000 (one page), --requests 1..100000")

    with tempfile.TemporaryDirectory(prefix="rb-console-bench-") as tmp:
        process, base = _serve(Path(tmp))
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=headers, timeout=10,
                              trust_env=False) as api:
                for i in range(args.rows):
                    path = f"/subscriptions/{SUB}/resourceGroups/rg-{i % 7}/workspaces/ws-{i:04d}"
                    assert api.put(path).status_code == 201
                    assert api.delete(path).status_code == 200
            page_url = f"/console/recycle-bin?subscription={SUB}&limit={args.rows}"
            list_url = f"/subscriptions/{SUB}/deletedWorkspaces?limit={args.rows}"
            policy_url = f"/subscriptions/{SUB}/policy"
            timings: dict[str, list[float]] = {"html": [], "list": [], "policy": [],
                                               "total": []}
            with httpx.Client(base_url=base, timeout=10, trust_env=False) as browser:
                for round_ in range(args.requests + 20):  # the first 20 warm up
                    start = time.perf_counter()
                    html = browser.get(page_url)
                    after_html = time.perf_counter()
                    rows = browser.get(list_url, headers=headers)
                    after_list = time.perf_counter()
                    rules = browser.get(policy_url, headers=headers)
                    end = time.perf_counter()
                    assert html.status_code == 200 and "Physical deletion countdown" in html.text
                    assert rows.status_code == 200 and len(rows.json()["value"]) == args.rows
                    assert rules.status_code == 200
                    if round_ >= 20:
                        timings["html"].append((after_html - start) * 1000)
                        timings["list"].append((after_list - after_html) * 1000)
                        timings["policy"].append((end - after_list) * 1000)
                        timings["total"].append((end - start) * 1000)
            size = len(rows.content)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    print(f"console recycle-bin page, {args.rows} rows, {args.requests} loads over one "
          f"keep-alive connection to recyclebin serve on 127.0.0.1 ({size:,} bytes of JSON)")
    print(f"{'':>28} {'median':>9} {'p95':>9}")
    figures: dict[str, float] = {}
    for key, title in (("html", "HTML page"), ("list", f"API: {args.rows} deleted rows"),
                       ("policy", "API: policy"), ("total", "whole page")):
        median = statistics.median(timings[key])
        p95 = _percentile(timings[key], 0.95)
        figures[f"{key}_median_ms"] = round(median, 3)
        figures[f"{key}_p95_ms"] = round(p95, 3)
        print(f"{title:>28} {median:>7.2f}ms {p95:>7.2f}ms")
    verdict = "PASS" if figures["total_median_ms"] < TARGET_MS else "MISS"
    print(f"target: the whole page under {TARGET_MS:.0f} ms (median): {verdict}")
    print(json.dumps({"bench": "console_page", "rows": args.rows, "requests": args.requests,
                      **figures, "target_ms": TARGET_MS, "verdict": verdict}))


if __name__ == "__main__":
    main()
