"""The registry: atomic version allocation, deployed version, history, on file:// and S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

from skillmaker.adapters.store import Store, open_store
from skillmaker.domain.layout import registry_key
from skillmaker.errors import UserError
from skillmaker.registry import (
    allocate_version,
    deployed_version,
    mark_deployed,
    read_registry,
    record_deploy_failure,
)
from tests.helpers import free_port

SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
CONCURRENT = 20


@pytest.fixture(scope="module")
def serial_moto() -> Iterator[str]:
    """Give the endpoint of a moto server over HTTP that answers one request at a time.

    moto's threaded server checks ``If-Match``/``If-None-Match`` and then writes, without a lock,
    so two racing conditional PUTs can both win there; S3 applies each conditional write
    atomically. Serving requests one by one restores that atomicity (moto keeps one state per
    process, so this server sees the buckets of the shared one).
    """
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", free_port(), app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(params=["file", "s3"])
def store_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Give the URI of an empty store: a folder, or a bucket on moto over HTTP."""
    if request.param == "file":
        yield (tmp_path / "artifacts").as_uri()
        return
    request.getfixturevalue("aws_env")
    monkeypatch.setenv("AWS_ENDPOINT_URL", request.getfixturevalue("serial_moto"))
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="registry-test",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    yield "s3://registry-test/team"


def test_versions_count_up_from_one_per_skill(store_uri: str) -> None:
    store = open_store(store_uri)
    assert [allocate_version(store, "digits", SHA) for _ in range(3)] == [1, 2, 3]
    assert allocate_version(store, "cars") == 1
    history = read_registry(store, "digits")["history"]
    assert [(h["skill_version"], h["code_version"], h["decision"]) for h in history] == [
        (1, SHA, "allocated"),
        (2, SHA, "allocated"),
        (3, SHA, "allocated"),
    ]


def test_twenty_threads_get_twenty_distinct_versions(store_uri: str) -> None:
    store = open_store(store_uri)
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        versions = list(pool.map(lambda _: allocate_version(store, "digits"), range(CONCURRENT)))
    assert sorted(versions) == list(range(1, CONCURRENT + 1))
    registry = read_registry(store, "digits")
    assert registry["last_version"] == CONCURRENT
    assert sorted(h["skill_version"] for h in registry["history"]) == sorted(versions)


_ALLOCATE = """
import os, sys, time
from pathlib import Path
from skillmaker.adapters.store import open_store
from skillmaker.registry import allocate_version
store = open_store(sys.argv[1])
store.head("warm-up")  # connect before the start signal, so only the allocations race
go = Path(sys.argv[2])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
print(allocate_version(store, "digits"))
"""


def test_twenty_processes_get_twenty_distinct_versions(store_uri: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _ALLOCATE, store_uri, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(CONCURRENT)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < CONCURRENT and time.monotonic() < deadline:
        time.sleep(0.1)
    go.touch()  # every process is connected and waiting: release them together
    versions = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        versions.append(int(out))
    assert sorted(versions) == list(range(1, CONCURRENT + 1))
    assert read_registry(open_store(store_uri), "digits")["last_version"] == CONCURRENT


def _deploy(store: Store, version: int) -> None:
    mark_deployed(
        store,
        "digits",
        skill_version=version,
        code_version=SHA,
        image_tag=f"{version}-1a2b3c4-cpu",
        gate="passed",
        infra_commit="c" * 40,
    )


def test_the_deployed_version_changes_only_on_a_successful_deploy(store_uri: str) -> None:
    store = open_store(store_uri)
    assert deployed_version(store, "digits") is None
    allocate_version(store, "digits", SHA)
    allocate_version(store, "digits", SHA)
    _deploy(store, 1)
    before = store.get_bytes(registry_key("digits"))
    record_deploy_failure(
        store,
        "digits",
        skill_version=2,
        image_tag="2-1a2b3c4-cpu",
        message="stack 'skills' ended in UPDATE_ROLLBACK_COMPLETE",
    )
    after = read_registry(store, "digits")
    assert after["deployed"] == json.loads(before)["deployed"]
    assert after["deployed"] is not None
    assert after["deployed"]["skill_version"] == 1
    assert [h["decision"] for h in after["history"]] == ["deployed", "deploy failed"]
    assert "UPDATE_ROLLBACK_COMPLETE" in after["history"][1]["message"]


def test_an_unallocated_version_cannot_be_deployed(store_uri: str) -> None:
    store = open_store(store_uri)
    allocate_version(store, "digits")
    with pytest.raises(UserError, match="version 5 was never allocated"):
        _deploy(store, 5)
    assert deployed_version(store, "digits") is None


def test_a_broken_registry_is_named(tmp_path: Path) -> None:
    store = open_store((tmp_path / "artifacts").as_uri())
    store.put_bytes(registry_key("digits"), b"{not json")
    with pytest.raises(UserError, match=r"skills/digits/registry.json: not valid JSON"):
        allocate_version(store, "digits")
