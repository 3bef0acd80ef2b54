"""Training a skill's model from config and profile: phases, checkpoints, early stopping, resume.

``train_model`` is the library entry point. It resumes by itself: called again on the same run
folder after an interruption (even a SIGKILL), it continues after the last finished epoch with the
optimizer, random-generator, early-stopping and best-checkpoint state it had; called on a finished
run, it only writes the artifacts again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

import keras
import numpy as np

from skillmaker.config import SkillConfig, config_hash
from skillmaker.errors import UserError
from skillmaker.records import HistoryRecord, TrainRecord
from skillmaker.training import artifacts, weighting
from skillmaker.training.callbacks import EpochKeeper
from skillmaker.training.distribute import (
    Runtime,
    configure_determinism,
    detect_runtime,
    distribution_scope,
    hardware_info,
    library_versions,
)
from skillmaker.training.settings import TrainSettings, class_weights, resolve_settings
from skillmaker.training.state import DONE, StateStore, TrainState
from skillmaker.training.zoo import BuiltModel, WeightsLoader, build_model, set_phase


@runtime_checkable
class ResumableBatches(Protocol):
    """A training PyDataset whose shuffle depends on the epoch, told where ``fit`` starts."""

    def start_at(self, epoch: int) -> None:
        """Make the next batches those of 0-based ``epoch`` (and count on from there)."""


@dataclass(frozen=True)
class TrainResult:
    """A finished training run: the model with its best weights and what was written."""

    model: keras.Model
    run_dir: Path
    files: tuple[Path, ...]
    history: HistoryRecord
    record: TrainRecord
    settings: TrainSettings
    resumed_after: int | None
    """Epochs already finished when this call started (None: it started from scratch)."""
    warnings: tuple[str, ...] = ()
    """What the run could not do as configured (also printed), e.g. for ``run.json``."""


@dataclass(frozen=True)
class _Phase:
    name: str
    epochs: int
    learning_rate: float
    top_layers: int = 0


def _phases(config: SkillConfig, built: BuiltModel) -> list[_Phase]:
    found = [_Phase("train", config.train.epochs, config.train.learning_rate)]
    tune = config.model.fine_tune
    if built.backbone and tune.top_layers and tune.epochs:
        rate = config.train.learning_rate * tune.learning_rate_factor
        found.append(_Phase("fine_tune", tune.epochs, rate, tune.top_layers))
    return found


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise UserError(f"train.optimizer: unknown optimizer {name!r}")


def _compile(
    model: keras.Model, optimizer: str, learning_rate: float, *, weighted: bool = False
) -> None:
    model.compile(
        optimizer=_optimizer(optimizer, learning_rate),
        # The model ends in logits; the softmax is applied once, by serving.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **weighting.metrics(weighted),
    )


def _check_batches(
    data: keras.utils.PyDataset, name: str, settings: TrainSettings, classes: int
) -> int:
    """Give the number of batches after checking the first against the model's input."""
    try:
        count = len(data)
    except TypeError:
        raise UserError(f"{name}: the batches must have a length (an epoch)") from None
    if count == 0:
        raise UserError(f"{name}: no batches (the split is empty)")
    batch = data[0]
    if not isinstance(batch, tuple) or len(batch) != 2:
        raise UserError(f"{name}: each batch must be (images, labels)")
    images, labels = np.asarray(batch[0]), np.asarray(batch[1])
    if images.ndim != 4 or tuple(images.shape[1:]) != settings.image_shape:
        want = "x".join(str(v) for v in settings.image_shape)
        got = "x".join(str(v) for v in images.shape[1:])
        profile = f"profile {settings.profile}" if settings.profile else "skill.json"
        raise UserError(
            f"{name}: images are {got} but {profile} asks for {want} (height x width x channels); "
            "rebuild the tensor cache at that size"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise UserError(f"{name}: labels must be class indices 0..{classes - 1}")
    return count


def _fingerprint(
    config: SkillConfig,
    *,
    settings: TrainSettings,
    labels: Sequence[str],
    normalisation: tuple[Sequence[float], Sequence[float]],
    class_counts: Mapping[str, int],
    batches: tuple[int, int],
    hashes: tuple[str, str],
) -> str:
    facts = {
        "config": config_hash(config),
        "settings": [settings.batch_size, list(settings.image_shape)],
        "precision": settings.mixed_precision,
        "strategy": settings.strategy,
        "labels": list(labels),
        "normalisation": [list(map(float, normalisation[0])), list(map(float, normalisation[1]))],
        "class_counts": dict(sorted(class_counts.items())),
        "batches": list(batches),
        "data": list(hashes),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def _say(out: TextIO, message: str) -> None:
    print(message, file=out, flush=True)


def train_model(
    config: SkillConfig,
    *,
    profile: str | None,
    train_data: keras.utils.PyDataset,
    val_data: keras.utils.PyDataset,
    labels: list[str],
    normalisation: tuple[list[float], list[float]],
    class_counts: dict[str, int],
    run_dir: Path,
    manifest_hash: str,
    ledger_hash: str,
    weights_loader: WeightsLoader | None = None,
    out: TextIO,
    runtime: Runtime | None = None,
    single_thread: bool = False,
) -> TrainResult:
    """Give the trained model and its records after training (or resuming) into ``run_dir``.

    ``train_data`` and ``val_data`` yield (uint8 NHWC images, int32 label indices) batches of the
    profile's image size; ``labels`` names the logits in order; ``normalisation`` is the training
    split's per-channel (mean, std) in pixel values 0..255; ``class_counts`` the training images per
    class (for balanced class weights). Writes ``model.keras``, ``labels.json``,
    ``normalisation.json``, ``history.json`` and ``train.json`` into ``run_dir`` and keeps its
    resumable state in ``run_dir/train-state/``. ``weights_loader`` turns a weights URI from the
    config into a local file (``file://`` URIs work without one). ``runtime`` defaults to this
    machine's; ``single_thread`` makes results identical across machines with other core counts.
    """
    runtime = runtime or detect_runtime()
    settings = resolve_settings(
        config, profile, gpus=len(runtime.gpus), mirror_devices=runtime.replica_devices
    )
    warnings = list(settings.warnings)
    if len(set(labels)) != len(labels):
        raise UserError("labels: a class is named twice")
    unknown = sorted(set(class_counts) - set(labels))
    if unknown:
        raise UserError(f"class counts: {unknown[0]} is not one of the labels")
    weights_by_class = class_weights(config, labels, class_counts)
    train_batches = _check_batches(train_data, "training data", settings, len(labels))
    val_batches = _check_batches(val_data, "validation data", settings, len(labels))

    store = StateStore.of(run_dir)
    fingerprint = _fingerprint(
        config,
        settings=settings,
        labels=labels,
        normalisation=normalisation,
        class_counts=class_counts,
        batches=(train_batches, val_batches),
        hashes=(manifest_hash, ledger_hash),
    )
    state, reason = store.load(fingerprint)
    resumed_after = state.epochs_done if state is not None else None
    state = state or TrainState(fingerprint=fingerprint)

    warnings += configure_determinism(config.split.seed, single_thread=single_thread)
    best_path = artifacts.model_path(run_dir)
    with distribution_scope(settings.strategy, runtime) as replicas:
        # Built before anything is written: a bad weights file or input size is a user error
        # that leaves the run folder as it was.
        built = build_model(
            config, settings, normalisation, len(labels), weights_loader=weights_loader
        )
        warnings += built.warnings
        warnings += _state_warnings(reason, resumed=resumed_after is not None)
        for warning in warnings:
            _say(out, f"warning: {warning}")
        if reason is not None and resumed_after is None:
            store.clear()
        run_dir.mkdir(parents=True, exist_ok=True)
        _say(
            out,
            f"training {config.model.network} on {train_batches} batches of "
            f"{settings.batch_size} images {'x'.join(map(str, settings.image_shape))} "
            f"({'mixed float16' if settings.mixed_precision else 'float32'}, "
            f"{replicas} replica{'s' if replicas > 1 else ''}, {runtime.backend})",
        )
        if state.phase != DONE and state.epochs_done:
            _say(
                out,
                f"resuming after epoch {state.epochs_done} (best so far: epoch "
                f"{state.best_epoch}, {config.train.monitor} {_number(state.best_value)}, "
                f"{state.wait} without improvement)",
            )
        phases = _phases(config, built)
        for position, phase in enumerate(phases):
            if state.phase == DONE or _later(state.phase, phase.name, phases):
                continue
            _run_phase(
                built,
                phase,
                state,
                store,
                config=config,
                train_data=train_data,
                val_data=val_data,
                weights_by_class=weights_by_class,
                best_path=best_path,
                out=out,
            )
            following = phases[position + 1].name if position + 1 < len(phases) else DONE
            state.phase, state.phase_start = following, state.epochs_done
            state.phase_stopped, state.wait = False, 0
            if following == "fine_tune":
                state.head_weights = state.best_weights
            store.save_state(state)

        # Whatever ended training, the kept model is the best epoch's. It is exported from an
        # uncompiled twin: the checkpoints written during training carry the optimizer's state,
        # which would double or triple the file that serving images and the store hold.
        if state.best_weights is not None:
            store.restore_variables(built.model, state.best_weights, full=False)
        exported = build_model(config, settings, normalisation, len(labels), pretrained=False).model
        exported.set_weights(built.model.get_weights())
        artifacts.save_model(exported, best_path)

    history = artifacts.history_record(state)
    record = TrainRecord(
        config_hash=config_hash(config),
        manifest_hash=manifest_hash,
        ledger_hash=ledger_hash,
        profile=profile,
        network=config.model.network,
        batch_size=settings.batch_size,
        image_size=list(settings.image_shape),
        mixed_precision=settings.mixed_precision,
        strategy=settings.strategy,
        epochs_run=state.epochs_done,
        best_epoch=state.best_epoch,
        seconds=round(state.seconds, 3),
        hardware=hardware_info(runtime, replicas=replicas),
        libraries=library_versions(),
        monitor=config.train.monitor,
        monitor_weighting=(
            weighting.CLASS_WEIGHTED if weights_by_class is not None else weighting.UNWEIGHTED
        ),
    )
    files = (
        best_path,
        artifacts.write_labels(run_dir, labels),
        artifacts.write_normalisation(run_dir, *normalisation),
        artifacts.write_history(run_dir, history),
        artifacts.write_train(run_dir, record),
    )
    _say(
        out,
        f"kept epoch {state.best_epoch} of {state.epochs_done} ({config.train.monitor} "
        f"{_number(state.best_value)}){'; stopped early' if state.stopped_early else ''}",
    )
    return TrainResult(
        model=exported,
        run_dir=run_dir,
        files=files,
        history=history,
        record=record,
        settings=settings,
        resumed_after=resumed_after,
        warnings=tuple(warnings),
    )


def _state_warnings(reason: str | None, *, resumed: bool) -> list[str]:
    """Say why the saved state was not used as it was: started over, or resumed an epoch back."""
    if reason is None:
        return []
    if resumed:
        return [f"the last training state cannot be used: {reason}"]
    return [f"starting over: the saved training state cannot be used ({reason})"]


def _later(current: str, name: str, phases: Sequence[_Phase]) -> bool:
    """Say whether the saved state is already past phase ``name``."""
    order = [p.name for p in phases]
    return current in order and order.index(current) > order.index(name)


def _run_phase(
    built: BuiltModel,
    phase: _Phase,
    state: TrainState,
    store: StateStore,
    *,
    config: SkillConfig,
    train_data: keras.utils.PyDataset,
    val_data: keras.utils.PyDataset,
    weights_by_class: dict[int, float] | None,
    best_path: Path,
    out: TextIO,
) -> None:
    model = built.model
    unfrozen = set_phase(built, phase.name, phase.top_layers)
    _compile(
        model, config.train.optimizer, phase.learning_rate, weighted=weights_by_class is not None
    )
    first, last = state.epochs_done, state.phase_start + phase.epochs
    if state.last_weights is not None and first > state.phase_start:
        store.restore_variables(model, state.last_weights, full=True)
    elif phase.name == "fine_tune" and state.head_weights is not None:
        # Fine-tuning starts from the best head, not from wherever phase one stopped.
        store.restore_variables(model, state.head_weights, full=False)
    if state.phase_stopped or first >= last:
        return
    if phase.name == "fine_tune":
        _say(
            out,
            f"fine-tuning the top {phase.top_layers} layers of {config.model.network} "
            f"({unfrozen} with weights, BatchNorm kept frozen) at learning rate "
            f"{phase.learning_rate:g}",
        )
    elif built.backbone:
        _say(out, f"training the new head; {config.model.network} frozen")
    if isinstance(train_data, ResumableBatches):
        train_data.start_at(first)
    keeper = EpochKeeper(
        state=state,
        store=store,
        monitor=config.train.monitor,
        patience=config.train.early_stopping_patience,
        last_epoch=last,
        save_best=lambda m: artifacts.save_model(m, best_path),
        out=out,
    )
    model.fit(
        train_data,
        validation_data=weighting.validation_data(val_data, weights_by_class),
        initial_epoch=first,
        epochs=last,
        callbacks=[keeper],
        class_weight=weights_by_class,
        # The dataset orders its batches from the seed; fit's own shuffle would not be seeded.
        shuffle=False,
        # A per-batch bar only on a terminal: CI logs get one line per epoch.
        verbose=1 if out is sys.stdout and out.isatty() else 0,
    )
