"""Stores that must honour conditional writes: refused when they do not; lost answers recognised."""

from __future__ import annotations

import boto3
import pytest

from skillmaker.adapters.cas import UnsafeStoreError
from skillmaker.adapters.s3 import S3Store
from skillmaker.registry import allocate_version, read_registry
from tests.helpers import MotoServer
from tests.s3_proxy import ProxyFaults, s3_proxy
from tests.skill_repos import SkillFactory


@pytest.fixture
def bucket(aws_env: MotoServer) -> str:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="skill-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return "skill-artifacts"


def test_a_store_that_ignores_conditional_writes_is_refused(
    aws_env: MotoServer, bucket: str
) -> None:
    with s3_proxy(aws_env.endpoint, ProxyFaults(ignore_conditions=True)) as proxy:
        store = S3Store(bucket, "careless", endpoint_url=proxy, region="eu-west-1")
        with pytest.raises(UnsafeStoreError) as refused:
            allocate_version(store, "digits", "a" * 40)
    assert str(refused.value) == (
        "s3://skill-artifacts/careless: the store ignores conditional writes (If-None-Match and "
        "If-Match): it wrote over an object it was told to keep, so pipelines could be handed "
        "the same version. Use a store that honours them (AWS S3, MinIO, or file://)"
    )
    honest = S3Store(bucket, "careless", region="eu-west-1")
    assert read_registry(honest, "digits")["last_version"] == 0, "no version was handed out"
    assert list(honest.list("")) == [], "the probe cleaned up after itself"


def test_the_version_stage_exits_2_on_such_a_store(
    aws_env: MotoServer, bucket: str, make_skill: SkillFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    skill = make_skill(artifacts="s3://skill-artifacts/team")
    with s3_proxy(aws_env.endpoint, ProxyFaults(ignore_conditions=True)) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy)
        result = skill.run("version")
    assert result.code == 2
    assert "the store ignores conditional writes (If-None-Match and If-Match)" in result.err
    assert not (skill.repo / ".skillmaker/current.json").exists()


def test_an_allocation_whose_answer_was_lost_keeps_its_number(
    aws_env: MotoServer, bucket: str
) -> None:
    faults = ProxyFaults(lose_answers_to="registry.json", answers_to_lose=1)
    with s3_proxy(aws_env.endpoint, faults) as proxy:
        store = S3Store(bucket, "team", endpoint_url=proxy, region="eu-west-1")
        first = allocate_version(store, "digits", "a" * 40, allocation="run-a")
        second = allocate_version(store, "digits", "b" * 40, allocation="run-b")
    assert faults.lost == 1, "the first write's answer was lost on the way back"
    assert (first, second) == (1, 2)
    registry = read_registry(S3Store(bucket, "team", region="eu-west-1"), "digits")
    assert registry["last_version"] == 2
    assert [(h["skill_version"], h.get("allocation")) for h in registry["history"]] == [
        (1, "run-a"),
        (2, "run-b"),
    ]


def test_a_retried_allocation_gets_its_version_back(aws_env: MotoServer, bucket: str) -> None:
    store = S3Store(bucket, "team", region="eu-west-1")
    assert allocate_version(store, "digits", "a" * 40, allocation="run-a") == 1
    assert allocate_version(store, "digits", "a" * 40, allocation="run-a") == 1
    assert allocate_version(store, "digits", "a" * 40) == 2
