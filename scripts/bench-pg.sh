#!/usr/bin/env bash
# The PostgreSQL benchmarks (bench/README.md, "PostgreSQL"): builds bench/bench_pg.cpp, starts
# a throwaway PostgreSQL 15 with durable settings (scripts/pg-test-server.sh; or uses
# RECYCLEBIN_BENCH_PG_URL), runs bench/pg.py, stops the server. Options go to bench/pg.py.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

build=build/bench
if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRECYCLEBIN_BUILD_TESTS=OFF &&
       cmake --build "$build" --target recyclebin_bench_pg -j "$(nproc)"; } >"$build-pg.log" 2>&1; then
  cat "$build-pg.log" >&2
  echo "bench-pg: building recyclebin_bench_pg failed" >&2
  exit 1
fi

url=${RECYCLEBIN_BENCH_PG_URL:-}
if [ -z "$url" ]; then
  if ! server=$(./scripts/pg-test-server.sh start); then
    echo "bench-pg: cannot start a PostgreSQL server (see above)" >&2
    exit 1
  fi
  eval "$server"
  trap './scripts/pg-test-server.sh stop "$RECYCLEBIN_TEST_PG_DIR"' EXIT
  url=$RECYCLEBIN_TEST_PG_URL
fi
.venv/bin/python bench/pg.py --url "$url" "$@"
