"""Train the digits in a separate process, optionally SIGKILLing itself after an epoch.

``python -m tests.training.digits_job RUN_DIR [--kill-after N] [--mirrored-cpus K]``: the kill
comes right after the progress line of epoch N is written, which train_model prints only once the
epoch's state is on disk, so the next start must resume at epoch N + 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from skillmaker.training.distribute import Runtime
from skillmaker.training.train import train_model
from tests.training.conftest import (
    RESUME_LIMIT,
    RESUME_SECTIONS,
    digits_config,
    load_digits_arrays,
)


class KillAfterEpoch:
    """A text stream that copies to stdout and SIGKILLs this process after ``epoch N/``."""

    def __init__(self, epoch: int | None) -> None:
        self.marker = f"epoch {epoch}/" if epoch is not None else None

    def write(self, text: str) -> int:
        sys.stdout.write(text)
        if self.marker is not None and text.startswith(self.marker):
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kill-after", type=int)
    parser.add_argument("--mirrored-cpus", type=int, default=0)
    args = parser.parse_args(argv)
    runtime: Any = None
    config = digits_config(**RESUME_SECTIONS)
    profile = None
    if args.mirrored_cpus:
        # Before TensorFlow runs anything: split the CPU into devices to mirror over.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.mirrored_cpus
        )
        runtime = Runtime(
            backend="tensorflow",
            gpus=(),
            devices=tuple(f"/cpu:{i}" for i in range(args.mirrored_cpus)),
        )
        profile = "server"
    digits = load_digits_arrays(16, 1, limit=RESUME_LIMIT)
    train_model(
        config,
        profile=profile,
        train_data=digits.batches("train", 32),
        val_data=digits.batches("val", 64),
        labels=digits.labels,
        normalisation=digits.normalisation(),
        class_counts=digits.class_counts(),
        run_dir=args.run_dir,
        manifest_hash="manifest",
        ledger_hash="ledger",
        out=KillAfterEpoch(args.kill_after),  # type: ignore[arg-type]
        runtime=runtime,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
