"""``skillmaker new`` and ``upgrade``: the stamped tree, the first commit, atomicity, hand edits."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from skillmaker import __version__, scaffold
from skillmaker.cli import main
from skillmaker.errors import UserError
from skillmaker.fileio import sha256_file
from skillmaker.resources import template_dir
from skillmaker.stages import STAGES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

OWNED = {
    ".dockerignore",
    ".gitignore",
    "Dockerfile.cpu",
    "Dockerfile.gpu",
    "Jenkinsfile",
    "README.md",
    "ci/skillmaker-agent.sh",
    "requirements.txt",
    "tests/test_smoke.py",
}


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _tree(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def car_repo(tmp_path: Path) -> Path:
    target = tmp_path / "skills" / "car"
    code, out, err = _run("new", "--config", str(EXAMPLES / "car.json"), "--output", str(target))
    assert code == 0, err
    assert str(target) in out
    return target


def test_new_stamps_the_repo_with_one_commit(car_repo: Path) -> None:
    assert _tree(car_repo) == OWNED | {"skill.json", "classes.json", ".skillmaker/manifest.json"}
    assert _git(car_repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert _git(car_repo, "status", "--porcelain") == ""
    assert "Stamp skill vw-golf-variant (CARS-142)" in _git(car_repo, "log", "--format=%s")
    committed = set(_git(car_repo, "ls-files").split())
    assert committed == _tree(car_repo)

    code, _, err = _run("validate", "--config", str(car_repo / "skill.json"))
    assert code == 0, err
    manifest = json.loads((car_repo / ".skillmaker/manifest.json").read_text())
    assert manifest["skillmaker_version"] == __version__
    assert set(manifest["files"]) == OWNED
    for name, digest in manifest["files"].items():
        assert sha256_file(car_repo / name) == digest
    assert "golf-7-gti" in (car_repo / "classes.json").read_text()


def test_stamped_config_is_normalised(car_repo: Path) -> None:
    stamped = json.loads((car_repo / "skill.json").read_text())
    assert stamped["schema_version"] == 1
    assert stamped["split"]["near_duplicate_distance"] == 6
    assert stamped["model"]["filters"] == [32, 64]  # defaults are spelled out


def test_owned_files_say_they_are_generated(car_repo: Path) -> None:
    for name in OWNED:
        assert (
            "skillmaker upgrade"
            in (car_repo / name).read_text().splitlines()[0]
            + (car_repo / name).read_text().splitlines()[1]
        ), name
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
    code, _, err = _run("new", "--config", str(EXAMPLES / "digits.json"), "--output", str(target))
    assert code == 0, err
    assert _git(target, "log", "--format=%an <%ae>").strip() == "skillmaker <skillmaker@localhost>"


def test_new_refuses_a_non_empty_target_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "car"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    code, _, err = _run("new", "--config", str(EXAMPLES / "car.json"), "--output", str(target))
    assert code == 2
    assert "exists and is not empty (use --force to replace it)" in err
    assert _tree(target) == {"notes.txt"}

    code, _, err = _run(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(target), "--force"
    )
    assert code == 0, err
    assert "notes.txt" not in _tree(target)
    assert [p.name for p in tmp_path.iterdir()] == ["car"]  # no scratch folder left


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_commit(repo: Path, message: str) -> str:
        raise UserError("git exploded")

    monkeypatch.setattr("skillmaker.adapters.git.init_and_commit", broken_commit)
    code, _, err = _run(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(tmp_path / "a" / "b" / "car")
    )
    assert code == 2
    assert "git exploded" in err
    assert list(tmp_path.iterdir()) == []


def test_failure_with_force_keeps_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "car"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    def broken_commit(repo: Path, message: str) -> str:
        raise UserError("git exploded")

    monkeypatch.setattr("skillmaker.adapters.git.init_and_commit", broken_commit)
    code, _, _ = _run(
        "new", "--config", str(EXAMPLES / "car.json"), "--output", str(target), "--force"
    )
    assert code == 2
    assert _tree(target) == {"notes.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["car"]


@pytest.fixture
def changed_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give a copy of the template that the next ``upgrade`` renders from."""
    copy = tmp_path / "template"
    shutil.copytree(template_dir(), copy)
    monkeypatch.setattr(scaffold, "template_dir", lambda: copy)
    return copy


