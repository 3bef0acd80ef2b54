"""A full, schema-correct run folder for N classes: the records every stage writes, made up but
consistent (per-class metrics and accuracy follow from the confusion matrix), with a real PNG image
and Grad-CAM overlay for each failure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skillmaker import records
from skillmaker.records import (
    AuditRecord,
    ClassMetrics,
    EpochRecord,
    Failure,
    GateRecord,
    HistoryRecord,
    Latency,
    MetricsRecord,
    ModelResult,
    RunRecord,
    StackRecord,
    TrainRecord,
    write_record,
)

HOSTILE = r"50%_off & {new} #1 \input{/etc/passwd}"


@dataclass(frozen=True)
class SampleOptions:
    """What the made-up run holds."""

    baseline: bool = True
    gate: bool = True
    stack: bool = True
    history: bool = True
    failures: int = 6
    test_per_class: int = 12
    seed: int = 0


def class_names(count: int) -> list[str]:
    """Give ``count`` distinct, car-like class names."""
    makes = ["porsche", "audi", "bmw", "fiat", "volvo", "skoda", "seat", "opel", "mini", "kia"]
    return [f"{makes[i % len(makes)]}-model-{i:03d}" for i in range(count)]


def _confusion(size: int, per_class: int, accuracy: float, rng: random.Random) -> list[list[int]]:
    matrix = [[0] * size for _ in range(size)]
    for i in range(size):
        support = per_class + rng.randint(-per_class // 3, per_class // 3)
        wrong = min(support, max(0, round(support * (1 - accuracy) + rng.uniform(-1.5, 1.5))))
        matrix[i][i] = support - wrong
        neighbours = [(i + 1) % size, (i + 2) % size, rng.randrange(size)] if size > 1 else [i]
        for _ in range(wrong):
            j = rng.choice(neighbours)
            matrix[i][j if j != i else (i + 1) % size] += 1
    return matrix


def _per_class(labels: list[str], matrix: list[list[int]]) -> list[ClassMetrics]:
    result: list[ClassMetrics] = []
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result.append(
            {"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    return result


def _latency(rng: random.Random, centre: float) -> Latency:
    samples = sorted(round(rng.lognormvariate(np.log(centre), 0.25), 3) for _ in range(200))
    return {
        "p50": float(np.percentile(samples, 50)),
        "p95": float(np.percentile(samples, 95)),
        "p99": float(np.percentile(samples, 99)),
        "mean": float(np.mean(samples)),
        "concurrency": 1,
        "samples_ms": samples,
    }


def _write_pngs(run_dir: Path, index: int, rng: random.Random) -> tuple[str, str]:
    """Write a small grey test image and its Grad-CAM overlay; give their run-relative paths."""
    size = 32
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy = rng.uniform(8, 24), rng.uniform(8, 24)
    grey = (128 + 100 * np.sin(xx / 3.0 + index) * np.cos(yy / 4.0)).clip(0, 255).astype(np.uint8)
    heat = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 40.0)
    overlay = np.stack([grey, grey, grey], axis=-1).astype(float)
    overlay[..., 0] = overlay[..., 0] * 0.5 + 255 * heat * 0.5
    overlay[..., 2] = overlay[..., 2] * 0.5 + 255 * (1 - heat) * 0.5
    image = Path("failures") / f"{index:03d}.png"
    gradcam = Path("failures") / f"{index:03d}-gradcam.png"
    (run_dir / "failures").mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey, mode="L").save(run_dir / image)
    Image.fromarray(overlay.clip(0, 255).astype(np.uint8), mode="RGB").save(run_dir / gradcam)
    return image.as_posix(), gradcam.as_posix()


def _result(
    labels: list[str],
    matrix: list[list[int]],
    truth: list[int],
    version: int,
    code: str,
    latency: Latency,
    failures: list[Failure],
) -> ModelResult:
    # Truth lists images row by row, so predictions follow the same order.
    predictions = [j for row in matrix for j, count in enumerate(row) for _ in range(count)]
    total = sum(sum(row) for row in matrix)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return {
        "skill_version": version,
        "code_version": code,
        "model_hash": f"{version:02d}" + "ab" * 31,
        "accuracy": correct / total,
        "top_k": 3,
        "top_k_accuracy": min(1.0, correct / total + 0.04),
        "per_class": _per_class(labels, matrix),
        "confusion_matrix": matrix,
        "latency": latency,
        "predictions": predictions[: len(truth)],
        "failures": failures,
        "errors": 0,
    }


def write_sample_run(
    run_dir: Path, labels: list[str], options: SampleOptions = SampleOptions()
) -> Path:
    """Give ``run_dir`` after writing every record of a made-up but consistent run into it."""
    rng = random.Random(options.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    size = len(labels)
    matrix = _confusion(size, options.test_per_class, 0.9, rng)
    truth = [i for i, row in enumerate(matrix) for _ in range(sum(row))]
    keys = [f"{labels[i]}/g{n:05d}/{n:05d}.png" for n, i in enumerate(truth)]

    failures: list[Failure] = []
    wrong = [
        (i, j) for i, row in enumerate(matrix) for j, count in enumerate(row) if i != j and count
    ]
    for index, (i, j) in enumerate(wrong[: options.failures], 1):
        image, gradcam = _write_pngs(run_dir, index, rng)
        failures.append(
            {
                "key": f"{labels[i]}/g{index:05d}/img_{index:04d}.png",
                "true": labels[i],
                "predicted": labels[j],
                "probability": round(rng.uniform(0.4, 0.99), 4),
                "image": image,
                "gradcam": gradcam,
            }
        )

    code = "0123456789abcdef0123456789abcdef01234567"
    candidate = _result(labels, matrix, truth, 7, code, _latency(rng, 12.0), failures)
    baseline = None
    if options.baseline:
        base_matrix = _confusion(
            size, options.test_per_class, 0.86, random.Random(options.seed + 1)
        )
        # Same test images: rescale rows to the candidate's supports by moving the diagonal.
        for i in range(size):
            diff = sum(matrix[i]) - sum(base_matrix[i])
            base_matrix[i][i] = max(0, base_matrix[i][i] + diff)
            row = base_matrix[i]
            while sum(row) > sum(matrix[i]):
                row[row.index(max(row))] -= 1
        baseline = _result(labels, base_matrix, truth, 6, "fedcba98" * 5, _latency(rng, 13.0), [])

    metrics: MetricsRecord = {
        "labels": labels,
        "keys": keys,
        "truth": truth,
        "candidate": candidate,
        "baseline": baseline,
    }
    audit: AuditRecord = {
        "images": sum(sum(row) for row in matrix) * 6 + 40,
        "classes": [
            {
                "name": label,
                "counts": {
                    "train": sum(matrix[i]) * 4 + rng.randint(0, 30),
                    "val": sum(matrix[i]),
                    "test": sum(matrix[i]),
                },
            }
            for i, label in enumerate(labels)
        ],
        "imbalance_ratio": 2.4,
        "excluded": [
            {"name": "trabant-601", "count": 4, "reason": "too few examples"},
            {"name": "unknown", "count": 31, "reason": "excluded by config"},
        ],
        "quarantined": [
            {"key": f"{labels[0]}/g00001/broken.jpg", "reason": "truncated"},
            {"key": f"{labels[-1]}/g00002/empty.png", "reason": "empty"},
            {"key": f"{labels[0]}/g00003/notes.txt", "reason": "not an image"},
            {"key": f"{labels[0]}/g00004/huge.png", "reason": "too many pixels"},
            {"key": f"{labels[0]}/g00005/notes2.txt", "reason": "not an image"},
        ],
        "duplicate_groups": [
            {
                "group": "dup-0001",
                "kind": "exact",
                "members": [f"{labels[0]}/a/1.png", f"{labels[0]}/b/1.png"],
            },
            {
                "group": "dup-0002",
                "kind": "near",
                "members": [f"{labels[-1]}/c/{n}.png" for n in range(6)],
            },
        ],
        "ledger_hash": "1e" * 32,
        "manifest_hash": "3a" * 32,
        "largest_duplicates": [
            {"group": "dup-0002", "size": 6, "capped": False},
            {"group": "dup-0003", "size": 61, "capped": True},
        ],
    }
    epochs: list[EpochRecord] = []
    for epoch in range(1, 13):
        epochs.append(
            {
                "epoch": epoch,
                "phase": "train" if epoch <= 9 else "fine_tune",
                "loss": round(2.3 * 0.75**epoch + 0.05, 4),
                "val_loss": round(2.3 * 0.78**epoch + 0.12 + (0.02 * max(0, epoch - 9)), 4),
                "accuracy": round(1 - 0.9 * 0.72**epoch, 4),
                "val_accuracy": round(1 - 0.9 * 0.75**epoch - 0.02, 4),
                "seconds": 3.5,
            }
        )
    history: HistoryRecord = {"epochs": epochs, "best_epoch": 9, "stopped_early": True}
    hardware = {"cpu": "2 cores", "memory_gb": 24, "gpus": [], "platform": "linux-x86_64"}
    train: TrainRecord = {
        "config_hash": "c0" * 32,
        "manifest_hash": audit["manifest_hash"],
        "ledger_hash": audit["ledger_hash"],
        "profile": "laptop",
        "network": "small_cnn",
        "batch_size": 32,
        "image_size": [16, 16, 1],
        "mixed_precision": False,
        "strategy": "none",
        "epochs_run": 12,
        "best_epoch": 9,
        "seconds": 42.0,
        "hardware": hardware,
        "libraries": {"keras": "3.15.0", "tensorflow": "2.21.0"},
    }
    run: RunRecord = {
        "skill": "digits",
        "skill_version": 7,
        "code_version": code,
        "config_hash": "c0" * 32,
        "manifest_hash": audit["manifest_hash"],
        "skillmaker_version": "0.1.0",
        "hardware": hardware,
        "stages": {
            "version": {"outcome": "passed", "seconds": 0.2, "message": ""},
            "data": {"outcome": "passed", "seconds": 5.1, "message": "5 files quarantined"},
            "train": {"outcome": "passed", "seconds": 42.0, "message": ""},
            "evaluate": {"outcome": "passed", "seconds": 9.3, "message": ""},
        },
        "warnings": ["docker: no engine answered; build skipped"],
    }
    write_record(run_dir / records.RUN, run)
    write_record(run_dir / records.TRAIN, train)
    write_record(run_dir / records.AUDIT, audit)
    write_record(run_dir / records.METRICS, metrics)
    if options.history:
        write_record(run_dir / records.HISTORY, history)
    if options.gate:
        gate: GateRecord = {
            "passed": True,
            "baseline_version": 6 if baseline else None,
            "rules": [
                {
                    "name": "accuracy",
                    "passed": True,
                    "candidate": candidate["accuracy"],
                    "baseline": baseline["accuracy"] if baseline else None,
                    "limit": 0.01,
                    "reason": "accuracy is no worse than the baseline's minus the tolerance",
                },
                {
                    "name": "latency_p95",
                    "passed": True,
                    "candidate": candidate["latency"]["p95"],
                    "baseline": baseline["latency"]["p95"] if baseline else None,
                    "limit": 0.5,
                    "reason": "p95 latency within 50% of the baseline's",
                },
                {
                    "name": "class_recall",
                    "passed": True,
                    "candidate": 0.78,
                    "baseline": 0.81,
                    "limit": 0.1,
                    "reason": f"recall of {labels[0]} fell by 0.03, within 0.1",
                },
            ],
        }
        write_record(run_dir / records.GATE, gate)
    if options.stack:
        stack: StackRecord = {
            "end_to_end_accuracy": 0.874,
            "steps": [
                {
                    "skill": "is-car",
                    "accuracy": 0.991,
                    "skill_version": 12,
                    "code_version": "aa" * 20,
                },
                {
                    "skill": "digits",
                    "accuracy": candidate["accuracy"],
                    "skill_version": 7,
                    "code_version": code,
                },
            ],
            "latency": _latency(rng, 30.0),
            "inputs": 400,
            "previous_end_to_end_accuracy": 0.861,
        }
        write_record(run_dir / records.STACK, stack)
    return run_dir
