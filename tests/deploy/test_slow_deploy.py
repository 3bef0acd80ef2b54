"""A deploy slower than its lease: a long stack update, a push the remote never answers.

The stack and the S3 store are moto over HTTP, the infra repo a real bare git remote. Time is the
test's own: the lease and the stack's polling share a clock that moves only when the adapter
sleeps between polls, so a 3,600 s update under a 900 s lease takes a second, with no race.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from skillmaker.adapters import git
from skillmaker.adapters.cloudformation import CloudFormationStack
from skillmaker.adapters.infra_repo import init_infra_repo
from skillmaker.context import load_skill
from skillmaker.deploy.lease import StackBusyError, StackLease
from skillmaker.domain.cfn_template import skill_entry
from tests.fleet import (
    FleetResult,
    assert_deploy_failed,
    commit_subjects,
    deploy_all,
    environment,
    missing,
    s3_artifacts,
    skill_pair,
)
from tests.helpers import MotoServer
from tests.skill_repos import Skill, make_skill_repo, skill_config

LEASE = "stacks/skills/deploy-lease.json"
POLL = 120.0
"""Seconds of the test's clock that pass between two polls of the stack."""


class Clock:
    """The deploy's clock: real time when the test starts, then moved only by the polls."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _stored(skill: Skill) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(load_skill(skill.repo).artifacts().get_bytes(LEASE))
    return loaded


def _subjects(remote: Path) -> list[str]:
    return [s for s in commit_subjects(remote) if not s.startswith("Skill stack")]


def _entry_tag(remote: Path, skill: str) -> str | None:
    text = subprocess.run(
        ["git", "show", "main:skills.yaml"], cwd=remote, capture_output=True, text=True, check=True
    ).stdout
    entry = skill_entry(text, "skills.yaml", "SkillImages", skill)
    return entry.tag if entry else None


def _held_stack(polls: int, on_poll: Callable[[int], None], clock: Clock) -> CloudFormationStack:
    """Give the real adapter on moto whose create or update stays in progress for ``polls`` polls.

    moto finishes a stack update at once; this client reads the stack back as still in progress
    for as long as a slow CloudFormation update would take, each poll ``POLL`` seconds later.
    """
    client = boto3.client("cloudformation", region_name="eu-west-1")
    held: dict[str, Any] = {"left": 0, "status": "", "polls": 0}

    def changed(operation: str) -> Callable[..., None]:
        def arm(**_: Any) -> None:
            held["left"], held["status"] = polls, f"{operation}_IN_PROGRESS"

        return arm

    def described(parsed: dict[str, Any], **_: Any) -> None:
        if int(held["left"]) > 0 and parsed.get("Stacks"):
            held["left"] = int(held["left"]) - 1
            parsed["Stacks"][0]["StackStatus"] = held["status"]

    def sleep(seconds: float) -> None:
        clock.now += seconds
        held["polls"] = int(held["polls"]) + 1
        on_poll(int(held["polls"]))

    client.meta.events.register("after-call.cloudformation.CreateStack", changed("CREATE"))
    client.meta.events.register("after-call.cloudformation.UpdateStack", changed("UPDATE"))
    client.meta.events.register("after-call.cloudformation.DescribeStacks", described)
    return CloudFormationStack("eu-west-1", client=client, poll_seconds=POLL, sleep=sleep)


@pytest.fixture
def pair(aws_env: MotoServer, tmp_path: Path) -> tuple[Skill, Skill, Path]:
    """Give two skills whose gate passed (the slow one, another) and their infra remote."""
    return skill_pair(tmp_path)


def _slow_deploy(
    monkeypatch: pytest.MonkeyPatch, polls: int, on_poll: Callable[[int], None]
) -> Clock:
    clock = Clock()
    stack = _held_stack(polls, on_poll, clock)
    monkeypatch.setattr("skillmaker.deploy.stage.stack_deployer", lambda ctx, choice: stack)
    monkeypatch.setattr(
        "skillmaker.deploy.stage.StackLease", functools.partial(StackLease, clock=clock)
    )
    return clock


def test_a_stack_update_longer_than_the_lease_keeps_it(
    pair: tuple[Skill, Skill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, _, remote = pair
    refused: list[float] = []
    expiries: list[float] = []

    def rival_tries(poll: int) -> None:  # another deployer asks for the stack at every poll
        rival = StackLease(load_skill(slow.repo).artifacts(), "skills", clock=clock)
        expiries.append(_stored(slow)["expires_at"] - clock.now)
        with pytest.raises(StackBusyError, match="is held by fleet-000 v1 "):
            rival.take("fleet-001", 1, seconds=900, wait=0, say=print)
        refused.append(clock.now)

    clock = _slow_deploy(monkeypatch, 30, rival_tries)  # 30 polls: 3,600 s under a 900 s lease
    started = clock.now
    result = slow.run("deploy")

    assert result.code == 0, result.err
    assert len(refused) == 30 and refused[-1] - started == 3_600
    assert min(expiries) > 900 / 3  # renewed every third of the lease, never near its end
    assert missing([slow], remote) == []
    assert _stored(slow)["state"] == "released"


def test_a_lease_lost_while_the_stack_updates_stops_the_wait_and_reverts(
    pair: tuple[Skill, Skill, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, taker, remote = pair
    took_over: list[FleetResult] = []
    polls_after: list[int] = []

    def stalls_then_is_taken_over(poll: int) -> None:
        if took_over:
            polls_after.append(poll)
            return
        lease = {**_stored(slow), "expires_at": time.time() - 1}  # as if it stalled that long
        load_skill(slow.repo).artifacts().put_bytes(LEASE, json.dumps(lease).encode())
        took_over.append(deploy_all([taker], environment()))

    _slow_deploy(monkeypatch, 30, stalls_then_is_taken_over)
    result = slow.run("deploy")

    assert took_over[0].failed == []
    [taker_output] = took_over[0].outputs
    pushed = _subjects(remote)
    assert [s.split(" ")[:2] for s in pushed] == [
        ["Deploy", "fleet-001"],
        ["Revert", pushed[1].split(" ")[1]],
        ["Deploy", "fleet-000"],
    ]
    assert "never verified it" in taker_output
    assert len(polls_after) <= 3  # stopped at its next renewal, not after 30 polls
    assert result.code == 2, result.err
    assert "lease on stack 'skills' expired and was taken by fleet-001 v1" in result.err
    assert "skill version 1 not deployed" in result.err
    assert "never landed or is reverted already" in result.out
    assert _entry_tag(remote, "fleet-000") is None
    assert missing([taker], remote) == []
    assert_deploy_failed(slow, "fleet-000", 1, "taken by fleet-001")


def test_a_push_the_remote_never_answers_is_cut_off_before_the_lease_ends_and_reverted(
    aws_env: MotoServer, tmp_path: Path
) -> None:
    remote = init_infra_repo(tmp_path / "infra.git", bare=True)
    held = tmp_path / "held-once"  # the remote takes the first push, then never answers it
    hook = remote / "hooks" / "post-receive"
    hook.write_text(f'#!/bin/sh\n[ -e "{held}" ] && exit 0\ntouch "{held}"\nexec sleep 300\n')
    hook.chmod(0o755)
    config = skill_config("fleet-000", s3_artifacts("team"), str(remote))
    config["deploy"]["lease_seconds"] = 10  # the least allowed: the push gets 9 s
    skill = Skill("fleet-000", make_skill_repo(tmp_path / "fleet-000", config))
    skill.passed_run(baseline=None)

    started = time.monotonic()
    result = skill.run("deploy")

    assert time.monotonic() - started < 60
    assert result.code == 2, result.err
    assert "was cut off after 9" in result.err and "it may have landed" in result.err
    assert "skill version 1 not deployed, the infra commit is reverted" in result.err
    cut = _subjects(remote)
    assert [s.split(" ")[:2] for s in cut] == [["Revert", "fleet-000"], ["Deploy", "fleet-000"]]
    assert _entry_tag(remote, "fleet-000") is None
    assert_deploy_failed(skill, "fleet-000", 1, "was cut off after 9")
    stored = _stored(skill)  # released, the cut-off push noted for the next holder to check
    assert stored["state"] == "released" and stored["pushed"] is not None
    assert git.contains(remote, stored["pushed"], "main")

    again = skill.run("deploy")  # the remote answers now
    assert again.code == 0, again.err
    assert f"pushed {stored['pushed'][:7]} and never verified it" in again.out
    assert "never landed or is reverted already: nothing to revert" in again.out
    assert missing([skill], remote) == []
