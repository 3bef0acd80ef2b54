"""A slow deployer whose lease expired and was taken over (S3 store and stack on moto over HTTP).

It renews its lease by compare-and-swap, noting the commit, before each push, before the stack
update and before it records success: once taken over it pushes nothing more and records no
success, and the deployer that took over undoes the commit it was told of, so neither publishes
nor is failed by the other's unverified tag.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from skillmaker.adapters import git
from skillmaker.context import load_skill
from skillmaker.deploy.lease import StackLease
from skillmaker.deploy.transaction import update_stack
from skillmaker.domain.cfn_template import skill_entry
from skillmaker.domain.release import Lease
from skillmaker.registry import read_registry
from tests.fleet import (
    FleetResult,
    assert_deploy_failed,
    deploy_all,
    environment,
    missing,
    skill_pair,
)
from tests.helpers import MotoServer
from tests.skill_repos import Skill

LEASE = "stacks/skills/deploy-lease.json"


def _stored(skill: Skill) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(load_skill(skill.repo).artifacts().get_bytes(LEASE))
    return loaded


def _expire(skill: Skill) -> None:
    """Move the stack's lease past its expiry, as if its holder had stalled for that long."""
    lease = {**_stored(skill), "expires_at": time.time() - 1}
    load_skill(skill.repo).artifacts().put_bytes(LEASE, json.dumps(lease).encode())


def _subjects(remote: Path) -> list[str]:
    return subprocess.run(
        ["git", "log", "--format=%s", "main"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def _entry_tag(remote: Path, skill: str) -> str | None:
    text = subprocess.run(
        ["git", "show", "main:skills.yaml"], cwd=remote, capture_output=True, text=True, check=True
    ).stdout
    entry = skill_entry(text, "skills.yaml", "SkillImages", skill)
    return entry.tag if entry else None


def _outputs() -> dict[str, str]:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture
def pair(aws_env: MotoServer, tmp_path: Path) -> tuple[Skill, Skill, Path]:
    """Give two skills whose gate passed (the slow one, the one that takes over) and their remote."""
    return skill_pair(tmp_path)


def test_a_deployer_taken_over_before_its_push_pushes_nothing(
    pair: tuple[Skill, Skill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, taker, remote = pair
    original = StackLease.pushing
    took_over: list[FleetResult] = []

    def stalls_before_pushing(self: StackLease, lease: Lease, commit: str, seconds: float) -> Lease:
        if not took_over:  # the slow one stalls past its lease; the other deployer takes over
            _expire(slow)
            took_over.append(deploy_all([taker], environment()))
        return original(self, lease, commit, seconds)

    monkeypatch.setattr(StackLease, "pushing", stalls_before_pushing)
    result = slow.run("deploy")

    assert took_over[0].failed == []
    assert result.code == 2, result.err
    assert "lease on stack 'skills' expired and was taken by fleet-001 v1" in result.err
    assert "nothing was pushed, run the deploy again" in result.err
    assert "Traceback" not in result.err
    assert [s for s in _subjects(remote) if not s.startswith("Skill stack")] == [
        f"Deploy fleet-001 skill version 1 (1-{git.head_commit(taker.repo)[:7]}-cpu)"
    ]
    assert _entry_tag(remote, "fleet-000") is None
    assert "Fleet000ImageTag" not in _outputs()
    assert missing([taker], remote) == []
    assert read_registry(load_skill(slow.repo).artifacts(), "fleet-000")["deployed"] is None
    assert _stored(slow)["holder"].startswith("fleet-001 v1 ")


def test_a_deployer_taken_over_after_its_push_is_undone_and_records_no_success(
    pair: tuple[Skill, Skill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, taker, remote = pair
    noted_at_push: list[tuple[str | None, str]] = []
    real_push = git.push

    def push(repo: Path, remote_name: str, branch: str, *, timeout: float | None = None) -> bool:
        noted_at_push.append((_stored(slow)["pushed"], git.head_commit(repo)))
        assert timeout is not None and 0 < timeout <= 900 * 0.9  # never past the lease
        return real_push(repo, remote_name, branch, timeout=timeout)

    took_over: list[FleetResult] = []

    def stalls_after_the_stack_update(*args: Any, **kwargs: Any) -> Any:
        answer = update_stack(*args, **kwargs)  # the stack runs the slow one's tag, unverified
        _expire(slow)
        took_over.append(deploy_all([taker], environment()))
        return answer

    monkeypatch.setattr(git, "push", push)
    monkeypatch.setattr("skillmaker.deploy.stage.update_stack", stalls_after_the_stack_update)
    result = slow.run("deploy")

    [(noted, pushed)] = noted_at_push  # the lease named the commit before it was pushed
    assert noted == pushed
    assert took_over[0].failed == []
    [taker_output] = took_over[0].outputs
    assert f"pushed {pushed[:7]} and never verified it" in taker_output
    assert f"reverted the template commit {pushed[:7]}" in taker_output
    assert result.code == 2, result.err
    assert "lease on stack 'skills' expired and was taken by fleet-001 v1" in result.err
    assert "skill version 1 not deployed" in result.err
    assert f"infra commit {pushed[:7]} never landed or is reverted already" in result.out
    subjects = [s for s in _subjects(remote) if not s.startswith("Skill stack")]
    assert [s.split(" ")[:2] for s in subjects] == [
        ["Deploy", "fleet-001"],
        ["Revert", f"{pushed[:7]}:"],
        ["Deploy", "fleet-000"],
    ]
    assert _entry_tag(remote, "fleet-000") is None
    outputs = _outputs()  # the stack runs what the taker verified, without the slow one's tag
    assert "Fleet000ImageTag" not in outputs
    assert missing([taker], remote) == []
    assert_deploy_failed(slow, "fleet-000", 1, "taken by fleet-001")


def test_a_commit_noted_but_never_pushed_is_nothing_to_revert(
    pair: tuple[Skill, Skill, Path],
) -> None:
    slow, _, remote = pair
    lease = {  # a deployer died between noting its commit and pushing it
        "holder": "fleet-009 v4 on ci-7 pid 42",
        "skill": "fleet-009",
        "skill_version": 4,
        "acquired_at": time.time() - 60,
        "expires_at": time.time() - 1,
        "state": "held",
        "pushed": "f" * 40,
    }
    load_skill(slow.repo).artifacts().put_bytes(LEASE, json.dumps(lease).encode())
    result = slow.run("deploy")
    assert result.code == 0, result.err
    assert "infra commit fffffff never landed or is reverted already: nothing to revert" in (
        result.out
    )
    assert [s for s in _subjects(remote) if not s.startswith("Skill stack")] == [
        f"Deploy fleet-000 skill version 1 (1-{git.head_commit(slow.repo)[:7]}-cpu)"
    ]
    assert missing([slow], remote) == []
