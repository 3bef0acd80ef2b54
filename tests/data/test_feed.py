"""The input pipeline: uint8 batches from the cache, every row once per epoch, seeded reshuffles."""

from __future__ import annotations

import hashlib
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

from skillmaker.data.cache import TensorCache, build_cache
from skillmaker.data.feed import CacheBatches, epoch_order

SIDE = 8
COUNT = 23  # not a multiple of the batch size: the last batch is partial


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> TensorCache:
    """Give a cache of COUNT tiny images whose every pixel holds the image's number."""
    folder = tmp_path_factory.mktemp("pipeline")
    items = []
    for i in range(COUNT):
        path = folder / f"{i}.png"
        Image.new("RGB", (SIDE, SIDE), (i, 255 - i, 7)).save(path)
        items.append((hashlib.sha256(path.read_bytes()).hexdigest(), path))
    build_cache(
        items, folder / "cache", height=SIDE, width=SIDE, channels=3, max_pixels=10_000, workers=1
    )
    return TensorCache.open(folder / "cache", SIDE, SIDE, 3)


def _batches(cache: TensorCache, **kw: Any) -> CacheBatches:
    """Give a pipeline over every row, labelled with the row's number, batches of 5."""
    rows = np.arange(COUNT)
    options: dict[str, Any] = {"batch_size": 5, "seed": 11, **kw}
    return CacheBatches(cache, rows, rows * 10, **options)


def _epoch(batches: CacheBatches, epoch: int) -> tuple[list[int], list[int]]:
    """Give the labels of one epoch in the order served, and the batch sizes."""
    labels: list[int] = []
    sizes = []
    for index in range(len(batches)):
        images, batch_labels = batches.batch(epoch, index)
        assert images.dtype == np.uint8
        assert batch_labels.dtype == np.int32
        # Each image is the row its label names: pixel value = row number.
        assert (images[:, :, :, 0] == (batch_labels // 10)[:, None, None]).all()
        labels += batch_labels.tolist()
        sizes.append(len(batch_labels))
    return labels, sizes


def test_every_row_appears_once_per_epoch_including_the_last_partial_batch(
    cache: TensorCache,
) -> None:
    batches = _batches(cache)
    assert len(batches) == 5
    for epoch in range(3):
        labels, sizes = _epoch(batches, epoch)
        assert sorted(labels) == [10 * i for i in range(COUNT)]
        assert sizes == [5, 5, 5, 5, 3]


def test_the_order_changes_every_epoch_and_repeats_for_the_same_seed(cache: TensorCache) -> None:
    first = [_epoch(_batches(cache), e)[0] for e in range(3)]
    again = [_epoch(_batches(cache), e)[0] for e in range(3)]
    other_seed = [_epoch(_batches(cache, seed=12), e)[0] for e in range(3)]
    assert first == again
    assert len({tuple(order) for order in first}) == 3
    assert first != other_seed


def test_without_shuffle_the_rows_come_in_the_given_order(cache: TensorCache) -> None:
    labels, _ = _epoch(_batches(cache, shuffle=False), 4)
    assert labels == [10 * i for i in range(COUNT)]
    assert epoch_order(4, seed=1, epoch=9, shuffle=False).tolist() == [0, 1, 2, 3]


def test_a_subset_of_rows_is_all_an_epoch_visits(cache: TensorCache) -> None:
    rows = np.array([20, 3, 9])
    batches = CacheBatches(cache, rows, rows, batch_size=2, seed=0)
    images = np.concatenate([batches.batch(1, i)[0] for i in range(len(batches))])
    assert sorted(images[:, 0, 0, 0].tolist()) == [3, 9, 20]


def test_mismatched_rows_and_labels_are_refused(cache: TensorCache) -> None:
    with pytest.raises(ValueError, match="3 rows but 2 labels"):
        CacheBatches(cache, [0, 1, 2], [0, 1], batch_size=2, seed=0)
    with pytest.raises(IndexError):
        _batches(cache)[5]


class _Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Remember which labels the model trained on in each epoch (eager train steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = -1
        self.seen: dict[int, list[int]] = {}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch


def _fit_and_record(batches: CacheBatches, epochs: int, initial_epoch: int = 0) -> _Recorder:
    """Give what a model trained by ``fit`` on ``batches`` saw in each epoch."""
    recorder = _Recorder()

    class Spy(keras.Model):  # type: ignore[misc]
        def train_step(self, data: Any) -> dict[str, float]:
            _, labels = data
            recorder.seen.setdefault(recorder.epoch, []).extend(np.asarray(labels).tolist())
            return {"seen": 0.0}

    inputs = keras.Input((SIDE, SIDE, 3), dtype="uint8")
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))
    model = Spy(inputs, outputs)
    model.compile(run_eagerly=True)
    model.fit(
        batches,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        shuffle=False,
        callbacks=[recorder],
    )
    return recorder


@pytest.mark.parametrize("workers", [1, 2])
def test_fit_trains_each_epoch_on_that_epochs_order(cache: TensorCache, workers: int) -> None:
    batches = _batches(cache, workers=workers, max_queue_size=2)
    recorder = _fit_and_record(batches, epochs=3)
    assert sorted(recorder.seen) == [0, 1, 2]
    for epoch, labels in recorder.seen.items():
        assert labels == _epoch(_batches(cache), epoch)[0]


def test_a_resumed_run_continues_with_the_order_of_the_epoch_it_resumes_at(
    cache: TensorCache,
) -> None:
    recorder = _fit_and_record(_batches(cache, initial_epoch=2), epochs=2, initial_epoch=2)
    assert recorder.seen == {2: _epoch(_batches(cache), 2)[0], 3: _epoch(_batches(cache), 3)[0]}
