#!/usr/bin/env bash
# Fuzzes the policy decoder (tests/cpp/fuzz/policy_fuzz.cpp) for a bounded time: builds the
# libFuzzer target with clang-14 under AddressSanitizer + UndefinedBehaviorSanitizer
# (-DRECYCLEBIN_FUZZ=ON, in build/fuzz), seeds it with policies/, tests/cpp/fuzz/policy_seeds/
# and the regression inputs, and runs it. Fails on a crash, a sanitizer report, an input
# slower than RECYCLEBIN_FUZZ_TIMEOUT seconds or a leak, printing where the input was saved:
# once fixed, add that input to tests/cpp/fuzz/policy_regressions/ (ctest replays it).
#   RECYCLEBIN_FUZZ_SECONDS  total fuzzing time (default 60)
#   RECYCLEBIN_FUZZ_TIMEOUT  seconds one input may take (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${RECYCLEBIN_FUZZ_SECONDS:-60}
per_input=${RECYCLEBIN_FUZZ_TIMEOUT:-10}
build=build/fuzz
export PATH="$PWD/.venv/bin:$PATH"  # cmake and ninja from the venv when the system has none

if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 not found (Debian packages clang-14 and libclang-rt-14-dev; scripts/setup.sh installs them)" >&2
  exit 1
fi
if ! { CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
         -DRECYCLEBIN_FUZZ=ON -DRECYCLEBIN_BUILD_TESTS=OFF -DRECYCLEBIN_WERROR=ON &&
       cmake --build "$build" --target recyclebin_policy_fuzz -j "$(nproc)"; } >"$build.log" 2>&1; then
  cat "$build.log" >&2
  echo "fuzz: building recyclebin_policy_fuzz failed" >&2
  exit 1
fi

corpus=$build/policy-corpus      # what the fuzzer learns, kept between runs (not committed)
artifacts=$build/policy-artifacts
mkdir -p "$corpus" "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "fuzz: policy decoder for ${seconds}s (ASan + UBSan)"
if ! "$build/recyclebin_policy_fuzz" -max_total_time="$seconds" -timeout="$per_input" \
       -rss_limit_mb=2048 -max_len=262144 -print_final_stats=1 \
       -dict=tests/cpp/fuzz/policy.dict -artifact_prefix="$artifacts/" \
       "$corpus" tests/cpp/fuzz/policy_regressions tests/cpp/fuzz/policy_seeds policies \
       >"$build/policy-fuzz.log" 2>&1; then
  tail -n 60 "$build/policy-fuzz.log" >&2
  echo "fuzz: the policy fuzzer failed; the input is saved in $artifacts/:" >&2
  ls -t "$artifacts" | head -n 5 >&2
  exit 1
fi
grep -E "^(stat::|Done)" "$build/policy-fuzz.log" || true
echo "fuzz: no failure in ${seconds}s"
