#!/usr/bin/env bash
# Make the registry-free base image skillmaker/bookworm-python:local (Debian bookworm, minbase, with
# python3 and python3-venv) when the engine does not have it yet. No registry is reachable on CI
# agents, so the image is bootstrapped from Debian packages and imported, never pulled.
#
#   eval "$(bash ci/docker-engine.sh start)"
#   bash ci/base-image.sh            # prints the image name
#
# BASE_IMAGE names the image, DEBIAN_MIRROR the mirror (default: the first Debian archive this
# machine's apt sources name, so the image comes from where the host's own packages come from).
set -euo pipefail

IMAGE="${BASE_IMAGE:-skillmaker/bookworm-python:local}"
host_mirror() {
  # deb822 sources first ("URIs: ..."), then one-line sources ("deb URI suite ..."). A machine has
  # one kind or the other, so a missing file is no error here (pipefail would stop the script).
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }'
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    awk '$1 == "deb" && $2 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }'
}
MIRROR="${DEBIAN_MIRROR:-$(host_mirror | head -n 1)}"
[ -n "$MIRROR" ] || { echo "base-image.sh: no Debian mirror in apt sources; set DEBIAN_MIRROR" >&2; exit 2; }

if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "base-image.sh: no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); run ci/docker-engine.sh start" >&2
  exit 2
fi
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image.sh: debootstrap not installed (run ci/install-deps.sh)" >&2; exit 2; }

ROOTFS="$(mktemp -d /var/tmp/skillmaker-rootfs.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc and /sys inside the root while it works; never delete through them.
  local mounts
  mounts="$(grep -o " $ROOTFS/[^ ]*" /proc/mounts | sort -r || true)"
  for mnt in $mounts; do umount -l "$mnt" || true; done
  rm -rf --one-file-system "$ROOTFS" "$ROOTFS.log"
}
trap cleanup EXIT
started=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
  echo "base-image.sh: debootstrap failed; last lines of $ROOTFS.log:" >&2
  tail -n 20 "$ROOTFS.log" >&2
  exit 1
}
# Package caches and lists only make the image bigger; builds install from a wheelhouse instead.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
tar -C "$ROOTFS" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase --include=python3,python3-venv bookworm" \
  - "$IMAGE" >/dev/null
echo "base-image.sh: made $IMAGE in $((SECONDS - started)) s" >&2
echo "$IMAGE"
