"""The resumable state of a training run, kept under ``<run_dir>/train-state/``.

After every epoch the whole state is written: every variable of the model and the optimizer
(random-generator states included, so augmentation and dropout continue where they were), the
early-stopping counters, the best value and epoch, the best weights and the history. Keras's
``BackupAndRestore`` resumes at the right epoch but its ``ModelCheckpoint`` and ``EarlyStopping``
forget their best value across a restart (DESIGN.md), so the run would keep a worse model.

Files are written under new names first and ``state.json`` last, atomically, naming the files it
needs; a SIGKILL at any moment leaves the previous complete state. The state of the epoch before
is kept as ``state.previous.json`` with its files, so a checkpoint damaged from outside (a copy cut
short, a bad disk) costs one epoch, not the run. Stale files are removed after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from skillmaker.fileio import atomic_path
from skillmaker.records import EpochRecord, read_record, write_record

STATE_DIR = "train-state"
STATE_FILE = "state.json"
PREVIOUS_FILE = "state.previous.json"  # the epoch before, kept to resume from if one is damaged
FORMAT = 1
PHASES = ("train", "fine_tune")
DONE = "done"
_CHANGED = "the config, the profile or the data changed since"


@dataclass
class TrainState:
    """Where a run stands: its phase, epochs finished, early-stopping counters and history.

    Epochs are counted across phases, 1-based in records: fine-tuning continues the numbering.
    """

    fingerprint: str
    phase: str = "train"  # "train", "fine_tune" or "done"
    epochs_done: int = 0
    phase_start: int = 0
    phase_stopped: bool = False
    stopped_early: bool = False
    best_value: float | None = None
    best_epoch: int = 0
    wait: int = 0
    seconds: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)
    last_weights: str | None = None  # every variable after epoch ``epochs_done`` (full)
    best_weights: str | None = None  # model weights of ``best_epoch``
    head_weights: str | None = None  # model weights fine-tuning started from

    def improves(self, value: float, monitor: str) -> bool:
        """Say whether ``value`` of ``monitor`` beats the best so far (NaN never does)."""
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if monitor.endswith("accuracy") else value < self.best_value

    def to_json(self) -> dict[str, Any]:
        """Give the state as the JSON ``state.json`` holds."""
        return {"format": FORMAT, **dataclasses.asdict(self)}


def _variable_groups(model: keras.Model, *, full: bool) -> dict[str, list[Any]]:
    """Give the model's weights and, when ``full``, its random-generator states and the optimizer's
    variables, by the key prefix they are saved under."""
    groups: dict[str, list[Any]] = {"weight": list(model.weights)}
    if full:
        weights = {id(v) for v in groups["weight"]}
        groups["rng"] = [v for v in model.variables if id(v) not in weights]
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        groups["optimizer"] = list(optimizer.variables) if optimizer is not None else []
    return groups


@dataclass(frozen=True)
class StateStore:
    """The ``train-state`` folder of one run."""

    folder: Path

    @classmethod
    def of(cls, run_dir: Path) -> StateStore:
        """Give the state folder of a run folder."""
        return cls(run_dir / STATE_DIR)

    def read(self, file: str = STATE_FILE) -> TrainState:
        """Give a saved state as it is (``FileNotFoundError`` when there is none)."""
        raw = read_record(self.folder / file)
        if raw.pop("format", None) != FORMAT:
            raise ValueError("written by another version of skillmaker")
        return TrainState(**raw)

    def load(self, fingerprint: str) -> tuple[TrainState | None, str | None]:
        """Give the state to resume from and what was wrong on the way, if anything.

        ``(state, None)``: the last state is whole. ``(state, why)``: it is damaged and the
        previous epoch's is whole. ``(None, why)``: start over. ``(None, None)``: no state.
        """
        if not (self.folder / STATE_FILE).is_file() and not (self.folder / PREVIOUS_FILE).is_file():
            return None, None
        state, reason = self._usable(STATE_FILE, fingerprint)
        if state is not None:
            return state, None
        if reason is None or reason.startswith(_CHANGED):
            return None, reason
        previous, _ = self._usable(PREVIOUS_FILE, fingerprint)
        if previous is not None:
            return previous, f"{reason}; resuming from the epoch before"
        return None, reason

    def _usable(self, file: str, fingerprint: str) -> tuple[TrainState | None, str | None]:
        if not (self.folder / file).is_file():
            return None, f"{file} is missing"
        try:
            state = self.read(file)
        except Exception as exc:  # a damaged file: start over rather than fail the run
            return None, f"it cannot be read ({exc})"
        if state.fingerprint != fingerprint:
            return None, _CHANGED
        for name in (state.last_weights, state.best_weights, state.head_weights):
            if name is None:
                continue
            if not (self.folder / name).is_file():
                return None, f"{name} is missing"
            damage = _damage(self.folder / name)
            if damage is not None:
                return None, f"{name} is damaged ({damage})"
        return state, None

    def clear(self) -> None:
        """Remove every file of the state folder."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.is_file():
                    path.unlink()

    def save_variables(self, model: keras.Model, name: str, *, full: bool) -> str:
        """Give the file name after saving the model's weights under it.

        ``full`` adds what resuming needs besides: random-generator states and optimizer variables.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            f"{prefix}_{index}": keras.ops.convert_to_numpy(variable)
            for prefix, variables in _variable_groups(model, full=full).items()
            for index, variable in enumerate(variables)
        }
        with atomic_path(self.folder / name) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        return name

    def restore_variables(self, model: keras.Model, name: str, *, full: bool) -> None:
        """Assign the weights saved under ``name`` back to the model (``full``: and the rest)."""
        path = self.folder / name
        with np.load(path) as saved:
            for prefix, variables in _variable_groups(model, full=full).items():
                count = sum(1 for key in saved.files if key.startswith(f"{prefix}_"))
                values = [saved[f"{prefix}_{index}"] for index in range(count)]
                _assign(variables, values, path)

    def save_state(self, state: TrainState) -> None:
        """Write ``state.json`` atomically, then drop the files that neither it nor
        ``state.previous.json`` names; a state of a new epoch moves the last one there."""
        self.folder.mkdir(parents=True, exist_ok=True)
        current, previous = self.folder / STATE_FILE, self.folder / PREVIOUS_FILE
        try:
            before: TrainState | None = self.read()
        except Exception:  # none yet, or unreadable: not worth keeping
            before = None
        if before is not None and before.last_weights != state.last_weights:
            current.replace(previous)  # between the two, load() finds the previous one
        write_record(current, state.to_json())
        keep = {STATE_FILE, PREVIOUS_FILE, *_files(state)}
        with contextlib.suppress(Exception):  # an unreadable previous state keeps nothing
            keep |= set(_files(self.read(PREVIOUS_FILE)))
        for path in self.folder.iterdir():
            if path.is_file() and path.name not in keep and not path.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _files(state: TrainState) -> list[str]:
    names = (state.last_weights, state.best_weights, state.head_weights)
    return [name for name in names if name is not None]


def _damage(path: Path) -> str | None:
    """Say what is wrong with a saved ``.npz`` (cut short, bad checksum), or None when it is whole.

    Files are replaced atomically, so damage comes from outside: a copy cut short, a bad disk.
    Checking every member's checksum here turns it into a fresh start instead of a failed run.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        return str(exc) or type(exc).__name__
    return None if bad is None else f"{bad} fails its checksum"


def _assign(targets: Sequence[Any], values: Sequence[np.ndarray], where: Path) -> None:
    if len(targets) != len(values):
        raise RuntimeError(f"{where}: holds {len(values)} variables, the model has {len(targets)}")
    for variable, value in zip(targets, values, strict=True):
        if tuple(variable.shape) != tuple(value.shape):
            raise RuntimeError(f"{where}: variable {variable.path} has another shape")
        variable.assign(value)
