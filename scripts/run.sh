#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: the recyclebin REST server on an
# embedded SQLite file with the default policy. Arguments go to `recyclebin serve`
# (e.g. --port 9000 --db /var/lib/recyclebin.db --policy azureml --tokens tokens.yaml);
# relative paths are taken from the directory you run it in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
exec "$root/.venv/bin/recyclebin" serve "$@"
