#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test: GoogleTest through ctest (a plain build
# with -Werror, then the same tests under AddressSanitizer + UndefinedBehaviorSanitizer),
# then the policy fuzzer for a bounded time (scripts/fuzz.sh: RECYCLEBIN_FUZZ_SECONDS, default
# 60; 0 skips it), then pytest. Extra arguments go to pytest. RECYCLEBIN_SANITIZE=0 skips the
# sanitizer run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

run_ctest() {  # build dir, cmake args...
  local build=$1
  shift
  cmake -S . -B "$build" -G Ninja -DRECYCLEBIN_WERROR=ON "$@" >/dev/null
  cmake --build "$build" -j "$(nproc)"
  ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
}

export PATH="$PWD/.venv/bin:$PATH"  # cmake and ninja from the venv when the system has none
run_ctest build/cpp -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${RECYCLEBIN_SANITIZE:-1}" != "0" ]; then
  run_ctest build/cpp-sanitize -DCMAKE_BUILD_TYPE=Debug -DRECYCLEBIN_SANITIZE=ON
fi
if [ "${RECYCLEBIN_FUZZ_SECONDS:-60}" != "0" ]; then
  ./scripts/fuzz.sh
fi

.venv/bin/python -m pytest "$@"
