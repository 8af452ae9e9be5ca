#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: the recyclebin REST server on an
# embedded SQLite file with the default policy. Arguments go to `recyclebin serve`
# (e.g. --port 9000 --db /var/lib/recyclebin.db --policy azureml --tokens tokens.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/recyclebin serve "$@"
