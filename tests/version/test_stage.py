"""``skillmaker version``: next skill version, the commit as code version, the first run.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from skillmaker.adapters import git
from skillmaker.config import config_hash, load_config
from tests.skill_repos import GOOD, SkillFactory, run_cli, skill_config


def test_a_run_gets_the_next_version_and_the_commit(
    make_skill: SkillFactory, tmp_path: Path
) -> None:
    skill = make_skill()
    sha = git.head_commit(skill.repo)
    first = skill.run("version")
    assert first.code == 0, first.err
    assert f"digits: skill version 1, code version {sha}" in first.out
    assert f"image tag (cpu): 1-{sha[:7]}-cpu" in first.out
    assert f"image tag (gpu): 1-{sha[:7]}-gpu" in first.out
    current = json.loads((skill.repo / ".skillmaker/current.json").read_text())
    assert current == {"skill_version": 1, "code_version": sha}

    run = json.loads((skill.repo / ".skillmaker/runs/1/run.json").read_text())
    stored = tmp_path / "artifacts/skills/digits/runs/1/run.json"
    assert json.loads(stored.read_text()) == run
    assert (run["skill"], run["skill_version"], run["code_version"]) == ("digits", 1, sha)
    assert run["config_hash"] == config_hash(load_config(skill.repo / "skill.json").config)
    assert run["stages"]["version"]["outcome"] == "passed"
    assert run["warnings"] == []

    sha2 = skill.new_commit()
    second = skill.run("version")
    assert (
        f"skill version 2, code version {sha2} "
        f"(a new version: run 1 is of commit {sha[:7]}, but HEAD is {sha2[:7]})"
    ) in second.out


def test_a_stage_refuses_a_run_of_another_commit(make_skill: SkillFactory) -> None:
    skill = make_skill()
    first = git.head_commit(skill.repo)
    assert skill.run("version").code == 0
    skill.measured(GOOD, baseline=None)
    later = skill.new_commit()
    for stage in ("gate", "deploy", "report", "train"):
        result = skill.run(stage)
        assert result.code == 2, (stage, result.err)
        assert (
            f"run 1 is of commit {first[:7]}, but HEAD is {later[:7]}; a stage acts only on a "
            "run of its own commit and config"
        ) in result.err
    assert not (skill.repo / ".skillmaker/runs/1/gate.json").exists()


def test_uncommitted_changes_are_a_warning(make_skill: SkillFactory) -> None:
    skill = make_skill()
    (skill.repo / "classes.json").write_text("[]\n")
    result = skill.run("version")
    assert result.code == 0
    assert "uncommitted changes are not part of code version" in result.out
    run = json.loads((skill.repo / ".skillmaker/runs/1/run.json").read_text())
    assert run["warnings"] and "uncommitted changes" in run["warnings"][0]


def test_a_skill_outside_git_is_refused_before_any_version_is_taken(tmp_path: Path) -> None:
    config = skill_config("digits", (tmp_path / "artifacts").as_uri(), str(tmp_path / "infra"))
    plain, empty = tmp_path / "plain", tmp_path / "empty"
    for repo in (plain, empty):
        repo.mkdir()
        (repo / "skill.json").write_text(json.dumps(config))
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)

    result = run_cli("version", "--repo", str(plain))
    assert result.code == 2
    assert f"{plain}: not a git repository" in result.err
    assert "Traceback" not in result.err
    result = run_cli("version", "--repo", str(empty))
    assert result.code == 2
    assert f"{empty}: the git repository has no commit yet" in result.err
    assert not (tmp_path / "artifacts").exists()
    assert not (plain / ".skillmaker").exists()
