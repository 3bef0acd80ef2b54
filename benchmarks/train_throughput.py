"""Training throughput: images per second fed by the real pipeline vs synthetic in-memory batches.

For ``small_cnn`` and ``mobilenet_v3_small`` at 128x128 (RGB), trains the model as ``train_model``
builds it (same layers, same profile handling: mixed precision where a GPU is present, op
determinism on under TensorFlow) for a few epochs twice: fed by skillmaker's pipeline (JPEGs
decoded once into the tensor cache, ``CacheBatches`` reading the memory-mapped shards with
training's default prefetch workers) and fed by batches already in memory. The first epoch of each
is warm-up (graph tracing); the rest are timed. The ratio pipeline / synthetic says how much of the
accelerator's time the pipeline costs (target >= 0.9).

Prints one JSON line, naming the Keras backend and the device; the figures of each model also go to
stderr as soon as they are measured. Runs under any Keras backend (``KERAS_BACKEND=jax`` or
``torch`` as well as TensorFlow).
Run: ``PYTHONPATH=. python benchmarks/train_throughput.py [--images N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import keras
import numpy as np
from PIL import Image

from skillmaker.config import parse_config
from skillmaker.training.distribute import configure_determinism, detect_runtime
from skillmaker.training.settings import resolve_settings
from skillmaker.training.zoo import build_model

NETWORKS = ("small_cnn", "mobilenet_v3_small")
CLASSES = 10


def _config(network: str, side: int, batch_size: int) -> Any:
    raw = {
        "name": "throughput",
        "title": "Training throughput",
        "ticket": "BENCH-1",
        "owner": "bench@example.com",
        "data": {"source": "file:///tmp/bench"},
        "image": {"height": side, "width": side, "channels": 3},
        "model": {"network": network, "filters": [32, 64], "dense_units": 64},
        "augment": {"horizontal_flip": True, "rotation": 8, "zoom": 0.1},
        "train": {"batch_size": batch_size},
        "profiles": {"bench": {"batch_size": batch_size, "mixed_precision": True}},
        "deploy": {"artifacts": "file:///tmp/bench-artifacts", "infra_repo": "/tmp/bench-infra"},
    }
    return parse_config(raw, "benchmark config")[0]


def _jpeg_range(folder: Path, start: int, stop: int, side: int) -> list[tuple[str, Path, int]]:
    """Give (content hash, path, label) of the structured JPEGs ``start``..``stop`` once written."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    found = []
    for index in range(start, stop):
        rng = np.random.default_rng([0, index])  # the same image whichever process writes it
        label = int(digits.target[index % len(digits.target)])
        glyph = Image.fromarray((digits.images[index % len(digits.images)] * 15).astype(np.uint8))
        grey = np.asarray(glyph.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
        tint = rng.uniform(0.3, 1.0, size=3)
        noise = rng.normal(0.0, 12.0, size=(side, side, 3))
        pixels = np.clip(grey[..., None] * tint + 40 + noise, 0, 255).astype(np.uint8)
        path = folder / f"{index:06d}.jpg"
        Image.fromarray(pixels, mode="RGB").save(path, quality=90)
        found.append((hashlib.sha256(path.read_bytes()).hexdigest(), path, label))
    return found


def _write_jpegs(folder: Path, count: int, side: int) -> list[tuple[str, Path, int]]:
    """Give (content hash, path, label) of ``count`` structured JPEGs of ``side`` pixels.

    Written by one process per core, started fresh (forkserver or spawn) like the cache's
    workers: a forked copy of a process whose backend runs threads can deadlock.
    """
    cores = os.cpu_count() or 1
    step = max(1, math.ceil(count / (4 * cores)))
    starts = range(0, count, step)
    method = "forkserver" if "forkserver" in get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=cores, mp_context=get_context(method)) as pool:
        parts = pool.map(
            _jpeg_range,
            [folder] * len(starts),
            starts,
            [min(first + step, count) for first in starts],
            [side] * len(starts),
        )
        return [item for part in parts for item in part]


class MemoryBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """The synthetic baseline: the same uint8 batches, already in memory, handed out as they are."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.batches = [
            (images[i : i + batch_size], labels[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.batches[index]


class EpochClock(keras.callbacks.Callback):  # type: ignore[misc]
    """Wall-clock seconds of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _images_per_second(
    network: str,
    data: keras.utils.PyDataset,
    *,
    images: int,
    side: int,
    batch_size: int,
    epochs: int,
) -> tuple[float, bool]:
    config = _config(network, side, batch_size)
    settings = resolve_settings(config, "bench", gpus=len(detect_runtime().gpus))
    configure_determinism(0)
    mean, std = [120.0, 120.0, 120.0], [60.0, 60.0, 60.0]
    model = build_model(config, settings, (mean, std), CLASSES).model
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    clock = EpochClock()
    model.fit(data, epochs=epochs, callbacks=[clock], verbose=0, shuffle=False)
    steady = clock.seconds[1:]  # the first epoch traces the graph
    return images * len(steady) / sum(steady), settings.mixed_precision


def _pipeline(
    items: list[tuple[str, Path, int]], root: Path, *, side: int, batch_size: int
) -> tuple[Callable[[], keras.utils.PyDataset] | None, np.ndarray | None, str]:
    """Give a maker of the real pipeline's batches and the cached images, or None and why not."""
    try:
        # Looked up by name: the data pipeline may not be merged into this checkout yet.
        cache_module: Any = importlib.import_module("skillmaker.data.cache")
        pipeline_module: Any = importlib.import_module("skillmaker.data.feed")
    except ImportError as exc:
        return None, None, f"unavailable in this checkout ({exc})"
    build_cache, tensor_cache = cache_module.build_cache, cache_module.TensorCache
    cache_batches = pipeline_module.CacheBatches
    build_cache(
        [(sha, path) for sha, path, _ in items],
        root,
        height=side,
        width=side,
        channels=3,
        max_pixels=40_000_000,
        workers=None,
    )
    cache = tensor_cache.open(root, side, side, 3)
    rows = cache.rows(sha for sha, _, _ in items)
    labels = np.array([label for _, _, label in items], dtype=np.int32)

    def batches() -> keras.utils.PyDataset:
        batches_made: keras.utils.PyDataset = cache_batches(
            cache,
            rows,
            labels,
            batch_size=batch_size,
            seed=0,
            shuffle=True,
        )  # prefetch workers and queue as training leaves them: the backend's default
        return batches_made

    return batches, cache.read(rows), "skillmaker.data.feed.CacheBatches"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, the first untimed")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    args = parser.parse_args(argv)

    runtime = detect_runtime()
    result: dict[str, Any] = {
        "benchmark": "train_throughput",
        "backend": runtime.backend,
        "device": ", ".join(runtime.gpus) or "cpu",
        "images": args.images,
        "image_size": [args.size, args.size, 3],
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs - 1,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        folder = Path(tmp)
        (folder / "jpeg").mkdir()
        # Larger than the input, so building the cache really resizes.
        items = _write_jpegs(folder / "jpeg", args.images, math.ceil(args.size * 1.25))
        pipeline, cached, source = _pipeline(
            items, folder / "cache", side=args.size, batch_size=args.batch_size
        )
        result["pipeline"] = source
        if pipeline is None:
            print(
                f"train_throughput: real pipeline {source}; measuring synthetic only",
                file=sys.stderr,
            )
        labels = np.array([label for _, _, label in items], dtype=np.int32)
        images = (
            cached
            if cached is not None
            else np.random.default_rng(1).integers(
                0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8
            )
        )
        for network in args.networks.split(","):
            synthetic, mixed = _images_per_second(
                network,
                MemoryBatches(images, labels, args.batch_size),
                images=args.images,
                side=args.size,
                batch_size=args.batch_size,
                epochs=args.epochs,
            )
            figures: dict[str, Any] = {
                "synthetic_images_per_s": round(synthetic, 1),
                "mixed_precision": mixed,
            }
            if pipeline is not None:
                feed = pipeline()
                real, _ = _images_per_second(
                    network,
                    feed,
                    images=args.images,
                    side=args.size,
                    batch_size=args.batch_size,
                    epochs=args.epochs,
                )
                figures["pipeline_images_per_s"] = round(real, 1)
                figures["ratio"] = round(real / synthetic, 3)
                figures["pipeline_workers"] = int(feed.workers)
            else:
                figures["pipeline_images_per_s"] = None
                figures["ratio"] = None
            result["models"][network] = figures
            print(f"train_throughput: {network} {json.dumps(figures)}", file=sys.stderr, flush=True)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
