"""``skillmaker fleet``: status, upgrade and validate over a folder of real skill repos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skillmaker import __version__
from skillmaker.adapters.store import open_store
from skillmaker.registry import allocate_version, mark_deployed
from tests.scaffold.conftest import EXAMPLES, edit, git, run_cli, snapshot

TIMEOUT_12 = "timeout(time: 12, unit: 'HOURS')"


def _stamp(root: Path, name: str, artifacts: Path) -> Path:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    raw["name"] = name
    raw["deploy"]["artifacts"] = artifacts.as_uri()
    config = root / f"{name}.json"
    config.write_text(json.dumps(raw))
    code, _, err = run_cli("new", "--config", str(config), "--output", str(root / "fleet" / name))
    assert code == 0, err
    return root / "fleet" / name


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_fleet_status_upgrade_and_validate(tmp_path: Path, changed_template: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    names = ["alpha", "bravo", "charlie", "delta"]
    repos = {name: _stamp(tmp_path, name, artifacts) for name in names}
    fleet = tmp_path / "fleet"
    store = open_store(artifacts.as_uri())
    for _ in range(2):
        allocate_version(store, "alpha", "abc1234")
    mark_deployed(
        store, "alpha", skill_version=1, code_version="abc1234", image_tag="alpha:1", gate="passed",
        infra_commit=None,
    )  # fmt: skip

    # bravo: an old config (schema 1); charlie: a hand edit that the new template conflicts with.
    raw = json.loads((repos["bravo"] / "skill.json").read_text())
    raw["schema_version"] = 1
    raw["train"]["patience"] = raw["train"].pop("early_stopping_patience")
    (repos["bravo"] / "skill.json").write_text(json.dumps(raw, indent=2))
    _commit(repos["bravo"], "schema 1")
    edit(repos["charlie"] / "Jenkinsfile", TIMEOUT_12, "timeout(time: 4, unit: 'HOURS')")
    _commit(repos["charlie"], "four hours")

    code, out, _ = run_cli("fleet", "status", str(fleet))
    assert code == 1, out
    lines = out.splitlines()
    assert lines[0].split() == ["skill", "skillmaker", "schema", "state", "last", "run", "deployed"]
    rows = {line.split()[0]: line for line in lines[1:5]}
    assert rows["alpha"].split()[:5] == ["alpha", __version__, "2", "up", "to"]
    assert "v2 allocated" in rows["alpha"] and rows["alpha"].endswith("v1")
    assert rows["bravo"].split()[2:6] == ["1", "out", "of", "date"]
    assert rows["delta"].split()[-2:] == ["never", "none"]
    assert lines[-1] == "4 skill(s): 3 up to date, 1 not"

    # A new skillmaker template: every skill is now behind.
    edit(changed_template / "Jenkinsfile", "timeout(time: {{", "timeout(activity: true, time: {{")
    edit(changed_template / "README.md", "## Where things go", "## Where things are")
    before_check = {name: snapshot(repo) for name, repo in repos.items()}
    code, out, _ = run_cli("fleet", "upgrade", "--check", str(fleet))
    assert code == 2  # charlie would conflict
    assert {name: snapshot(repo) for name, repo in repos.items()} == before_check

    code, out, _ = run_cli("fleet", "upgrade", str(fleet))
    assert code == 2
    assert "charlie: CONFLICTS in Jenkinsfile" in out
    assert f"{repos['charlie'] / 'Jenkinsfile'}: resolve the <<<<<<< markers, then commit" in out
    assert (
        out.splitlines()[-1] == "4 skill(s): 3 upgraded, 0 up to date, 1 with conflicts, 0 refused"
    )
    for name in ("alpha", "bravo", "delta"):
        assert f"{name}: upgraded" in out
        assert git(repos[name], "status", "--porcelain") == ""
        assert "## Where things are" in (repos[name] / "README.md").read_text()
    migrated = json.loads((repos["bravo"] / "skill.json").read_text())
    assert migrated["schema_version"] == 2 and migrated["train"]["early_stopping_patience"] == 5

    (repos["delta"] / "skill.json").write_text('{"name": "delta"}')
    list_file = tmp_path / "skills.txt"
    list_file.write_text(f"{repos['alpha']}\n{repos['delta']}\n")
    code, out, _ = run_cli("fleet", "validate", "--list", str(list_file))
    assert code == 2
    assert "alpha: valid" in out and "delta: invalid" in out
    assert "  skill.json: title: is required" in out
    assert out.splitlines()[-1] == "2 skill(s): 1 valid, 1 invalid"
