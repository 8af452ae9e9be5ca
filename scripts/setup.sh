#!/usr/bin/env bash
# Takes a fresh machine to a working checkout: the Debian packages the C++ core needs,
# and a virtualenv (.venv) with recyclebin installed. Idempotent; quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(cmake g++ make libboost1.81-dev libboost-date-time1.81-dev libsqlite3-dev libyaml-cpp-dev libgtest-dev
      libpq-dev postgresql-15       # the PostgreSQL store, and its throwaway test server
      clang-14 libclang-rt-14-dev   # clang: the policy fuzzer (scripts/fuzz.sh)
      chromium chromium-driver      # the console's browser tests (tests/python/test_console.py)
      valgrind)                     # bench/overhead.py: the SDK's instructions over the C++ Engine's
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
venv_py=.venv/bin/python

# Reinstall only when the sources changed since the last install.
stamp=.venv/.recyclebin-installed
extras=${RECYCLEBIN_EXTRAS:-test}
digest=$( { echo "$extras"; git ls-files -s -- CMakeLists.txt cmake pyproject.toml cpp python policies 2>/dev/null;
            git diff -- CMakeLists.txt cmake pyproject.toml cpp python policies 2>/dev/null;
            git ls-files --others --exclude-standard -- cpp python policies 2>/dev/null | xargs -r cat; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  exit 0
fi
echo "setup: installing recyclebin into .venv (extras: $extras)"
"$venv_py" -m pip install -q --upgrade pip
"$venv_py" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# The bindings build with the same warnings as the core, and -Werror, as the C++ tests do.
"$venv_py" -m pip install -q --no-build-isolation --config-settings=cmake.define.RECYCLEBIN_WERROR=ON ".[$extras]"
echo "$digest" > "$stamp"
