#!/usr/bin/env bash
# Install what skillmaker needs on a fresh Debian machine, as root.
#   bash ci/install-deps.sh            everything for the test suite (the default)
#   bash ci/install-deps.sh --runtime  only what `skillmaker demo` needs (TeX and the package)
# The Docker engine is installed but never started here: see ci/docker-engine.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
RUNTIME_PACKAGES=(git texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern)
TEST_PACKAGES=(poppler-utils docker.io docker-registry debootstrap openjdk-17-jre-headless nodejs npm)
if [ "$mode" = "--runtime" ]; then
  wanted=("${RUNTIME_PACKAGES[@]}")
  extras="cpu,report,demo"
else
  wanted=("${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
  extras="cpu,report,demo,dev"
fi

missing=()
for pkg in "${wanted[@]}"; do
  case "$pkg" in
    # Node and Java may come from elsewhere than Debian's packages; what matters is that they run.
    nodejs | npm) command -v node >/dev/null && command -v npm >/dev/null && continue ;;
    openjdk-17-jre-headless) command -v java >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "ci/install-deps.sh: installing ${missing[*]}"
  # Never let a package's install script start a daemon on this machine (docker.io would).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

python3 -m pip install --quiet --disable-pip-version-check --upgrade pip
python3 -m pip install --quiet --disable-pip-version-check -e ".[$extras]"

if [ "$mode" != "--runtime" ] && [ ! -x .tools/npm/node_modules/.bin/npm-groovy-lint ]; then
  # npm-groovy-lint checks the rendered Jenkinsfiles offline; it lives in a project-local folder.
  mkdir -p .tools/npm
  npm install --silent --no-audit --no-fund --prefix .tools/npm npm-groovy-lint@16 >/dev/null
fi
