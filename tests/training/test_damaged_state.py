"""A damaged training checkpoint makes training start over with a warning, not fail every rerun."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from skillmaker.training.state import PREVIOUS_FILE, STATE_DIR, STATE_FILE
from skillmaker.training.train import train_model
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
def test_a_damaged_last_checkpoint_resumes_from_the_epoch_before_with_a_warning(
    digits16: Digits, tmp_path: Path, damage: object
) -> None:
    run_dir = tmp_path / "run"
    train(digits16, run_dir, 3, io.StringIO())
    state = json.loads((run_dir / STATE_DIR / STATE_FILE).read_text())
    damaged = run_dir / STATE_DIR / state["last_weights"]
    assert damaged.name == "epoch-00003.npz"
    damage(damaged)  # type: ignore[operator]

    out = io.StringIO()
    warnings = train(digits16, run_dir, 3, out)  # the same config: it resumes

    text = out.getvalue()
    assert "warning: the last training state cannot be used: epoch-00003.npz is damaged" in text
    assert "; resuming from the epoch before" in text
    assert any("epoch-00003.npz" in warning for warning in warnings)
    assert "resuming after epoch 2" in text
    assert "epoch 1/3" not in text and "epoch 2/3" not in text
    assert "epoch 3/3" in text  # only the lost epoch is trained again
    assert (run_dir / "model.keras").is_file()
    again = io.StringIO()
    assert not any("cannot be used" in warning for warning in train(digits16, run_dir, 3, again))


def test_with_both_kept_states_damaged_training_starts_over_with_a_warning(
    digits16: Digits, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    train(digits16, run_dir, 3, io.StringIO())
    folder = run_dir / STATE_DIR
    for file in (STATE_FILE, PREVIOUS_FILE):
        cut_in_half(folder / json.loads((folder / file).read_text())["last_weights"])

    out = io.StringIO()
    warnings = train(digits16, run_dir, 3, out)

    text = out.getvalue()
    assert (
        "warning: starting over: the saved training state cannot be used "
        "(epoch-00003.npz is damaged" in text
    )
    assert any("starting over" in warning for warning in warnings)
    assert "resuming" not in text
    assert "epoch 1/3" in text  # trained again from the first epoch
    assert (run_dir / "model.keras").is_file()
    # The next run finds the fresh state whole and has nothing more to do.
    again = io.StringIO()
    assert not any("starting over" in warning for warning in train(digits16, run_dir, 3, again))
