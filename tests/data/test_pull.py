"""Pulling a store into the cache: incremental, resumable, and never writing outside the cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from skillmaker.adapters.store import Store, open_store
from skillmaker.data.images import UNSAFE_KEY
from skillmaker.data.pull import INDEX, OBJECTS, RefusedKey, pull
from tests.data.conftest import BUCKET, plant, s3_store
from tests.data.pictures import png
from tests.data.slowdown import SlowDownProxy
from tests.helpers import MotoServer


def _fill(store: Store, count: int) -> dict[str, bytes]:
    objects = {f"c{i % 3}/g{i:03d}/img{i:03d}.png": png(i, 16) for i in range(count)}
    for key, data in objects.items():
        store.put_bytes(key, data)
    return objects


def _files_under(root: Path) -> set[Path]:
    return {Path(d) / n for d, _, names in os.walk(root) for n in names}


def test_pull_mirrors_every_object_with_its_hash(store: Store, tmp_path: Path) -> None:
    objects = _fill(store, 12)
    cache = tmp_path / "cache"
    result = pull(store, cache, workers=4)
    assert [o.key for o in result.objects] == sorted(objects)
    assert sorted(result.fetched) == sorted(objects)
    for item in result.objects:
        assert item.path == (cache / OBJECTS / item.key).resolve()
        assert item.path.read_bytes() == objects[item.key]
        assert item.sha256 == hashlib.sha256(objects[item.key]).hexdigest()
        assert item.relative_path == f"objects/{item.key}"
    assert result.refused == ()


def test_second_pull_fetches_nothing(store: Store, tmp_path: Path) -> None:
    objects = _fill(store, 10)
    cache = tmp_path / "cache"
    pull(store, cache)
    again = pull(store, cache)
    assert again.fetched == ()
    assert again.reused == len(objects)
    assert [o.key for o in again.objects] == sorted(objects)


def test_changed_added_and_deleted_objects_are_synced(store: Store, tmp_path: Path) -> None:
    objects = _fill(store, 8)
    cache = tmp_path / "cache"
    pull(store, cache)
    changed, gone = sorted(objects)[:2]
    new_bytes = png(999, 16)
    store.put_bytes(changed, new_bytes)
    store.delete(gone)
    store.put_bytes("c9/g9/new.png", png(1000, 16))
    result = pull(store, cache)
    assert sorted(result.fetched) == sorted([changed, "c9/g9/new.png"])
    assert result.removed == (gone,)
    assert (cache / OBJECTS / changed).read_bytes() == new_bytes
    assert not (cache / OBJECTS / gone).exists()
    assert gone not in {o.key for o in result.objects}


def test_a_deleted_cache_file_is_fetched_again(store: Store, tmp_path: Path) -> None:
    objects = _fill(store, 4)
    cache = tmp_path / "cache"
    pull(store, cache)
    victim = sorted(objects)[1]
    (cache / OBJECTS / victim).unlink()
    assert pull(store, cache).fetched == (victim,)


def test_an_interrupted_pull_resumes_without_fetching_again(store: Store, tmp_path: Path) -> None:
    objects = _fill(store, 30)
    cache = tmp_path / "cache"

    def stop_after_ten(done: int, total: int) -> None:
        assert total == 30
        if done == 10:
            raise KeyboardInterrupt  # the user presses Ctrl-C in the middle of the pull

    with pytest.raises(KeyboardInterrupt):
        pull(store, cache, workers=2, on_progress=stop_after_ten)
    assert (cache / (INDEX + ".journal")).is_file()
    seen: list[int] = []
    resumed = pull(store, cache, workers=2, on_progress=lambda done, total: seen.append(total))
    # The ten finished downloads were journaled; at most the two in flight are fetched again.
    assert len(objects) - 10 <= len(resumed.fetched) <= len(objects) - 10 + 2
    assert seen and seen[0] == len(resumed.fetched)
    assert [o.key for o in resumed.objects] == sorted(objects)
    for item in resumed.objects:
        assert item.path.read_bytes() == objects[item.key]
    assert not [p for p in _files_under(cache) if p.name.startswith(".tmp-")]
    assert not (cache / (INDEX + ".journal")).exists()


S3_ONLY_UNSAFE = {
    "../escape.png": "has a '..' component",
    "c0/../../escape.png": "has a '..' component",
    "/abs.png": "is an absolute path",
    "c0//g/a.png": "has an empty component",
    "c0/./g/a.png": "has a '.' component",
    "c0/g/nul\x00.png": "contains a NUL character",
    "c0/g/" + "x" * 300 + ".png": "has a component longer than 255 bytes",
}


def test_unsafe_keys_are_refused_and_reported_and_the_pull_goes_on(
    store: Store, tmp_path: Path
) -> None:
    good = {"c0/g/ok.png": png(1, 16), "c1/g/ok.png": png(2, 16)}
    for key, data in good.items():
        store.put_bytes(key, data)
    unsafe = {
        "c0/g/back\\slash.png": "contains a backslash",
        "/".join(["y" * 250] * 5): "is longer than 1024 bytes",
    }
    if store.uri.startswith("s3://"):
        unsafe.update(S3_ONLY_UNSAFE)
    for key in unsafe:
        plant(store, key, b"payload")
    if store.uri.startswith("s3://"):
        # S3 can hold a key that is also the folder of other keys; a file system cannot.
        plant(store, "clash/f", b"a file that is also a folder")
        plant(store, "clash/f/inner.png", png(3, 16))
        unsafe["clash/f"] = "is also the folder of other keys"
        good["clash/f/inner.png"] = png(3, 16)
    else:
        # A file name that is not UTF-8 (the file system allows any bytes but / and NUL).
        root = Path(store.uri.removeprefix("file://"))
        Path(os.fsdecode(os.fsencode(root) + b"/c0/g/latin1-\xe9.png")).write_bytes(b"payload")
        unsafe["c0/g/latin1-\\xe9.png"] = "is not UTF-8"
    outside_before = _files_under(tmp_path)

    cache = tmp_path / "work" / "cache"
    result = pull(store, cache)

    assert {r.key: r.problem for r in result.refused} == unsafe
    assert result.quarantined == [{"key": k, "reason": UNSAFE_KEY} for k in sorted(unsafe)]
    assert sorted(o.key for o in result.objects) == sorted(good)
    # Nothing was written anywhere but the cache's objects folder and its index.
    written = _files_under(tmp_path) - outside_before
    allowed = {(cache / OBJECTS).resolve(), cache.resolve()}
    assert {p.resolve().parent for p in written if p.name == INDEX} <= allowed
    for path in written:
        if path.name != INDEX:
            assert path.resolve().is_relative_to((cache / OBJECTS).resolve()), path
    assert len(written) == len(good) + 1
    assert not (tmp_path / "work" / "escape.png").exists()
    assert not Path("/abs.png").exists()


def test_a_symlink_planted_in_the_cache_does_not_lead_writes_outside(
    store: Store, tmp_path: Path
) -> None:
    store.put_bytes("evil/g/x.png", png(5, 16))
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "cache"
    (cache / OBJECTS).mkdir(parents=True)
    (cache / OBJECTS / "evil").symlink_to(outside)
    result = pull(store, cache)
    assert result.refused == (RefusedKey("evil/g/x.png", "leads outside the cache folder"),)
    assert list(outside.iterdir()) == []


def test_links_planted_deeper_or_on_a_file_are_refused_and_links_inside_followed(
    tmp_path: Path,
) -> None:
    store = open_store((tmp_path / "store").as_uri())
    for key in ("a/g/deep/x.png", "a/g/y.png", "b/in/z.png", "a/g/ok.png"):
        store.put_bytes(key, png(len(key), 16))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "y.png").write_bytes(b"the user's own file")
    objects = tmp_path / "cache" / OBJECTS
    (objects / "a" / "g").mkdir(parents=True)
    (objects / "a" / "g" / "deep").symlink_to(outside)
    (objects / "a" / "g" / "y.png").symlink_to(outside / "y.png")
    (objects / "inner").mkdir()
    (objects / "b").symlink_to(objects / "inner")  # a link that stays inside the cache
    result = pull(store, tmp_path / "cache")
    assert result.refused == (
        RefusedKey("a/g/deep/x.png", "leads outside the cache folder"),
        RefusedKey("a/g/y.png", "leads outside the cache folder"),
    )
    assert [o.key for o in result.objects] == ["a/g/ok.png", "b/in/z.png"]
    assert sorted(p.name for p in outside.iterdir()) == ["y.png"]
    assert (outside / "y.png").read_bytes() == b"the user's own file"


def test_stale_files_and_the_folders_they_leave_empty_are_pruned(
    store: Store, tmp_path: Path
) -> None:
    objects = _fill(store, 6)
    cache = tmp_path / "cache"
    pull(store, cache)
    gone = sorted(objects)[0]
    store.delete(gone)
    stray = cache / OBJECTS / "c0" / "g000" / ".tmp-half-written"
    stray.write_bytes(b"half")
    (cache / OBJECTS / "empty" / "nested").mkdir(parents=True)
    pull(store, cache)
    left = {p.relative_to(cache / OBJECTS).as_posix() for p in _files_under(cache / OBJECTS)}
    assert left == set(objects) - {gone}
    assert not (cache / OBJECTS / gone).parent.exists()  # its folder held nothing else
    assert not (cache / OBJECTS / "empty").exists()
    assert (cache / OBJECTS / sorted(objects)[1]).parent.is_dir()


def test_s3_folder_markers_are_not_files(aws_env: MotoServer, tmp_path: Path) -> None:
    store = s3_store(aws_env)
    plant(store, "c0/", b"")
    store.put_bytes("c0/g/a.png", png(1, 16))
    result = pull(store, tmp_path / "cache")
    assert [o.key for o in result.objects] == ["c0/g/a.png"]
    assert result.refused == ()


def test_the_pull_lists_then_gets_each_changed_object_once_with_no_head(
    aws_env: MotoServer, tmp_path: Path
) -> None:
    objects = _fill(s3_store(aws_env), 40)
    with SlowDownProxy(aws_env.endpoint) as proxy:
        store = open_store(f"s3://{BUCKET}/data", endpoint_url=proxy.endpoint)
        cache = tmp_path / "cache"
        pull(store, cache, workers=4)
        assert proxy.counts == {"GET": 40 + 1}  # one listing page, one GET per object
        changed = "c1/g001/img001.png"
        store.put_bytes(changed, png(999, 16))
        proxy.counts.clear()
        again = pull(store, cache, workers=4)
        assert again.fetched == (changed,)
        assert proxy.counts == {"GET": 1 + 1}
    assert len(again.objects) == len(objects)


def test_a_pull_through_slowdown_answers_still_mirrors_every_object(
    aws_env: MotoServer, tmp_path: Path
) -> None:
    objects = _fill(s3_store(aws_env), 60)
    with SlowDownProxy(aws_env.endpoint, share=0.1, seed=3) as proxy:
        store = open_store(f"s3://{BUCKET}/data", endpoint_url=proxy.endpoint)
        result = pull(store, tmp_path / "cache", workers=4)
    assert proxy.throttled > 0
    assert [o.key for o in result.objects] == sorted(objects)
    for item in result.objects:
        assert item.path.read_bytes() == objects[item.key]
