"""The callback that ends each epoch: best checkpoint, early stopping, resumable state, one line.

One callback does all four so they can never disagree: the state written after an epoch holds the
same best value, best epoch and patience counter as the checkpoint and the stopping decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

import keras

from skillmaker.records import EpochRecord
from skillmaker.training.state import StateStore, TrainState


def progress_line(record: EpochRecord, last_epoch: int, *, best: bool) -> str:
    """Give the one line printed after an epoch."""
    phase = " fine-tune" if record["phase"] == "fine_tune" else ""
    return (
        f"epoch {record['epoch']}/{last_epoch}{phase}: "
        f"loss {record['loss']:.4f} accuracy {record['accuracy']:.4f} "
        f"val_loss {record['val_loss']:.4f} val_accuracy {record['val_accuracy']:.4f} "
        f"{record['seconds']:.1f}s" + (" *best" if best else "")
    )


class EpochKeeper(keras.callbacks.Callback):  # type: ignore[misc]
    """After each epoch: keep the best model, count patience, save the state, print one line.

    ``save_best`` writes the model of a new best epoch (``model.keras``). Early stopping restores
    nothing here: the caller loads the best weights when training ends, whatever ended it.
    """

    def __init__(
        self,
        *,
        state: TrainState,
        store: StateStore,
        monitor: str,
        patience: int,
        last_epoch: int,
        save_best: Callable[[keras.Model], None],
        out: TextIO,
    ) -> None:
        super().__init__()
        self.state = state
        self.store = store
        self.monitor = monitor
        self.patience = patience
        self.last_epoch = last_epoch
        self.save_best = save_best
        self.out = out
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Start the epoch's clock."""
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch, checkpoint a new best, decide whether to stop, persist everything."""
        logs = logs or {}
        state = self.state
        number = epoch + 1
        record = EpochRecord(
            epoch=number,
            phase=state.phase,
            loss=float(logs.get("loss", float("nan"))),
            val_loss=float(logs.get("val_loss", float("nan"))),
            accuracy=float(logs.get("accuracy", float("nan"))),
            val_accuracy=float(logs.get("val_accuracy", float("nan"))),
            seconds=round(time.monotonic() - self._started, 3),
        )
        value = float(logs.get(self.monitor, float("nan")))
        best = state.improves(value, self.monitor)
        if best:
            state.best_value, state.best_epoch, state.wait = value, number, 0
            self.save_best(self.model)
            state.best_weights = self.store.save_variables(
                self.model, f"best-{number:05d}.npz", full=False
            )
        else:
            state.wait += 1
        stop = not best and state.wait >= self.patience and number < self.last_epoch
        state.epochs_done = number
        state.history.append(record)
        state.seconds += record["seconds"]
        state.phase_stopped = stop
        state.stopped_early = state.stopped_early or stop
        state.last_weights = self.store.save_variables(
            self.model, f"epoch-{number:05d}.npz", full=True
        )
        self.store.save_state(state)
        # Printed only once the state is on disk: a line in the log is an epoch that will not rerun.
        print(progress_line(record, self.last_epoch, best=best), file=self.out, flush=True)
        if stop:
            self.model.stop_training = True
            print(
                f"early stopping after epoch {number}: {self.monitor} has not improved for "
                f"{state.wait} epochs; keeping epoch {state.best_epoch} "
                f"({self.monitor} {state.best_value:.4f})",
                file=self.out,
                flush=True,
            )
