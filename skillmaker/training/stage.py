"""The train stage: the run's data set through the tensor cache into ``train_model``, then the store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from skillmaker.context import SkillContext
from skillmaker.data.cache import TensorCache, build_cache, normalisation, save_normalisation
from skillmaker.data.dataset import DatasetRecord, local_dataset
from skillmaker.data.feed import CacheBatches
from skillmaker.domain.layout import run_key
from skillmaker.errors import UserError
from skillmaker.records import (
    AUDIT,
    HISTORY,
    LABELS,
    MODEL,
    NORMALISATION,
    STAMP,
    TRAIN,
)
from skillmaker.serving.bundle import write_stamp
from skillmaker.training.distribute import detect_runtime
from skillmaker.training.settings import resolve_settings
from skillmaker.training.train import TrainResult, train_model
from skillmaker.training.zoo import WeightsLoader


def weights_loader_for(ctx: SkillContext) -> WeightsLoader:
    """Give a function that fetches a weights file named by URI into the workspace."""

    def load(uri: str) -> Path:
        parsed = urlparse(uri)
        folder, _, name = parsed.path.rpartition("/")
        root = f"{parsed.scheme}://{parsed.netloc}{folder}"
        destination = (
            ctx.workspace.root / "cache" / "weights" / parsed.netloc / parsed.path.lstrip("/")
        )
        if not destination.is_file():
            ctx.store(root).download(name, destination)
        return destination

    return load


def _rows(
    cache: TensorCache, dataset: DatasetRecord, split: str, index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    items = [i for i in dataset["items"] if i["split"] == split]
    rows = cache.rows([i["sha256"] for i in items])
    labels = np.array([index[i["label"]] for i in items], dtype=np.int32)
    return rows, labels


def train_stage(
    ctx: SkillContext, profile: str | None, *, workers: int | None = None
) -> TrainResult:
    """Give the finished training of the current run, its model and records in the store."""
    config = ctx.config
    run = ctx.current_run()
    run_dir = ctx.run_dir()
    dataset, raw = local_dataset(ctx)
    audit = ctx.record(AUDIT)
    runtime = detect_runtime()
    settings = resolve_settings(
        config, profile, gpus=len(runtime.gpus), mirror_devices=runtime.replica_devices
    )
    height, width, channels = settings.image_shape

    built = build_cache(
        [(item["sha256"], raw / item["path"]) for item in dataset["items"]],
        ctx.workspace.tensor_cache,
        height=height,
        width=width,
        channels=channels,
        max_pixels=config.data.max_pixels,
        workers=workers,
    )
    if built.failed:
        names = ", ".join(f"{sha[:12]} ({why})" for sha, why in sorted(built.failed.items())[:5])
        raise UserError(f"tensor cache: {len(built.failed)} image(s) could not be decoded: {names}")
    shape = f"{height}x{width}x{channels}"
    ctx.say(f"train: tensor cache {shape}: {len(built.decoded)} decoded, {built.reused} reused")
    cache = TensorCache.open(ctx.workspace.tensor_cache, height, width, channels)

    labels = list(dataset["labels"])
    index = {name: i for i, name in enumerate(labels)}
    train_rows, train_labels = _rows(cache, dataset, "train", index)
    val_rows, val_labels = _rows(cache, dataset, "val", index)
    mean, std = normalisation(cache, train_rows)
    save_normalisation(run_dir / NORMALISATION, mean, std)
    counts = Counter(labels[i] for i in train_labels)

    seed = config.split.seed
    train_data = CacheBatches(
        cache, train_rows, train_labels, batch_size=settings.batch_size, seed=seed
    )
    val_data = CacheBatches(
        cache, val_rows, val_labels, batch_size=settings.batch_size, seed=seed, shuffle=False
    )
    result = train_model(
        config,
        profile=profile,
        train_data=train_data,
        val_data=val_data,
        labels=labels,
        normalisation=(mean, std),
        class_counts={name: counts.get(name, 0) for name in labels},
        run_dir=run_dir,
        manifest_hash=str(audit["manifest_hash"]),
        ledger_hash=str(audit["ledger_hash"]),
        weights_loader=weights_loader_for(ctx),
        out=ctx.out,
        runtime=runtime,
    )
    write_stamp(
        run_dir, skill=ctx.name, skill_version=run.skill_version, code_version=run.code_version
    )

    store = ctx.artifacts()
    for name in (MODEL, LABELS, NORMALISATION, HISTORY, TRAIN, STAMP):
        store.upload(run_dir / name, run_key(ctx.name, run.skill_version, name))
    ctx.say(
        f"train: model and records stored under {store.uri}/{run_key(ctx.name, run.skill_version)}"
    )
    return result
