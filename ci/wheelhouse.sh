#!/usr/bin/env bash
# Make a wheelhouse: skillmaker's own wheel (built from this checkout) and every dependency of one
# image flavour, as wheels for this machine's Python (3.11, manylinux), so `docker build` installs
# them with `pip install --no-index --find-links` and needs no network.
#
#   bash ci/wheelhouse.sh [--flavor cpu|gpu] [ROOT]     # wheels go to ROOT/<flavor>
#   export SKILLMAKER_WHEELHOUSE=ROOT                   # where `skillmaker build` looks for them
#
# ROOT defaults to $SKILLMAKER_WHEELHOUSE, else .tools/wheelhouse. cpu: skillmaker[cpu]
# (tensorflow-cpu); gpu: skillmaker without TensorFlow (the CUDA base has it). A rerun rebuilds only
# skillmaker's own wheel, and the dependencies when pyproject.toml changed. Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

FLAVOR=cpu
ROOT="${SKILLMAKER_WHEELHOUSE:-.tools/wheelhouse}"
while (($#)); do
  case "$1" in
    --flavor) FLAVOR="${2:-}"; shift 2 ;;
    --flavor=*) FLAVOR="${1#--flavor=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "wheelhouse.sh: unknown option $1" >&2; exit 2 ;;
    *) ROOT="$1"; shift ;;
  esac
done
case "$FLAVOR" in
  cpu|gpu) ;;
  *) echo "wheelhouse.sh: --flavor must be cpu or gpu (got \"$FLAVOR\")" >&2; exit 2 ;;
esac
mkdir -p "$ROOT/$FLAVOR"
DEST="$(cd "$ROOT/$FLAVOR" && pwd)"
started=$SECONDS
# The same code `skillmaker build` uses when it has to make a wheelhouse itself.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -c '
import sys
from pathlib import Path
from skillmaker.build.context import make_wheelhouse
make_wheelhouse(Path(sys.argv[1]), sys.argv[2])
' "$DEST" "$FLAVOR"
echo "wheelhouse.sh: $(find "$DEST" -name '*.whl' | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $((SECONDS - started)) s" >&2
echo "$DEST"
