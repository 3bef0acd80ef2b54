# {{ cookiecutter.__header }}
"""Smoke test of this skill: its config is valid and its owned files are current."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_config_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skillmaker", "validate", "--config", str(ROOT / "skill.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_skill_name_matches_repo() -> None:
    config = json.loads((ROOT / "skill.json").read_text(encoding="utf-8"))
    assert config["name"] == {{ cookiecutter.name | json }}


def test_owned_files_are_current() -> None:
    # `upgrade --check` exits 1 when this skillmaker would change an owned file or skill.json.
    result = subprocess.run(
        [sys.executable, "-m", "skillmaker", "upgrade", "--repo", str(ROOT), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, "stale: run `skillmaker upgrade`\n" + result.stdout + result.stderr
