"""Runs one benchmark case in this process and prints its result as one JSON line.

    python bench/worker.py --impl rb|django|rawpy --mode file|full|memory --n N [--pages P] [--ops ...]
    python bench/worker.py --threads T --n N [--mode full] (recyclebin SDK, durable file)
    python bench/worker.py --scale 10000,100000,1000000 (recyclebin SDK, durable file)

bench/run.py starts one worker per case, so every case has a fresh process and database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ALL_OPS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["rb", "django", "rawpy"], default="rb")
    parser.add_argument("--mode", choices=["file", "full", "memory"], default="file")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--ops", default=",".join(ALL_OPS))
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--threads", type=int, help="the threads case with this many threads")
    parser.add_argument("--scale", help="the scale case: comma-separated checkpoints")
    parser.add_argument("--window", type=int, default=2000, help="operations timed at each scale checkpoint")
    args = parser.parse_args()

    if args.scale:
        import impl_rb

        checkpoints = [int(x) for x in args.scale.split(",")]
        result: dict[str, object] = impl_rb.run_scale(checkpoints, args.window, args.dir)
    elif args.threads:
        import impl_rb

        result = impl_rb.run_threads(args.threads, args.n, args.dir, args.mode)
    else:
        ops = set(args.ops.split(","))
        unknown = ops - set(ALL_OPS)
        if unknown:
            parser.error(f"unknown operations {sorted(unknown)}; choose from {', '.join(ALL_OPS)}")
        if args.impl == "rb":
            import impl_rb as impl
        elif args.impl == "django":
            import impl_django as impl  # type: ignore[no-redef]
        else:
            import impl_rawpy as impl  # type: ignore[no-redef]
        result = impl.run(args.mode, args.n, args.pages, ops, args.dir).as_json()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
