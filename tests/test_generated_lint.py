"""The stamped Jenkinsfile and Dockerfiles pass the linters Jenkins and Docker users run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skillmaker.scaffold import new_skill
from tests.scaffold.test_config_text import hostile

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(
        name, path=str(ROOT / ".tools/npm/node_modules/.bin")
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: ci/install-deps.sh installs it")
        pytest.skip(f"{name} is not installed (run ci/install-deps.sh)")
    return found


@pytest.fixture(scope="module", params=["car", "hostile"])
def stamped(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give a repo stamped from the car example, and one whose every string field is hostile."""
    folder = tmp_path_factory.mktemp("lint")
    if request.param == "car":
        return new_skill(EXAMPLES / "car.json", folder / "car")
    config = folder / "skill.json"
    config.write_text(json.dumps(hostile(folder)), encoding="utf-8")
    return new_skill(config, folder / "hostile")


def _groovy_lint(folder: Path) -> subprocess.CompletedProcess[str]:
    command = [_tool("npm-groovy-lint"), "--noserver", "--failon", "error", "--output", "txt"]
    return subprocess.run(
        [*command, "Jenkinsfile"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_jenkinsfile_passes_npm_groovy_lint(stamped: Path) -> None:
    result = _groovy_lint(stamped)
    assert result.returncode == 0, result.stdout + result.stderr


def test_jenkinsfile_with_credentials_and_timeouts_passes_npm_groovy_lint(tmp_path: Path) -> None:
    raw = json.loads((EXAMPLES / "car.json").read_text())
    raw["ci"] = {
        "profiles": {"gpu": "server", "cpu": "xps"},
        "credentials": {"AWS_ACCESS_KEY_ID": "aws-id", "SMTP_PASSWORD": "smtp.password"},
        "timeouts": {"train": 1440, "override": 60},
        "agent_cache": "/srv/agent-cache",
    }
    (tmp_path / "classes.json").write_text((EXAMPLES / "classes.json").read_text())
    (tmp_path / "car.json").write_text(json.dumps(raw))
    repo = new_skill(tmp_path / "car.json", tmp_path / "car")
    assert "withCredentials" in (repo / "Jenkinsfile").read_text()
    result = _groovy_lint(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_own_jenkinsfile_passes_npm_groovy_lint() -> None:
    result = _groovy_lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bash ci/test.sh" in (ROOT / "Jenkinsfile").read_text()


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(stamped: Path, name: str) -> None:
    result = subprocess.run(
        [_tool("hadolint"), name],
        cwd=stamped,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