def _user_files(repo: Path) -> dict[str, bytes]:
    owned = set(json.loads((repo / ".skillmaker/manifest.json").read_text())["files"])
    return {
        name: (repo / name).read_bytes()
        for name in _tree(repo)
        if name not in owned and name != ".skillmaker/manifest.json"
    }


def test_upgrade_rewrites_owned_files_after_a_template_change(
    car_repo: Path, changed_template: Path
) -> None:
    (car_repo / "my-notes.md").write_text("user file")
    before = _user_files(car_repo)
    dockerfile = changed_template / "{{cookiecutter.name}}" / "Dockerfile.cpu"
    dockerfile.write_text(dockerfile.read_text() + "LABEL skill.upgraded=true\n")
    (changed_template / "{{cookiecutter.name}}" / "Makefile").write_text(
        "# {{ cookiecutter.__header }}\n"
    )
    (changed_template / "{{cookiecutter.name}}" / ".dockerignore").unlink()

    code, out, err = _run("upgrade", "--repo", str(car_repo))
    assert code == 0, err
    assert "Dockerfile.cpu: rewritten" in out
    assert "Makefile: added" in out
    assert ".dockerignore: removed" in out
    assert "LABEL skill.upgraded=true" in (car_repo / "Dockerfile.cpu").read_text()
    assert not (car_repo / ".dockerignore").exists()
    manifest = json.loads((car_repo / ".skillmaker/manifest.json").read_text())
    assert "Makefile" in manifest["files"] and ".dockerignore" not in manifest["files"]
    assert _user_files(car_repo) == before, "user files must be byte-identical"

    code, out, _ = _run("upgrade", "--repo", str(car_repo))
    assert (code, out.strip()) == (0, "owned files are up to date")


def test_upgrade_refuses_hand_edited_owned_files(car_repo: Path, changed_template: Path) -> None:
    jenkinsfile = car_repo / "Jenkinsfile"
    jenkinsfile.write_text(jenkinsfile.read_text() + "// my tweak\n")
    dockerfile = changed_template / "{{cookiecutter.name}}" / "Dockerfile.cpu"
    dockerfile.write_text(dockerfile.read_text() + "LABEL skill.upgraded=true\n")
    before = {name: (car_repo / name).read_bytes() for name in _tree(car_repo)}

    code, _, err = _run("upgrade", "--repo", str(car_repo))
    assert code == 2
    assert (
        f"{car_repo}: Jenkinsfile: owned by skillmaker but edited by hand (use --force to overwrite)"
        in err
    )
    assert {name: (car_repo / name).read_bytes() for name in _tree(car_repo)} == before

    code, out, err = _run("upgrade", "--repo", str(car_repo), "--force")
    assert code == 0, err
    assert "// my tweak" not in jenkinsfile.read_text()
    assert "Jenkinsfile: edited by hand, overwritten (--force)" in out


def test_upgrade_check_writes_nothing(car_repo: Path, changed_template: Path) -> None:
    dockerfile = changed_template / "{{cookiecutter.name}}" / "Dockerfile.cpu"
    dockerfile.write_text(dockerfile.read_text() + "LABEL skill.upgraded=true\n")
    before = {name: (car_repo / name).read_bytes() for name in _tree(car_repo)}
    code, out, _ = _run("upgrade", "--repo", str(car_repo), "--check")
    assert code == 0
    assert "Dockerfile.cpu: would be rewritten" in out
    assert {name: (car_repo / name).read_bytes() for name in _tree(car_repo)} == before


def test_upgrade_outside_a_skill_repo(tmp_path: Path) -> None:
    code, _, err = _run("upgrade", "--repo", str(tmp_path))
    assert code == 2
    assert "not a skill repo (no .skillmaker/manifest.json)" in err


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
