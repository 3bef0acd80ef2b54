#!/bin/sh
# {{ cookiecutter.__header }}
# Run this skill's pinned skillmaker on a CI agent: the python3 on PATH when it already has that
# version, else a virtual environment made once per agent and version under
# $SKILLMAKER_AGENT_CACHE/venv. pip takes the wheels from where the agent says (PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL or PIP_FIND_LINKS in the agent's environment); requirements.txt pins them.
set -eu
pinned='{{ cookiecutter.__skillmaker_version }}'
python="${SKILLMAKER_PYTHON:-python3}"
if [ "$("$python" -m skillmaker --version 2>/dev/null || true)" = "skillmaker $pinned" ]; then
    exec "$python" -m skillmaker "$@"
fi
venv="${SKILLMAKER_AGENT_CACHE:?set SKILLMAKER_AGENT_CACHE to a folder the agent keeps}/venv/$pinned"
mkdir -p "$(dirname "$venv")"
(
    flock 9
    if [ ! -x "$venv/bin/skillmaker" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
    fi
) 9>"$venv.lock"
exec "$venv/bin/skillmaker" "$@"
