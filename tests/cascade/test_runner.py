"""A three-skill cascade on data the test makes, served as local processes, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from skillmaker.cascade.definition import StackDefinition, expected_path
from skillmaker.cascade.runner import StackCase, run_stack_test
from skillmaker.data.images import decode_file
from skillmaker.records import StackRecord
from skillmaker.serving.bundle import read_bundle
from skillmaker.serving.predictor import softmax
from tests.serving import bundles

# Is it a digit or noise? Low (0-4) or high (5-9)? Which low digit?
CASCADE = StackDefinition.model_validate(
    {
        "name": "digits",
        "steps": [
            {"skill": "detector"},
            {"skill": "size", "after": "detector", "on": ["digit"]},
            {"skill": "low-digit", "after": "size", "on": ["low"], "model": "candidate"},
        ],
    }
)
LABELS = {
    "detector": ["digit", "noise"],
    "size": ["low", "high"],
    "low-digit": ["0", "1", "2", "3", "4"],
}


def noise(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 8, 8, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def cascade_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data = bundles.digits()
    images, target = data.images[data.train], data.target[data.train]
    root = tmp_path_factory.mktemp("cascade")
    detector = bundles.train(
        bundles.build_model(2, filters=4),
        np.concatenate([images[:400], noise(400, 1)]),
        np.array([0] * 400 + [1] * 400),
        epochs=2,
    )
    size = bundles.train(bundles.build_model(2), images, (target >= 5).astype(int), epochs=3)
    low = target < 5
    low_digit = bundles.train(bundles.build_model(5), images[low], target[low], epochs=3)
    models = {"detector": (detector, 8, "aaa111"), "size": (size, 2, "bbb222")}
    models["low-digit"] = (low_digit, 5, "ccc333")
    return {
        skill: bundles.save_bundle(root / skill, model, LABELS[skill], skill, version, code)
        for skill, (model, version, code) in models.items()
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[StackCase]:
    data = bundles.digits()
    root = tmp_path_factory.mktemp("stack-set")
    made = [
        StackCase(f"noise/{i}.png", bundles.write_png(root / f"noise/{i}.png", pixels), "noise")
        for i, pixels in enumerate(noise(30, 2))
    ]
    for index in data.test[:90]:
        digit = int(data.target[index])
        answer = str(digit) if digit < 5 else "high"
        path = bundles.write_png(root / f"digits/{index}.png", data.images[index])
        made.append(StackCase(f"digits/{index}.png", path, answer))
    return made


def in_process(bundle: Path, images: np.ndarray) -> list[str]:
    info = read_bundle(bundle)
    model = keras.saving.load_model(bundle / "model.keras", compile=False)
    best = softmax(np.asarray(model.predict_on_batch(images.astype("float32")))).argmax(axis=1)
    return [info.labels[i] for i in best]


def test_three_skill_cascade_end_to_end_matches_the_models_run_in_process(
    cascade_bundles: dict[str, Path], cases: list[StackCase], tmp_path: Path
) -> None:
    previous = StackRecord(
        end_to_end_accuracy=0.5,
        steps=[],
        latency={
            "p50": 1.0,
            "p95": 1.0,
            "p99": 1.0,
            "mean": 1.0,
            "concurrency": 4,
            "samples_ms": [1.0],
        },
        inputs=10,
        previous_end_to_end_accuracy=None,
    )
    messages: list[str] = []
    record = run_stack_test(
        CASCADE,
        dict(cascade_bundles),  # bundle folders: each must answer with its own stamp
        cases,
        previous=previous,
        run_dir=tmp_path,
        concurrency=4,
        say=messages.append,
    )

    # The same cascade, run with the models in this process.
    images = np.stack([decode_file(case.path, 8, 8, 1, 1_000_000) for case in cases])
    answers = {skill: in_process(path, images) for skill, path in cascade_bundles.items()}
    finals = []
    for i in range(len(cases)):
        if answers["detector"][i] == "noise":
            finals.append("noise")
        elif answers["size"][i] == "high":
            finals.append("high")
        else:
            finals.append(answers["low-digit"][i])
    expected_accuracy = np.mean([f == c.answer for f, c in zip(finals, cases, strict=True)])
    assert record["end_to_end_accuracy"] == pytest.approx(expected_accuracy)
    assert 0.5 < record["end_to_end_accuracy"] <= 1.0

    paths = [expected_path(CASCADE, LABELS, case.answer) or {} for case in cases]
    for step in record["steps"]:
        skill = step["skill"]
        meant = [i for i, path in enumerate(paths) if skill in path]
        hits = [answers[skill][i] == paths[i][skill] for i in meant]
        assert step["accuracy"] == pytest.approx(np.mean(hits)), skill
        stamp = read_bundle(cascade_bundles[skill]).stamp
        assert (step["skill_version"], step["code_version"]) == (
            stamp.skill_version,
            stamp.code_version,
        )
    assert [s["skill"] for s in record["steps"]] == ["detector", "size", "low-digit"]

    assert record["inputs"] == len(cases) == 120
    assert len(record["latency"]["samples_ms"]) == 120
    assert record["latency"]["p50"] > 0
    assert record["previous_end_to_end_accuracy"] == 0.5
    assert json.loads((tmp_path / "stack.json").read_text(encoding="utf-8")) == record
    assert any("(last time 0.5000)" in m for m in messages)
