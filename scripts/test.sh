#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test: GoogleTest through ctest, then pytest.
# RECYCLEBIN_SANITIZE=1 builds the C++ tests with ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

build=build/cpp
cmake_args=(-DRECYCLEBIN_WERROR=ON)
if [ "${RECYCLEBIN_SANITIZE:-0}" = "1" ]; then
  build=build/cpp-sanitize
  cmake_args+=(-DRECYCLEBIN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"

.venv/bin/python -m pytest "$@"
