"""The CloudFormation adapter against moto's server over HTTP (and a rollback moto cannot make)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from skillmaker.adapters.cloudformation import (
    CloudFormationStack,
    StackError,
    StackFailedError,
    client_config,
    cloudformation_configured,
    status_outcome,
)
from skillmaker.domain.cfn_template import set_tag
from skillmaker.domain.release import stack_call_limit
from skillmaker.resources import infra_dir
from tests.helpers import MotoServer
from tests.skill_repos import fake_rolling_back_cloudformation

BUNDLED = (infra_dir() / "skills.yaml").read_text(encoding="utf-8")


def _with_tag(tag: str) -> str:
    return set_tag(BUNDLED, "skills.yaml", "SkillImages", "digits", tag)


def test_create_update_and_no_update_over_http(aws_env: MotoServer) -> None:
    stack = CloudFormationStack.from_env("eu-west-1", aws_env.env())
    created = stack.deploy("skills", _with_tag("1-aaaaaaa-cpu"))
    assert (created.action, created.status) == ("created", "CREATE_COMPLETE")
    assert created.outputs["DigitsImageTag"] == "1-aaaaaaa-cpu"
    assert created.outputs["VwGolfVariantImageTag"] == "0-0000000-gpu"

    updated = stack.deploy("skills", _with_tag("2-bbbbbbb-cpu"))
    assert (updated.action, updated.status) == ("updated", "UPDATE_COMPLETE")
    assert stack.outputs("skills")["DigitsImageTag"] == "2-bbbbbbb-cpu"

    again = stack.deploy("skills", _with_tag("2-bbbbbbb-cpu"))
    assert again.action == "unchanged"
    assert again.outputs["DigitsImageTag"] == "2-bbbbbbb-cpu"


def test_parameters_set_by_an_operator_survive_a_deploy(aws_env: MotoServer) -> None:
    stack = CloudFormationStack.from_env("eu-west-1", aws_env.env())
    stack.deploy("skills", _with_tag("1-aaaaaaa-cpu"))
    client = boto3.client("cloudformation", region_name="eu-west-1")
    client.update_stack(
        StackName="skills",
        TemplateBody=_with_tag("1-aaaaaaa-cpu"),
        Parameters=[{"ParameterKey": "ImageRegistry", "ParameterValue": "ecr.example.com/team"}],
    )
    stack.deploy("skills", _with_tag("2-bbbbbbb-cpu"))
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in client.describe_stacks(StackName="skills")["Stacks"][0]["Parameters"]
    }
    assert parameters["ImageRegistry"] == "ecr.example.com/team"


def _parameters(client: Any) -> dict[str, str]:
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_parameters_keep_their_values_over_many_deploys(aws_env: MotoServer) -> None:
    # The values read back were once sent again: moto shows a CommaDelimitedList as a Python
    # list's repr, which then grew with every deploy until, some 26 deploys in, UpdateStack
    # requests passed moto's 50 MB limit (an HTML 413).
    stack = CloudFormationStack.from_env("eu-west-1", aws_env.env())
    client = boto3.client("cloudformation", region_name="eu-west-1")
    stack.deploy("skills", _with_tag("1-aaaaaaa-cpu"))
    defaults = _parameters(client)
    sent: list[object] = []
    stack.client.meta.events.register(
        "provide-client-params.cloudformation.UpdateStack",
        lambda params, **_: sent.append(params["Parameters"]),
    )
    for version in range(2, 7):
        stack.deploy("skills", _with_tag(f"{version}-bbbbbbb-cpu"))
        assert _parameters(client) == defaults
    assert sent == [[]] * 5  # every value is the template's default: nothing to keep

    client.update_stack(  # an operator picks the subnets (a list) and the registry by hand
        StackName="skills",
        TemplateBody=_with_tag("6-bbbbbbb-cpu"),
        Parameters=[
            {"ParameterKey": "Subnets", "ParameterValue": "subnet-a,subnet-b,subnet-c"},
            {"ParameterKey": "ImageRegistry", "ParameterValue": "ecr.example.com/team"},
        ],
    )
    chosen = _parameters(client)
    for version in range(7, 10):
        stack.deploy("skills", _with_tag(f"{version}-ccccccc-cpu"))
        assert _parameters(client) == chosen
    assert sent[-1] == [
        {"ParameterKey": "ImageRegistry", "UsePreviousValue": True},
        {"ParameterKey": "Subnets", "UsePreviousValue": True},
    ]


def test_losing_a_create_race_turns_into_an_update(aws_env: MotoServer) -> None:
    stack = CloudFormationStack.from_env("eu-west-1", aws_env.env())
    stack.poll_seconds = 0.0
    rival = boto3.client("cloudformation", region_name="eu-west-1")

    def rival_creates_first(**_: object) -> None:
        # Another skill's deploy creates the stack between our look and our create.
        if not rival.list_stacks()["StackSummaries"]:
            rival.create_stack(StackName="skills", TemplateBody=_with_tag("1-aaaaaaa-cpu"))

    stack.client.meta.events.register("before-call.cloudformation.CreateStack", rival_creates_first)
    result = stack.deploy("skills", _with_tag("2-bbbbbbb-cpu"))
    assert result.action == "updated"
    assert result.outputs["DigitsImageTag"] == "2-bbbbbbb-cpu"


def test_a_rolled_back_update_fails_with_the_resource_reason() -> None:
    stack = fake_rolling_back_cloudformation("skills")
    with pytest.raises(StackFailedError) as caught:
        stack.deploy("skills", _with_tag("2-bbbbbbb-cpu"))
    assert caught.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert caught.value.reason == "DigitsService: CannotPullContainerError: image not found"


def test_statuses_read_as_success_failure_or_moving() -> None:
    assert status_outcome("UPDATE_COMPLETE") == "success"
    assert status_outcome("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS") == "in progress"
    assert status_outcome("UPDATE_ROLLBACK_COMPLETE") == "failure"
    assert status_outcome("ROLLBACK_COMPLETE") == "failure"


def test_the_stack_step_needs_an_endpoint_or_credentials() -> None:
    assert not cloudformation_configured({"HOME": "/home/me"})
    assert cloudformation_configured({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"})
    assert cloudformation_configured({"AWS_PROFILE": "prod"})


def _worst_case(config: Any) -> float:
    attempts = config.retries["total_max_attempts"]
    backoff = sum(min(20.0, 2.0**i) for i in range(1, attempts))
    return float(attempts * (config.connect_timeout + config.read_timeout) + backoff)


def test_the_client_keeps_its_timeouts_unless_a_call_must_end_sooner() -> None:
    plain: Any = client_config(6)  # botocore's Config has untyped attributes
    assert (plain.connect_timeout, plain.read_timeout, plain.retries["total_max_attempts"]) == (
        10,
        60,
        6,
    )
    # The default lease (900 s) leaves 510 s a call: botocore's defaults fit, so they stay.
    default_lease: Any = client_config(6, stack_call_limit(900))
    assert default_lease.read_timeout == 60
    for limit in (stack_call_limit(10), 30.0, 120.0, 300.0):
        config: Any = client_config(6, limit)
        assert _worst_case(config) <= limit + 1e-9, limit
        assert config.retries["total_max_attempts"] >= 1 and config.read_timeout > 0


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Give the address of a server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def test_a_call_to_a_silent_endpoint_ends_within_the_lease_bound(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    limit = stack_call_limit(10)  # the shortest lease the config allows
    env = {"AWS_ENDPOINT_URL_CLOUDFORMATION": silent_endpoint}
    stack = CloudFormationStack.from_env("eu-west-1", env, call_limit=limit)
    started = time.monotonic()
    with pytest.raises(StackError, match="CloudFormation unreachable"):
        stack.describe("skills")
    # Without the bound this waits 6 attempts of 60 s; with it, the call gives up in time.
    assert time.monotonic() - started < 2 * limit
