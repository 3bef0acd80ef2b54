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
echo "== docker engine (for the image tests)"
# A private engine that leaves the host's network alone; the Docker tests skip if it cannot start.
if engine_env="$(bash ci/docker-engine.sh start)"; then
  eval "$engine_env"
  trap 'bash ci/docker-engine.sh stop >/dev/null 2>&1 || true' EXIT
else
  echo "ci/test.sh: no Docker engine; the Docker tests will be skipped"
fi

echo "== pytest"
python3 -m pytest "$@"
