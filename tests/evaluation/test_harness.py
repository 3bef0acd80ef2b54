"""The harness end to end: two trained models served as local processes, checked with sklearn."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from skillmaker.data.images import decode_file
from skillmaker.evaluation.harness import StampMismatchError, TestItem, evaluate
from skillmaker.evaluation.launch import ExistingServers, LocalProcessLauncher, ServerSpec
from skillmaker.records import ModelResult
from skillmaker.serving.bundle import read_bundle
from skillmaker.serving.predictor import softmax
from tests.serving import bundles

LABELS = bundles.DIGIT_LABELS


def in_process_scores(bundle: Path, items: list[TestItem]) -> np.ndarray:
    model = keras.saving.load_model(bundle / "model.keras", compile=False)
    images = np.stack([decode_file(item.path, 8, 8, 1, 1_000_000) for item in items])
    return softmax(np.asarray(model.predict_on_batch(images.astype("float32"))))


def check_failures(
    result: ModelResult, truth: list[int], items: list[TestItem], run_dir: Path
) -> None:
    wrong = [i for i, (p, t) in enumerate(zip(result["predictions"], truth, strict=True)) if p != t]
    assert len(result["failures"]) == min(3, len(wrong))
    for failure, index in zip(result["failures"], wrong, strict=False):
        assert failure["key"] == items[index].key
        assert failure["true"] == LABELS[truth[index]]
        assert failure["predicted"] == LABELS[result["predictions"][index]]
        assert 0.0 < failure["probability"] <= 1.0
        image = Image.open(run_dir / failure["image"])
        overlay = Image.open(run_dir / failure["gradcam"])
        assert (image.format, overlay.format) == ("PNG", "PNG")
        assert image.size == overlay.size == (128, 128)  # 8x8 digits scaled up to be seen
        assert np.asarray(overlay).std() > 0


def check_against_sklearn(result: ModelResult, truth: list[int], scores: np.ndarray) -> None:
    predictions = result["predictions"]
    # The served answers are the model's own: the same argmax as in-process prediction.
    assert predictions == scores.argmax(axis=1).tolist()
    classes = list(range(len(LABELS)))
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(truth, predictions), abs=1e-12)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predictions, labels=classes, zero_division=0
    )
    assert [c["label"] for c in result["per_class"]] == LABELS
    np.testing.assert_allclose([c["precision"] for c in result["per_class"]], precision, atol=1e-12)
    np.testing.assert_allclose([c["recall"] for c in result["per_class"]], recall, atol=1e-12)
    np.testing.assert_allclose([c["f1"] for c in result["per_class"]], f1, atol=1e-12)
    assert [c["support"] for c in result["per_class"]] == support.tolist()
    assert (
        result["confusion_matrix"]
        == skm.confusion_matrix(truth, predictions, labels=classes).tolist()
    )
    assert result["top_k"] == 5
    expected_top_k = skm.top_k_accuracy_score(truth, scores, k=5, labels=classes)
    assert result["top_k_accuracy"] == pytest.approx(expected_top_k, abs=1e-12)
    latency = result["latency"]
    samples = np.asarray(latency["samples_ms"])
    assert len(samples) == len(truth)
    assert (samples > 0).all()
    assert latency["concurrency"] == 4
    assert [latency["p50"], latency["p95"], latency["p99"]] == pytest.approx(
        np.percentile(samples, [50, 95, 99]).tolist()
    )
    assert latency["mean"] == pytest.approx(samples.mean())
    assert result["errors"] == 0


@pytest.fixture(scope="module")
def both_served(
    two_bundles: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExistingServers]:
    """Serve candidate and baseline once, as ``skillmaker serve`` processes, for every test."""
    candidate, baseline = two_bundles
    launcher = LocalProcessLauncher(log_dir=tmp_path_factory.mktemp("logs"))
    specs = [
        ServerSpec.from_bundle("candidate", candidate),
        ServerSpec.from_bundle("baseline", baseline),
    ]
    with launcher.start(specs) as servers:
        yield ExistingServers({s.spec.name: s.url for s in servers})


def test_two_models_on_the_same_split_match_sklearn_computed_from_their_predictions(
    two_bundles: tuple[Path, Path],
    test_items: list[TestItem],
    tmp_path: Path,
    both_served: ExistingServers,
) -> None:
    candidate, baseline = two_bundles
    run_dir = tmp_path / "run"
    messages: list[str] = []
    record = evaluate(
        ServerSpec.from_bundle("cand", candidate),
        ServerSpec.from_bundle("base", baseline),
        test_items,
        LABELS,
        run_dir,
        launcher=both_served,
        concurrency=4,
        max_failures=3,
        say=messages.append,
    )
    truth = [item.label for item in test_items]
    assert record["keys"] == [item.key for item in test_items]
    assert record["truth"] == truth
    assert record["labels"] == LABELS
    assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")) == record
    base_result = record["baseline"]
    assert base_result is not None
    for result, bundle, version in (
        (record["candidate"], candidate, 5),
        (base_result, baseline, 4),
    ):
        stamp = read_bundle(bundle).stamp
        assert (result["skill_version"], result["code_version"], result["model_hash"]) == (
            version,
            stamp.code_version,
            stamp.model_hash,
        )
        check_against_sklearn(result, truth, in_process_scores(bundle, test_items))
        check_failures(result, truth, test_items, run_dir)
        # The server's own model time is measured and stays below what the client waited.
        latency = result["latency"]
        assert 0 < latency.get("model_p95", 0) <= latency["p95"]
        assert len(latency["samples_ms"]) == len(test_items)
    # The two models really differ, so the comparison means something.
    assert record["candidate"]["accuracy"] > base_result["accuracy"]
    assert len(base_result["failures"]) == 3  # the weak model makes plenty of mistakes
    assert not list(run_dir.glob(".failures-*"))
    assert any("candidate v5: accuracy" in m for m in messages)


def test_an_answer_with_other_versions_fails_the_stage_and_writes_nothing(
    two_bundles: tuple[Path, Path],
    test_items: list[TestItem],
    tmp_path: Path,
    both_served: ExistingServers,
) -> None:
    candidate, _ = two_bundles
    served = read_bundle(candidate).stamp  # the server answers v5 / c4nd1da7e
    # The run says this candidate is v6 built from another commit: every answer contradicts it.
    expected = dataclasses.replace(served, skill_version=6, code_version="0ther")
    run_dir = tmp_path / "run"
    with pytest.raises(StampMismatchError) as caught:
        evaluate(ServerSpec("cand", expected, candidate), None, test_items[:20], LABELS, run_dir,
                 launcher=both_served, warmup=2)  # fmt: skip
    message = str(caught.value)
    assert "other versions than the model the server was started with" in message
    assert "candidate (/version): header x-skill-version is '5', expected 6" in message
    assert "body skill_version is 5, expected 6" in message
    assert "body code_version is 'c4nd1da7e', expected '0ther'" in message
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "failures").exists()


def test_an_image_the_server_refuses_counts_as_an_error_and_a_wrong_answer(
    test_items: list[TestItem],
    tmp_path: Path,
    both_served: ExistingServers,
    two_bundles: tuple[Path, Path],
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(test_items[0].path.read_bytes()[:40])  # a truncated PNG
    items = [*test_items[:10], TestItem("0/broken.png", broken, 0)]
    record = evaluate(two_bundles[0], None, items, LABELS, tmp_path / "run", launcher=both_served)
    result = record["candidate"]
    assert result["errors"] == 1
    assert result["predictions"][-1] == -1
    truth = record["truth"]
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(truth, result["predictions"]))
    recall = skm.recall_score(
        truth, result["predictions"], labels=list(range(10)), average=None, zero_division=0
    )
    np.testing.assert_allclose([c["recall"] for c in result["per_class"]], recall)
    assert sum(map(sum, result["confusion_matrix"])) == 10
