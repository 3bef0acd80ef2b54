"""``skillmaker new``: the stamped tree, the first commit, atomicity, and ``--force`` on a repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from skillmaker import __version__
from skillmaker.config.model import SCHEMA_VERSION
from skillmaker.domain.stages import STAGES
from skillmaker.errors import UserError
from skillmaker.fileio import sha256_file
from tests.scaffold.conftest import EXAMPLES, OWNED, git, manifest_files, run_cli, snapshot, tree


def test_new_stamps_the_repo_with_one_commit(car_repo: Path) -> None:
    files = manifest_files(car_repo)
    bases = {f".skillmaker/base/{digest}" for digest in files.values()}
    assert tree(car_repo) == OWNED | bases | {
        "skill.json",
        "classes.json",
        ".skillmaker/manifest.json",
    }
    assert git(car_repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(car_repo, "status", "--porcelain") == ""
    assert "Stamp skill vw-golf-variant (CARS-142)" in git(car_repo, "log", "--format=%s")
    assert set(git(car_repo, "ls-files").split()) == tree(car_repo)

    code, _, err = run_cli("validate", "--config", str(car_repo / "skill.json"))
    assert code == 0, err
    manifest = json.loads((car_repo / ".skillmaker/manifest.json").read_text())
    assert manifest["skillmaker_version"] == __version__
    assert set(files) == OWNED
    for name, digest in files.items():
        assert sha256_file(car_repo / name) == digest
        # The base of the next three-way merge is this very render.
        assert (car_repo / ".skillmaker/base" / digest).read_bytes() == (
            car_repo / name
        ).read_bytes()
    assert "golf-7-gti" in (car_repo / "classes.json").read_text()


def test_stamped_config_keeps_only_what_the_user_set(car_repo: Path) -> None:
    stamped = json.loads((car_repo / "skill.json").read_text())
    given = json.loads((EXAMPLES / "car.json").read_text())
    assert stamped["schema_version"] == SCHEMA_VERSION
    assert {k: v for k, v in stamped.items() if k != "schema_version"} == {
        k: v for k, v in given.items() if k != "schema_version"
    }
    # Defaults are not frozen in: a new default reaches the skill at its next upgrade.
    assert "timeouts" not in stamped.get("ci", {}) and "notify" not in stamped.get("deploy", {})


def test_owned_files_say_they_are_generated(car_repo: Path) -> None:
    for name in OWNED:
        head = (car_repo / name).read_text().splitlines()[:2]
        assert "skillmaker upgrade" in " ".join(head), name
    assert "skillmaker[cpu,report]==" + __version__ in (car_repo / "requirements.txt").read_text()


def test_jenkinsfile_runs_the_stage_list(car_repo: Path) -> None:
    text = (car_repo / "Jenkinsfile").read_text()
    for stage in STAGES:
        if stage.always:  # in post, with the pinned skillmaker of the agent
            assert f"sh ci/skillmaker-agent.sh {' '.join(stage.argv)}" in text
        else:  # the runner, limited to the stage, records its outcome
            assert f"stage('{stage.name}')" in text
            assert f"run --from {stage.name} --until {stage.name}" in text
    assert "label 'gpu'" in text  # training runs on a GPU agent
    assert "timeout(time: 12, unit: 'HOURS')" in text
    assert "post {" in text and "always {" in text


def test_new_works_without_a_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    target = tmp_path / "digits"
    code, _, err = run_cli(
        "new", "--config", str(EXAMPLES / "digits.json"), "--output", str(target)
    )
    assert code == 0, err
    assert git(target, "log", "--format=%an <%ae>").strip() == "skillmaker <skillmaker@localhost>"


def test_new_refuses_a_non_empty_target_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "car"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    code, _, err = run_cli("new", "--config", str(EXAMPLES / "car.json"), "--output", str(target))
    assert code == 2
    assert "exists and is not empty (use --force" in err
    assert tree(target) == {"notes.txt"}

    code, _, err = run_cli(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(target), "--force"
    )
    assert code == 0, err
    assert (target / "notes.txt").read_text() == "mine"  # not ours: untouched, uncommitted
    assert "notes.txt" not in git(target, "ls-files").split()
    assert "Jenkinsfile" in git(target, "ls-files").split()
    assert [p.name for p in tmp_path.iterdir()] == ["car"]  # no scratch folder left


def test_new_force_keeps_history_and_files_it_does_not_own(car_repo: Path) -> None:
    (car_repo / "src").mkdir()
    (car_repo / "src" / "extra.py").write_text("print('mine')\n")
    (car_repo / "Jenkinsfile").write_text("// my own pipeline\n")
    git(car_repo, "add", "-A")
    git(car_repo, "commit", "-qm", "my work")
    (car_repo / "scratch.txt").write_text("untracked")
    first = git(car_repo, "rev-list", "--max-parents=0", "HEAD").strip()

    code, _, err = run_cli(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(car_repo), "--force"
    )
    assert code == 0, err
    log = git(car_repo, "log", "--format=%s").splitlines()
    assert log[1:] == ["my work", log[-1]] and len(log) == 3
    assert git(car_repo, "rev-list", "--max-parents=0", "HEAD").strip() == first
    assert (car_repo / "src" / "extra.py").read_text() == "print('mine')\n"
    assert (car_repo / "scratch.txt").read_text() == "untracked"
    assert "// my own pipeline" not in (car_repo / "Jenkinsfile").read_text()  # owned: rewritten


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_commit(repo: Path, message: str) -> str:
        raise UserError("git exploded")

    monkeypatch.setattr("skillmaker.adapters.git.init_and_commit", broken_commit)
    code, _, err = run_cli(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(tmp_path / "a" / "b" / "car")
    )
    assert code == 2
    assert "git exploded" in err
    assert list(tmp_path.iterdir()) == []


def test_failure_with_force_restores_the_folder(car_repo: Path) -> None:
    (car_repo / "README.md").write_text("my readme\n")
    before = snapshot(car_repo)
    head = git(car_repo, "rev-parse", "HEAD")
    # A pre-commit hook is skipped (--no-verify), so make the commit itself fail: a locked index.
    (car_repo / ".git" / "index.lock").write_text("")
    code, _, err = run_cli(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(car_repo), "--force"
    )
    assert code == 2
    assert "index.lock" in err
    (car_repo / ".git" / "index.lock").unlink()
    assert snapshot(car_repo) == before
    assert git(car_repo, "rev-parse", "HEAD") == head
    assert [p.name for p in car_repo.parent.iterdir()] == ["car"]


def test_smoke_test_of_the_stamped_repo_passes(car_repo: Path) -> None:
    result = subprocess.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(car_repo / "tests")],
        cwd=car_repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
