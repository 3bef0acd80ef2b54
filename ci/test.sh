#!/usr/bin/env bash
# The test command: install everything the suite needs, then run lint, types and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh

export PATH="$PWD/.tools/npm/node_modules/.bin:$PATH"
export PYDEVD_DISABLE_FILE_VALIDATION=1
export TF_CPP_MIN_LOG_LEVEL=2

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy --strict"
mypy
echo "== pytest"
python3 -m pytest "$@"
