#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test: GoogleTest through ctest (a plain build
# with -Werror, then the same tests under AddressSanitizer + UndefinedBehaviorSanitizer),
# then the policy fuzzer for a bounded time (scripts/fuzz.sh: RECYCLEBIN_FUZZ_SECONDS, default
# 60; 0 skips it), then pytest, the engine tests on both stores (SQLite and PostgreSQL).
# Extra arguments go to pytest. RECYCLEBIN_SANITIZE=0 skips the sanitizer run.
#
# PostgreSQL: a throwaway PostgreSQL 15 server is started for the run (scripts/pg-test-server.sh)
# and stopped at exit; its URL is exported as RECYCLEBIN_TEST_PG_URL. A caller that sets
# RECYCLEBIN_TEST_PG_URL itself (a server of its own) is used as it is. If no server can be
# started, the run fails saying why: the PostgreSQL tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

if [ -z "${RECYCLEBIN_TEST_PG_URL:-}" ]; then
  if ! server=$(./scripts/pg-test-server.sh start --fast); then
    echo "test: cannot start the throwaway PostgreSQL server the store tests need (see above)" >&2
    exit 1
  fi
  eval "$server"
  trap './scripts/pg-test-server.sh stop "$RECYCLEBIN_TEST_PG_DIR"' EXIT
fi
export RECYCLEBIN_TEST_PG_URL

run_ctest() {  # build dir, cmake args...
  local build=$1
  shift
  cmake -S . -B "$build" -G Ninja -DRECYCLEBIN_WERROR=ON "$@" >/dev/null
  cmake --build "$build" -j "$(nproc)"
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600
}

export PATH="$PWD/.venv/bin:$PATH"  # cmake and ninja from the venv when the system has none
run_ctest build/cpp -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${RECYCLEBIN_SANITIZE:-1}" != "0" ]; then
  run_ctest build/cpp-sanitize -DCMAKE_BUILD_TYPE=Debug -DRECYCLEBIN_SANITIZE=ON
fi
if [ "${RECYCLEBIN_FUZZ_SECONDS:-60}" != "0" ]; then
  ./scripts/fuzz.sh
fi

RECYCLEBIN_TEST_STORES=both .venv/bin/python -m pytest "$@"
