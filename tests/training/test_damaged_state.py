"""A damaged training checkpoint makes training start over with a warning, not fail every rerun."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from skillmaker.training import train_model
from skillmaker.training.state import STATE_DIR, STATE_FILE
from tests.training.conftest import Digits, digits_config


def train(digits: Digits, run_dir: Path, epochs: int, out: io.StringIO) -> list[str]:
    config = digits_config(train={"epochs": epochs})
    result = train_model(
        config,
        profile=None,
        train_data=digits.batches("train", config.train.batch_size),
        val_data=digits.batches("val", 64),
        labels=digits.labels,
        normalisation=digits.normalisation(),
        class_counts=digits.class_counts(),
        run_dir=run_dir,
        manifest_hash="manifest-hash",
        ledger_hash="ledger-hash",
        out=out,
    )
    return list(result.warnings)


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_byte_inside(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [cut_in_half, flip_a_byte_inside], ids=["truncated", "flipped"])
@pytest.mark.parametrize("which", ["last_weights", "best_weights"])
def test_a_damaged_checkpoint_starts_training_over_with_a_warning(
    digits16: Digits, tmp_path: Path, damage: object, which: str
) -> None:
    run_dir = tmp_path / "run"
    train(digits16, run_dir, 2, io.StringIO())
    state = json.loads((run_dir / STATE_DIR / STATE_FILE).read_text())
    damaged = run_dir / STATE_DIR / state[which]
    damage(damaged)  # type: ignore[operator]

    out = io.StringIO()
    warnings = train(digits16, run_dir, 2, out)  # the same config: it would have resumed

    text = out.getvalue()
    assert (
        f"warning: starting over: the saved training state cannot be used ({damaged.name} is damaged"
        in text
    )
    assert any(damaged.name in warning for warning in warnings)
    assert "resuming" not in text
    assert "epoch 1/2" in text  # trained again from the first epoch
    assert (run_dir / "model.keras").is_file()
    # The next run finds the fresh state whole and has nothing more to do.
    again = io.StringIO()
    assert not any("starting over" in warning for warning in train(digits16, run_dir, 2, again))
    assert "starting over" not in again.getvalue()
