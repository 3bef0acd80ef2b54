# {{ cookiecutter.__header }}
"""Smoke test of the skill {{ cookiecutter.name }}: its config is valid and its files are current."""

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
    assert config["name"] == "{{ cookiecutter.name }}"


def test_owned_files_match_manifest() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skillmaker", "upgrade", "--repo", str(ROOT), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
