"""The split ledger in a real store: conditional writes, racing pipelines, rebuilt when lost."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping

import pytest

from skillmaker.adapters.store import Store
from skillmaker.data.ledger import read_ledger, rebuild_ledger, update_ledger
from skillmaker.domain.layout import ledger_key, run_key
from skillmaker.domain.splits import Split, SplitLedger
from skillmaker.errors import ExitCode, UserError


def _adding(images: Mapping[str, Split]) -> Callable[[SplitLedger], tuple[SplitLedger, int]]:
    """Give a ledger extension that adds the images it does not know yet (and reports the batch)."""

    def extend(current: SplitLedger) -> tuple[SplitLedger, int]:
        new = {s: v for s, v in images.items() if s not in current.images}
        return current.with_batch(new), current.batches

    return extend


def test_update_ledger_creates_then_extends_with_conditional_writes(store: Store) -> None:
    key = "skills/demo/splits.json"
    ledger, seen = update_ledger(store, key, _adding({"a": "train"}))
    assert (seen, ledger.batches) == (0, 1)
    ledger, seen = update_ledger(store, key, _adding({"a": "test", "b": "val"}))
    assert (seen, ledger.images["a"].split, ledger.images["b"].split) == (1, "train", "val")
    stored, etag = read_ledger(store, key)
    assert stored == ledger
    assert etag is not None
    unchanged, _ = update_ledger(store, key, _adding({"b": "test"}))
    assert read_ledger(store, key)[1] == etag  # nothing new: nothing written
    assert unchanged == ledger


def test_a_hand_edited_ledger_in_the_store_is_refused_naming_it(store: Store) -> None:
    key = "skills/demo/splits.json"
    update_ledger(store, key, _adding({"a": "test", "b": "train"}))
    data = store.get_bytes(key).replace(b'"a": ["test", 1]', b'"a": ["train", 1]')
    store.put_bytes(key, data)
    with pytest.raises(UserError) as caught:
        update_ledger(store, key, _adding({"c": "val"}))
    assert caught.value.exit_code == ExitCode.USER_ERROR
    assert str(caught.value).startswith(f"{store.uri}/{key}: the split ledger does not match")
    assert store.get_bytes(key) == data  # nothing written over it


def test_racing_pipelines_merge_their_images_and_never_move_one(store: Store) -> None:
    key = "skills/demo/splits.json"
    results: dict[int, SplitLedger] = {}
    barrier = threading.Barrier(6)
    splits: list[Split] = ["train", "val", "test"]

    def pipeline(index: int) -> None:
        barrier.wait()
        extend = _adding({f"own-{index}": "train", "shared": splits[index % 3]})
        results[index] = update_ledger(store, key, extend)[0]

    threads = [threading.Thread(target=pipeline, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final, _ = read_ledger(store, key)
    assert sorted(final.images) == sorted([*(f"own-{i}" for i in range(6)), "shared"])
    assert final.batches == 6
    for ledger in results.values():
        assert ledger.images["shared"] == final.images["shared"]


def _dataset(items: list[tuple[str, str, str]]) -> bytes:
    return json.dumps(
        {
            "labels": ["cat"],
            "items": [
                {"key": k, "sha256": s, "label": "cat", "group": k, "split": v, "path": k}
                for k, s, v in items
            ],
        }
    ).encode()


def test_a_lost_ledger_is_rebuilt_from_the_stored_runs_earliest_first(store: Store) -> None:
    store.put_bytes(
        run_key("pets", 2, "dataset.json"), _dataset([("a", "sa", "train"), ("c", "sc", "val")])
    )
    store.put_bytes(
        run_key("pets", 10, "dataset.json"), _dataset([("a", "sa", "test"), ("d", "sd", "test")])
    )
    store.put_bytes(run_key("pets", 2, "audit.json"), b"{}")
    rebuilt = rebuild_ledger(store, "pets")
    assert {s: e.split for s, e in rebuilt.images.items()} == {
        "sa": "train",
        "sc": "val",
        "sd": "test",
    }
    assert rebuilt.batches == 2

    key = ledger_key("pets")
    ledger, _ = update_ledger(
        store,
        key,
        _adding({"sa": "val", "new": "test"}),
        rebuild=lambda: rebuild_ledger(store, "pets"),
    )
    assert ledger.images["sa"].split == "train"  # the earlier run's split, not the new wish
    assert ledger.images["new"].split == "test"
    assert read_ledger(store, key)[0] == ledger


def test_a_broken_stored_dataset_stops_the_rebuild_naming_it(store: Store) -> None:
    store.put_bytes(run_key("pets", 1, "dataset.json"), b"{not json")
    with pytest.raises(UserError) as caught:
        rebuild_ledger(store, "pets")
    assert str(caught.value).startswith(f"{store.uri}/{run_key('pets', 1, 'dataset.json')}: ")
