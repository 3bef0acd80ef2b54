"""train_model on real digits: accuracy, artifacts, reproducibility, resume after SIGKILL."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from skillmaker.config import SkillConfig, config_hash
from skillmaker.errors import UserError
from skillmaker.records import read_record
from skillmaker.training.artifacts import load_model
from skillmaker.training.train import TrainResult, train_model
from tests.training.conftest import (
    REPO,
    RESUME_LIMIT,
    RESUME_SECTIONS,
    ArrayBatches,
    Digits,
    digits_config,
    load_digits_arrays,
)


def _train(
    config: SkillConfig, digits: Digits, run_dir: Path, out: io.StringIO | None = None, **kw: Any
) -> TrainResult:
    return train_model(
        config,
        profile=kw.pop("profile", None),
        train_data=kw.pop("train_data", None) or digits.batches("train", config.train.batch_size),
        val_data=digits.batches("val", 64),
        labels=digits.labels,
        normalisation=digits.normalisation(),
        class_counts=digits.class_counts(),
        run_dir=run_dir,
        manifest_hash="manifest-hash",
        ledger_hash="ledger-hash",
        out=out if out is not None else io.StringIO(),
        **kw,
    )


def _weights(path: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in load_model(path).get_weights()]


def _epochs_without_time(history: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]]


def test_digits_example_trains_to_95_percent_with_one_line_per_epoch(
    digits16: Digits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = digits_config()  # examples/digits.json as shipped
    out = io.StringIO()
    result = _train(config, digits16, tmp_path, out)

    model = load_model(tmp_path / "model.keras")
    logits = np.asarray(model.predict(digits16.test[0], verbose=0))
    accuracy = float((logits.argmax(axis=1) == digits16.test[1]).mean())
    assert accuracy >= 0.95
    # Logits, not probabilities: softmax is applied once, by serving, and sums to one.
    assert model.get_layer("logits").activation.__name__ == "linear"
    assert not np.allclose(logits.sum(axis=1), 1.0)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    history = read_record(tmp_path / "history.json")
    epochs = len(history["epochs"])
    lines = [line for line in out.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(lines) == epochs
    assert re.fullmatch(
        r"epoch 1/30: loss \d\.\d{4} accuracy \d\.\d{4} val_loss \d\.\d{4} "
        r"val_accuracy \d\.\d{4} \d+\.\ds \*best",
        lines[0],
    )
    assert "━" not in capsys.readouterr().out  # no per-batch bar: the output is not a terminal

    assert read_record(tmp_path / "labels.json") == digits16.labels
    assert read_record(tmp_path / "normalisation.json") == {
        "mean": digits16.normalisation()[0],
        "std": digits16.normalisation()[1],
    }
    best = history["best_epoch"]
    val_losses = [e["val_loss"] for e in history["epochs"]]
    assert val_losses[best - 1] == min(val_losses)
    train_record = read_record(tmp_path / "train.json")
    assert train_record == result.record
    assert train_record["config_hash"] == config_hash(config)
    assert train_record["manifest_hash"] == "manifest-hash"
    assert train_record["ledger_hash"] == "ledger-hash"
    assert train_record["epochs_run"] == epochs and train_record["best_epoch"] == best
    assert train_record["image_size"] == [16, 16, 1] and train_record["batch_size"] == 32
    assert train_record["hardware"]["cpu_count"] >= 1 and train_record["hardware"]["gpus"] == []
    assert {"keras", "tensorflow", "numpy", "python"} <= set(train_record["libraries"])

    # The kept model is for serving: weights only, none of the optimizer's state.
    assert getattr(keras.models.load_model(tmp_path / "model.keras"), "optimizer", None) is None

    # Grad-CAM can reach the last feature map from the model's own inputs.
    grad_model = keras.Model(model.inputs, [model.get_layer("features").output, model.output])
    features, _ = grad_model([digits16.test[0][:2].astype("float32")])
    assert len(features.shape) == 4


def test_two_runs_with_one_seed_give_identical_weights_and_a_changed_config_starts_over(
    digits16: Digits, tmp_path: Path
) -> None:
    config = digits_config(train={"epochs": 3, "class_weights": "balanced"})
    first = _train(config, digits16, tmp_path / "a")
    second = _train(config, digits16, tmp_path / "b")
    assert first.resumed_after is None and second.resumed_after is None
    a, b = _weights(tmp_path / "a" / "model.keras"), _weights(tmp_path / "b" / "model.keras")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert _epochs_without_time(first.history) == _epochs_without_time(second.history)

    changed = digits_config(train={"epochs": 2, "learning_rate": 0.004})
    out = io.StringIO()
    third = _train(changed, digits16, tmp_path / "a", out)
    assert "starting over: the saved training state cannot be used" in out.getvalue()
    assert [e["epoch"] for e in third.history["epochs"]] == [1, 2]


def _job(run_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tests.training.digits_job", str(run_dir), *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _epoch_lines(output: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^epoch (\d+)/", output, re.MULTILINE)]


def test_sigkilled_training_resumes_after_its_last_epoch_and_keeps_the_same_model(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "killed"
    first = _job(run_dir, "--kill-after", "2")
    assert first.returncode == -9, first.stderr[-2000:]
    assert _epoch_lines(first.stdout) == [1, 2]
    # Killed again after epoch 7, when the patience counter stands at one: a restart that forgot
    # it (or the best value) would train on past epoch 8 and keep another model.
    second = _job(run_dir, "--kill-after", "7")
    assert second.returncode == -9, second.stderr[-2000:]
    assert "resuming after epoch 2" in second.stdout
    assert _epoch_lines(second.stdout)[0] == 3
    third = _job(run_dir)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "resuming after epoch 7" in third.stdout

    config = digits_config(**RESUME_SECTIONS)
    digits = load_digits_arrays(16, 1, limit=RESUME_LIMIT)
    uninterrupted = _train(config, digits, tmp_path / "whole")
    assert uninterrupted.history["stopped_early"], "the comparison needs early stopping to fire"
    assert uninterrupted.history["best_epoch"] < len(uninterrupted.history["epochs"])

    resumed = read_record(run_dir / "history.json")
    assert resumed["best_epoch"] == uninterrupted.history["best_epoch"]
    assert resumed["stopped_early"] is True
    assert _epochs_without_time(resumed) == _epochs_without_time(uninterrupted.history)
    kept = _weights(run_dir / "model.keras")
    whole = _weights(tmp_path / "whole" / "model.keras")
    assert all(np.array_equal(x, y) for x, y in zip(kept, whole, strict=True))
    record = read_record(run_dir / "train.json")
    assert record["epochs_run"] == len(resumed["epochs"])


def test_batches_of_another_size_are_refused_before_anything_is_written(
    digits16: Digits, tmp_path: Path
) -> None:
    config = digits_config(image={"height": 24, "width": 24, "channels": 1})
    with pytest.raises(UserError, match=r"training data: images are 16x16x1 but skill.json asks "):
        _train(config, digits16, tmp_path / "run")
    assert not (tmp_path / "run").exists()

    wrong_labels = ArrayBatches(
        digits16.train[0][:64], digits16.train[1][:64] + 10, batch_size=32, seed=0, shuffle=False
    )
    with pytest.raises(UserError, match=r"labels must be class indices 0\.\.9"):
        _train(digits_config(), digits16, tmp_path / "run", train_data=wrong_labels)
    assert not (tmp_path / "run").exists()

    with pytest.raises(UserError, match=r"normalisation: channel 0 has standard deviation 0\.0"):
        train_model(
            digits_config(),
            profile=None,
            train_data=digits16.batches("train", 32),
            val_data=digits16.batches("val", 64),
            labels=digits16.labels,
            normalisation=([0.0], [0.0]),
            class_counts=digits16.class_counts(),
            run_dir=tmp_path / "run",
            manifest_hash="m",
            ledger_hash="l",
            out=io.StringIO(),
        )
    assert not (tmp_path / "run").exists()


def test_mirrored_strategy_trains_over_two_devices(tmp_path: Path) -> None:
    """The mirrored code path on two logical CPU devices (a GPU machine gives it real GPUs)."""
    job = _job(tmp_path, "--mirrored-cpus", "2")
    assert job.returncode == 0, job.stderr[-2000:]
    assert "mixed precision needs a GPU and none was found; training in float32" in job.stdout
    assert "2 replicas" in job.stdout
    record = read_record(tmp_path / "train.json")
    assert record["strategy"] == "mirrored" and record["hardware"]["replicas"] == 2
    assert record["mixed_precision"] is False and record["batch_size"] == 128
    assert json.loads((tmp_path / "labels.json").read_text()) == [str(d) for d in range(10)]
    assert load_model(tmp_path / "model.keras").output.shape[-1] == 10
