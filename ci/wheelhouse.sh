#!/usr/bin/env bash
# Make a wheelhouse: skillmaker's own wheel (built from this checkout) and every dependency of one
# image flavour, as wheels for this machine's Python (3.11, manylinux), so `docker build` installs
# them with `pip install --no-index --find-links` and needs no network.
#
#   bash ci/wheelhouse.sh [--flavor cpu|gpu] [DIR]      # DIR defaults to .tools/wheelhouse-<flavor>
#
# cpu: skillmaker[cpu] (tensorflow-cpu); gpu: skillmaker[gpu] (tensorflow with CUDA wheels).
# Rerunning reuses the wheels already in DIR and the pip cache. Prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

FLAVOR=cpu
DEST=""
while (($#)); do
  case "$1" in
    --flavor) FLAVOR="${2:-}"; shift 2 ;;
    --flavor=*) FLAVOR="${1#--flavor=}"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "wheelhouse.sh: unknown option $1" >&2; exit 2 ;;
    *) DEST="$1"; shift ;;
  esac
done
case "$FLAVOR" in
  cpu|gpu) ;;
  *) echo "wheelhouse.sh: --flavor must be cpu or gpu (got \"$FLAVOR\")" >&2; exit 2 ;;
esac
DEST="${DEST:-.tools/wheelhouse-$FLAVOR}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
PIP=(python3 -m pip --disable-pip-version-check)
started=$SECONDS

# skillmaker's own wheel, replacing an older build of the same version.
rm -f "$DEST"/skillmaker-*.whl
"${PIP[@]}" wheel --quiet --no-deps --wheel-dir "$DEST" .
WHEEL="$(ls "$DEST"/skillmaker-*.whl)"

# Its dependencies; --find-links makes the wheels already there count, so a rerun downloads nothing.
"${PIP[@]}" wheel --quiet --wheel-dir "$DEST" --find-links "$DEST" "${WHEEL}[${FLAVOR}]"

echo "wheelhouse.sh: $(ls "$DEST" | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $((SECONDS - started)) s" >&2
echo "$DEST"
