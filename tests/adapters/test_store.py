"""The object store: the same behaviour from ``file://`` and from moto's S3 server over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from skillmaker.adapters.s3 import S3Store
from skillmaker.adapters.store import (
    FileStore,
    ObjectNotFound,
    PreconditionFailed,
    Store,
    StoreError,
    md5_hex,
    open_store,
)
from skillmaker.errors import UserError
from tests.helpers import MotoServer

BUCKET = "skillmaker-store-test"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Give an empty store: a local folder, or a prefix of a bucket on moto's S3 server."""
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    aws: MotoServer = request.getfixturevalue("aws_env")
    boto3.client("s3", endpoint_url=aws.endpoint).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return open_store(f"s3://{BUCKET}/some/prefix")


def test_open_store_picks_the_backend_from_the_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path.as_uri()), FileStore)
    assert isinstance(open_store(f"s3://{BUCKET}/p"), S3Store)


@pytest.mark.parametrize("uri", ["ftp://host/x", "s3://ab/x", "file://host/x", "bucket/x"])
def test_open_store_refuses_other_uris(uri: str) -> None:
    with pytest.raises(UserError, match=r"URI|bucket|three slashes"):
        open_store(uri)


def test_put_then_get_gives_the_bytes_and_the_md5_etag(store: Store) -> None:
    etag = store.put_bytes("a/b/c.bin", b"hello")
    assert etag == md5_hex(b"hello")
    assert store.get_bytes("a/b/c.bin") == b"hello"
    assert store.get_with_etag("a/b/c.bin") == (b"hello", etag)


def test_put_replaces_an_object(store: Store) -> None:
    store.put_bytes("k", b"one")
    store.put_bytes("k", b"two")
    assert store.get_bytes("k") == b"two"


def test_head_gives_size_and_etag_or_none(store: Store) -> None:
    store.put_bytes("x/y.txt", b"12345")
    info = store.head("x/y.txt")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("x/y.txt", 5, md5_hex(b"12345"))
    assert store.head("x/missing.txt") is None


def test_list_gives_keys_under_a_prefix_in_order(store: Store) -> None:
    assert list(store.list()) == []
    for key in ("b/2", "a/1", "a/3/x", "ab/4", "c"):
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list()] == ["a/1", "a/3/x", "ab/4", "b/2", "c"]
    assert [i.key for i in store.list("a/")] == ["a/1", "a/3/x"]
    assert [i.key for i in store.list("a")] == ["a/1", "a/3/x", "ab/4"]
    listed = {i.key: (i.size, i.etag) for i in store.list()}
    assert listed["ab/4"] == (4, md5_hex(b"ab/4"))


def test_delete_removes_and_tolerates_missing(store: Store) -> None:
    store.put_bytes("d/e", b"x")
    store.delete("d/e")
    assert store.head("d/e") is None
    store.delete("d/e")
    assert list(store.list()) == []


def test_missing_key_raises_object_not_found(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match="no/such"):
        store.get_bytes("no/such")
    with pytest.raises(ObjectNotFound):
        store.get_with_etag("no/such")
    destination = tmp_path / "out" / "file"
    with pytest.raises(ObjectNotFound):
        store.download("no/such", destination)
    assert not destination.exists()


def test_download_and_upload_round_trip(store: Store, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 100
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    uploaded = store.upload(source, "files/blob.bin")
    assert (uploaded.size, uploaded.etag) == (len(payload), md5_hex(payload))
    destination = tmp_path / "deep" / "down" / "blob.bin"
    info = store.download("files/blob.bin", destination)
    assert destination.read_bytes() == payload
    assert info == uploaded
    # Downloads go through a temporary file that is renamed; none is left behind.
    assert [p.name for p in destination.parent.iterdir()] == ["blob.bin"]


def test_if_none_match_creates_only_once(store: Store) -> None:
    store.put_bytes("ledger.json", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("ledger.json", b"second", if_none_match=True)
    assert store.get_bytes("ledger.json") == b"first"


def test_if_match_replaces_only_an_unchanged_object(store: Store) -> None:
    etag = store.put_bytes("reg.json", b"v1")
    newer = store.put_bytes("reg.json", b"v2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("reg.json", b"v3", if_match=etag)  # stale: someone wrote v2
    assert store.get_with_etag("reg.json") == (b"v2", newer)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("absent.json", b"x", if_match=etag)


def _race(count: int, write: Callable[[int], object]) -> list[int]:
    """Give the indexes of the racing writers that won."""
    barrier = threading.Barrier(count)
    winners: list[int] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        try:
            write(index)
        except PreconditionFailed:
            return
        with lock:
            winners.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_eight_racing_creators_exactly_one_wins(store: Store) -> None:
    winners = _race(8, lambda i: store.put_bytes("race.json", f"{i}".encode(), if_none_match=True))
    assert len(winners) == 1
    assert store.get_bytes("race.json") == f"{winners[0]}".encode()


def test_eight_racing_updaters_of_one_version_exactly_one_wins(store: Store) -> None:
    etag = store.put_bytes("race.json", b"base")
    winners = _race(8, lambda i: store.put_bytes("race.json", f"{i}".encode(), if_match=etag))
    assert len(winners) == 1
    assert store.get_bytes("race.json") == f"{winners[0]}".encode()


UNSAFE_KEYS = [
    "../escape",
    "a/../../escape",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "a\\b",
    "a\x00b",
    "",
    "trailing/",
    "x" * 256,
    "/".join(["y" * 200] * 6),
]


@pytest.mark.parametrize("key", UNSAFE_KEYS, ids=range(len(UNSAFE_KEYS)))
def test_unsafe_keys_are_refused_and_nothing_is_written(
    store: Store, tmp_path: Path, key: str
) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"x")
    attempts: list[Callable[[], object]] = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_bytes(key, b"x", if_none_match=True),
        lambda: store.upload(source, key),
        lambda: store.get_bytes(key),
        lambda: store.head(key),
        lambda: store.download(key, tmp_path / "dl"),
        lambda: store.delete(key),
    ]
    for attempt in attempts:
        with pytest.raises(StoreError, match="unsafe key"):
            attempt()
    assert list(store.list()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) in (["src"], ["src", "store"])
    assert not Path("/escape").exists()
