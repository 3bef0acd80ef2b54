#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian machine: TeX for the reports, poppler to
# read PDFs back, a Docker engine (not started here: see ci/docker-engine.sh), debootstrap for a
# registry-free base image, Java and Node for npm-groovy-lint, and the Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  git texlive-latex-base texlive-latex-recommended texlive-fonts-recommended lmodern
  poppler-utils docker.io debootstrap openjdk-17-jre-headless nodejs npm
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Node and Java may come from elsewhere than Debian's packages; what matters is that they run.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
if command -v java >/dev/null; then missing=("${missing[@]/openjdk-17-jre-headless}"); fi
read -r -a missing <<<"${missing[*]:-}"

if ((${#missing[@]})); then
  echo "ci/install-deps.sh: installing ${missing[*]}"
  # Never let a package's install script start a daemon on this machine (docker.io would).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

python3 -m pip install --quiet --disable-pip-version-check --upgrade pip
python3 -m pip install --quiet --disable-pip-version-check -e ".[cpu,report,demo,dev]"

# npm-groovy-lint checks the rendered Jenkinsfiles offline; it lives in a project-local folder.
if [ ! -x .tools/npm/node_modules/.bin/npm-groovy-lint ]; then
  mkdir -p .tools/npm
  npm install --silent --no-audit --no-fund --prefix .tools/npm npm-groovy-lint@16 >/dev/null
fi
