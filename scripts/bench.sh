#!/usr/bin/env bash
# Runs the benchmarks (bench/README.md): installs recyclebin with the `bench` extra
# (django, django-safedelete) through scripts/setup.sh, builds the C++ program
# bench/bench_core.cpp, then runs bench/run.py, which prints the tables, the targets and a
# final JSON line. Options go to bench/run.py: --n N, --quick, --scale, --runs R, --help.
set -euo pipefail
cd "$(dirname "$0")/.."

RECYCLEBIN_EXTRAS=test,bench ./scripts/setup.sh

build=build/bench
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRECYCLEBIN_BUILD_TESTS=OFF &&
       cmake --build "$build" --target recyclebin_bench_core -j "$(nproc)"; } >"$build.log" 2>&1; then
  cat "$build.log" >&2
  echo "bench: building recyclebin_bench_core failed" >&2
  exit 1
fi

exec .venv/bin/python bench/run.py "$@"
