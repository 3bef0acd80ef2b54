"""Helpers of the scaffold tests: run the CLI in-process, list a repo's files, run git."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from skillmaker.cli import main
from skillmaker.resources import template_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

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


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def tree(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in tree(root)}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=tester", "-c", "user.email=tester@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def car_repo(tmp_path: Path) -> Path:
    target = tmp_path / "skills" / "car"
    code, out, err = run_cli("new", "--config", str(EXAMPLES / "car.json"), "--output", str(target))
    assert code == 0, err
    assert str(target) in out
    return target


@pytest.fixture
def changed_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give the skill folder of a copy of the template that the next render uses."""
    copy = tmp_path / "template"
    shutil.copytree(template_dir(), copy)
    monkeypatch.setattr("skillmaker.scaffold.render.template_dir", lambda: copy)
    return copy / "{{cookiecutter.name}}"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def manifest_files(repo: Path) -> dict[str, str]:
    files: dict[str, str] = json.loads((repo / ".skillmaker/manifest.json").read_text())["files"]
    return files
