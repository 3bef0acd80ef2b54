"""``skillmaker deploy``: gated, validated, pushed with retries, stack updated, registry last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from skillmaker.adapters import git
from skillmaker.adapters.infra_repo import init_infra_repo
from skillmaker.commands.model import _none
from skillmaker.context import RunPointer, load_skill
from skillmaker.deploy.stage import DeployFailedError, deploy_stage
from skillmaker.domain.cfn_template import skill_entry
from skillmaker.pipeline.execute import execute_stage
from skillmaker.registry import read_registry
from tests.helpers import MotoServer
from tests.skill_repos import (
    WORSE,
    Skill,
    SkillFactory,
    fake_rolling_back_cloudformation,
    tree_bytes,
)

TEMPLATE = "skills.yaml"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def _template(infra: Path) -> str:
    return _git(infra, "show", f"main:{TEMPLATE}")


def _tag(infra: Path, skill: str) -> str | None:
    entry = skill_entry(_template(infra), TEMPLATE, "SkillImages", skill)
    return entry.tag if entry else None


def _outputs() -> dict[str, str]:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _stack_state() -> tuple[object, list[object]]:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    template = client.get_template(StackName="skills")["TemplateBody"]
    return template, [stack["StackStatus"], stack.get("Outputs"), stack.get("Parameters")]


def _tag_of(skill: Skill, version: int, flavor: str = "cpu") -> str:
    return f"{version}-{git.head_commit(skill.repo)[:7]}-{flavor}"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """Give the shared infra repo: a bare git remote holding the bundled template."""
    return init_infra_repo(tmp_path / "infra.git", bare=True)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take every AWS variable out of the environment (the embedded default)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def test_deploy_refuses_a_run_the_gate_has_not_passed(
    make_skill: SkillFactory, tmp_path: Path
) -> None:
    skill = make_skill()
    assert skill.run("version").code == 0
    result = skill.run("deploy")
    assert result.code == 2
    assert "no gate decision for skill version 1; run `skillmaker gate` first" in result.err
    assert not (tmp_path / "infra").exists()


@pytest.mark.usefixtures("no_aws")
def test_the_embedded_default_updates_a_local_infra_repo_and_skips_the_stack(
    make_skill: SkillFactory, tmp_path: Path
) -> None:
    skill = make_skill()
    version = skill.passed_run(baseline=None)
    result = skill.run("deploy")
    assert result.code == 0, result.err
    infra = tmp_path / "infra"
    assert f"created the local infra repo {infra}" in result.out
    assert (
        "no CloudFormation endpoint or AWS credentials configured: stack update skipped"
        in result.out
    )
    tag = _tag_of(skill, version)
    assert f"      Tag: {tag}\n" in (infra / TEMPLATE).read_text()
    diff = _git(infra, "diff", "HEAD~1", "HEAD", "--unified=0").splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-      Tag: 0-0000000-cpu",
        f"+      Tag: {tag}",
    ]
    message = _git(infra, "log", "-1", "--format=%B")
    assert f"Deploy digits skill version 1 ({tag})" in message
    assert f"code version: {git.head_commit(skill.repo)}" in message
    assert "gate: passed" in message
    deployed = read_registry(load_skill(skill.repo).artifacts(), "digits")["deployed"]
    assert deployed is not None
    assert (deployed["skill_version"], deployed["image_tag"]) == (1, tag)
    record = json.loads((skill.repo / ".skillmaker/runs/1/deploy.json").read_text())
    assert (record["outcome"], record["stack"]) == ("deployed", None)
    run = json.loads((skill.repo / ".skillmaker/runs/1/run.json").read_text())
    assert run["stages"]["deploy"]["outcome"] == "passed"


def test_a_deploy_over_http_shows_the_new_tag_in_the_stack_outputs(
    aws_env: MotoServer, make_skill: SkillFactory, remote: Path
) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="skill-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    skill = make_skill(artifacts="s3://skill-artifacts/team", infra=remote)
    first = skill.passed_run(baseline=None)
    result = skill.run("deploy")
    assert result.code == 0, result.err
    assert "stack 'skills': created (CREATE_COMPLETE)" in result.out
    assert _outputs()["DigitsImageTag"] == _tag_of(skill, first)

    skill.new_commit()
    second = skill.passed_run(baseline=first)
    result = skill.run("deploy")
    assert result.code == 0, result.err
    assert "stack 'skills': updated (UPDATE_COMPLETE)" in result.out
    assert _outputs()["DigitsImageTag"] == _tag_of(skill, second)
    assert _outputs()["VwGolfVariantImageTag"] == "0-0000000-gpu"
    assert _tag(remote, "digits") == _tag_of(skill, second)
    registry = read_registry(load_skill(skill.repo).artifacts(), "digits")
    assert registry["deployed"] is not None
    assert registry["deployed"]["skill_version"] == second
    assert [h["decision"] for h in registry["history"]] == ["deployed", "deployed"]

    again = skill.run("deploy")
    assert again.code == 0
    assert "nothing to commit" in again.out
    assert "stack 'skills': unchanged" in again.out


def test_a_rejected_candidate_leaves_infra_stack_and_registry_byte_identical(
    aws_env: MotoServer, make_skill: SkillFactory, remote: Path, tmp_path: Path
) -> None:
    skill = make_skill(infra=remote)
    first = skill.passed_run(baseline=None)
    assert skill.run("deploy").code == 0
    skill.new_commit()
    assert skill.run("version").code == 0
    registry = tmp_path / "artifacts/skills/digits/registry.json"
    before = (tree_bytes(remote), _stack_state(), registry.read_bytes())

    skill.measured(WORSE, baseline=first)
    assert skill.run("gate").code == 3
    result = skill.run("deploy")
    assert result.code == 2
    assert "the gate rejected skill version 2" in result.err
    assert "nothing deployed" in result.err
    assert (tree_bytes(remote), _stack_state(), registry.read_bytes()) == before


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            (
                "- Tag: !FindInMap [SkillImages, vw-golf-variant, Tag]",
                "- Tag: !FindInMap [SkillImages, vw-golf, Tag]",
            ),
            "mapping 'SkillImages' has no key 'vw-golf'",
        ),
        (("Type: AWS::ECS::Service", "Type: AWS::ECS::Servic"), "E3006"),
    ],
    ids=["find-in-map", "cfn-lint"],
)
def test_a_template_that_fails_validation_is_never_pushed(
    aws_env: MotoServer,
    make_skill: SkillFactory,
    tmp_path: Path,
    breakage: tuple[str, str],
    message: str,
) -> None:
    seed = tmp_path / "seed"
    init_infra_repo(seed)
    text = (seed / TEMPLATE).read_text()
    (seed / TEMPLATE).write_text(text.replace(*breakage, 1))
    git.commit_all(seed, "hand edit with a mistake")
    remote = tmp_path / "broken.git"
    git.clone_bare(seed, remote)
    skill = make_skill(infra=remote)
    skill.passed_run(baseline=None)
    before = tree_bytes(remote)

    result = skill.run("deploy")
    assert result.code == 2
    assert message in result.err
    assert tree_bytes(remote) == before
    assert read_registry(load_skill(skill.repo).artifacts(), "digits")["deployed"] is None
    stacks = boto3.client("cloudformation", region_name="eu-west-1").list_stacks()
    assert stacks["StackSummaries"] == []


def test_two_skills_deployed_at_once_both_land(
    aws_env: MotoServer, make_skill: SkillFactory, remote: Path
) -> None:
    digits = make_skill("digits", infra=remote)
    variant = make_skill("vw-golf-variant", infra=remote)
    for skill in (digits, variant):
        skill.passed_run(baseline=None)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "skillmaker", "deploy", "--repo", str(skill.repo)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for skill in (digits, variant)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
    assert _tag(remote, "digits") == _tag_of(digits, 1)
    assert _tag(remote, "vw-golf-variant") == _tag_of(variant, 1, "gpu")
    subjects = _git(remote, "log", "--format=%s", "main").splitlines()
    assert len(subjects) == 3
    assert _outputs()["DigitsImageTag"] == _tag_of(digits, 1)
    assert _outputs()["VwGolfVariantImageTag"] == _tag_of(variant, 1, "gpu")


@pytest.mark.usefixtures("no_aws")
def test_a_rolled_back_stack_keeps_the_deployed_version(
    make_skill: SkillFactory, remote: Path
) -> None:
    skill = make_skill(infra=remote)
    first = skill.passed_run(baseline=None)
    assert skill.run("deploy").code == 0
    skill.new_commit()
    skill.passed_run(baseline=first)
    ctx = load_skill(skill.repo)
    with pytest.raises(DeployFailedError, match=r"UPDATE_ROLLBACK_COMPLETE.*stays at version 1"):
        # Through the stage runner, as the command runs it, so that run.json records the failure.
        execute_stage(
            ctx,
            "deploy",
            lambda: _none(deploy_stage(ctx, stack=fake_rolling_back_cloudformation("skills"))),
        )
    registry = read_registry(ctx.artifacts(), "digits")
    assert registry["deployed"] is not None
    assert registry["deployed"]["skill_version"] == first
    assert registry["history"][-1]["decision"] == "deploy failed"
    assert "CannotPullContainerError" in registry["history"][-1]["message"]
    assert _tag(remote, "digits") == f"1-{registry['deployed']['code_version'][:7]}-cpu"
    assert _git(remote, "log", "-1", "--format=%s", "main").startswith("Revert digits to 1-")
    run = json.loads((skill.repo / ".skillmaker/runs/2/run.json").read_text())
    assert run["stages"]["deploy"]["outcome"] == "failed"
    record = json.loads((skill.repo / ".skillmaker/runs/2/deploy.json").read_text())
    assert record["outcome"] == "failed"


def test_a_skill_new_to_the_template_is_added_with_its_capacity(
    aws_env: MotoServer, make_skill: SkillFactory, remote: Path
) -> None:
    skill = make_skill("car-make", infra=remote)
    skill.passed_run(baseline=None)
    result = skill.run("deploy", "--flavor", "gpu")
    assert result.code == 0, result.err
    assert "adding car-make (gpu capacity) to the template" in result.out
    assert _outputs()["CarMakeImageTag"] == _tag_of(skill, 1, "gpu")
    assert "ResourceRequirements" in _template(remote).split("CarMakeTask:")[1]


def test_a_deploy_refuses_when_the_baseline_moved_on(
    make_skill: SkillFactory, remote: Path, no_aws: None
) -> None:
    skill = make_skill(infra=remote)
    first = skill.passed_run(baseline=None)
    assert skill.run("deploy").code == 0
    second = skill.passed_run(baseline=first)
    third = skill.passed_run(baseline=first)
    assert skill.run("deploy").code == 0
    ctx = load_skill(skill.repo)
    ctx.set_current_run(RunPointer(second, git.head_commit(skill.repo)))
    result = skill.run("deploy")
    assert result.code == 2
    assert f"the gate compared with deployed version {first}, but version {third} is deployed" in (
        result.err
    )
