"""A fleet of skills deploying into one stack at once, each in its own process (tests, benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

from skillmaker.adapters import git
from skillmaker.adapters.infra_repo import init_infra_repo
from skillmaker.context import load_skill
from skillmaker.domain.cfn_template import skill_entry
from skillmaker.registry import read_registry
from tests.skill_repos import Skill, make_skill_repo, skill_config

CHECKOUT = Path(__file__).resolve().parents[1]


BUCKET = "fleet-artifacts"


def s3_artifacts(prefix: str) -> str:
    """Give an ``s3://`` artifacts store on the AWS endpoint of the environment (moto), made now.

    The fleet shares it as a team would: the registries, the runs and the stack's deploy lease
    (compare-and-swap by conditional writes), and a template too big to send inline.
    """
    client = boto3.client("s3", region_name="eu-west-1")
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    return f"s3://{BUCKET}/{prefix}"


def fleet_names(count: int) -> list[str]:
    """Give ``count`` skill names."""
    return [f"fleet-{index:03d}" for index in range(count)]


def make_fleet(root: Path, count: int, remote: Path, artifacts: str) -> list[Skill]:
    """Give ``count`` committed skill repos, each with a run the gate passed (images pushed)."""
    skills = []
    for name in fleet_names(count):
        repo = make_skill_repo(root / name, skill_config(name, artifacts, str(remote)))
        skill = Skill(name, repo)
        skill.passed_run(baseline=None)
        skills.append(skill)
    return skills


@dataclass(frozen=True)
class FleetResult:
    """How the concurrent deploys went."""

    seconds: float
    failed: list[str]
    """The output of each deploy that did not exit 0."""
    outputs: list[str]
    """The output of every deploy, in the order of the skills."""


def deploy_all(skills: list[Skill], env: dict[str, str]) -> FleetResult:
    """Give how ``skillmaker deploy`` went for every skill, all started at once as processes."""
    env = {**env, "PYTHONPATH": str(CHECKOUT)}
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "skillmaker", "deploy", "--repo", str(skill.repo)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for skill in skills
    ]
    failed, outputs = [], []
    for skill, process in zip(skills, processes, strict=True):
        out, _ = process.communicate(timeout=1800)
        outputs.append(out)
        if process.returncode != 0:
            failed.append(f"{skill.name} exit {process.returncode}:\n{out}")
    return FleetResult(time.monotonic() - started, failed, outputs)


def missing(skills: list[Skill], remote: Path, endpoint: str | None = None) -> list[str]:
    """Give what did not land: per skill, its tag in the template, the stack and the registry."""
    text = subprocess.run(
        ["git", "show", "main:skills.yaml"], cwd=remote, capture_output=True, text=True, check=True
    ).stdout
    client = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=endpoint)
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    running = client.get_template(StackName="skills")["TemplateBody"]
    problems = []
    for skill in skills:
        tag = f"1-{git.head_commit(skill.repo)[:7]}-cpu"
        entry = skill_entry(text, "skills.yaml", "SkillImages", skill.name)
        if entry is None or entry.tag != tag:
            problems.append(f"{skill.name}: not at {tag} in the infra repo")
        output = "".join(part.capitalize() for part in skill.name.split("-")) + "ImageTag"
        if outputs.get(output) != tag or f"Tag: {tag}" not in str(running):
            problems.append(f"{skill.name}: the stack does not run {tag}")
        deployed = read_registry(load_skill(skill.repo).artifacts(), skill.name)["deployed"]
        if deployed is None or deployed["image_tag"] != tag:
            problems.append(f"{skill.name}: the registry does not say {tag} is deployed")
    return problems


def assert_deploy_failed(skill: Skill, name: str, run: int, cause: str) -> None:
    """Check the skill's registry and run record say its deploy failed, and why, with no version live."""
    registry = read_registry(load_skill(skill.repo).artifacts(), name)
    assert registry["deployed"] is None
    assert registry["history"][-1]["decision"] == "deploy failed"
    record = json.loads((skill.repo / f".skillmaker/runs/{run}/deploy.json").read_text())
    assert record["outcome"] == "failed" and cause in record["message"]


def commit_subjects(remote: Path) -> list[str]:
    """Give the subjects of the infra repo's history on main, newest first."""
    log = subprocess.run(
        ["git", "log", "--format=%s", "main"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return log.splitlines()


def deploy_commits(remote: Path) -> int:
    """Give how many deploy commits the infra repo's history holds."""
    return sum(subject.startswith("Deploy ") for subject in commit_subjects(remote))


def skill_pair(root: Path) -> tuple[Skill, Skill, Path]:
    """Give two skills whose gate passed, sharing an S3 artifacts store, and their infra remote."""
    remote = init_infra_repo(root / "infra.git", bare=True)
    first, second = make_fleet(root / "skills", 2, remote, s3_artifacts("team"))
    return first, second, remote


def environment() -> dict[str, str]:
    """Give this process's environment (the deploys inherit it)."""
    return dict(os.environ)
