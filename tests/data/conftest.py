"""Fixtures of the data tests: the same empty store over ``file://`` and over moto's S3 server."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from skillmaker.adapters.store import Store, open_store
from tests.helpers import MotoServer

BUCKET = "skillmaker-data-test"


def make_bucket(aws: MotoServer, name: str) -> None:
    """Create a bucket on the moto server."""
    boto3.client("s3", endpoint_url=aws.endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Give an empty data store: a local folder, or ``s3://<bucket>/data`` on moto's server."""
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    return s3_store(request.getfixturevalue("aws_env"))


def s3_store(aws: MotoServer) -> Store:
    """Give ``s3://<bucket>/data`` on a fresh bucket of the moto server."""
    make_bucket(aws, BUCKET)
    return open_store(f"s3://{BUCKET}/data")


def plant(store: Store, key: str, data: bytes) -> None:
    """Put an object under any key, even one the store would refuse (as another tool could)."""
    if store.uri.startswith("s3://"):
        boto3.client("s3").put_object(Bucket=BUCKET, Key=f"data/{key}", Body=data)
    else:
        path = Path(store.uri.removeprefix("file://")) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
