"""JUnit XML of the harness: what Jenkins shows per class, and when a case fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from xml.etree import ElementTree

from skillmaker.config.model import GateConfig
from skillmaker.evaluation.junit import evaluate_cases, stack_cases, write_junit
from skillmaker.records import MetricsRecord


def _result(version: int, accuracy: float, recalls: dict[str, float], errors: int = 0) -> Any:
    return {
        "skill_version": version,
        "accuracy": accuracy,
        "errors": errors,
        "per_class": [
            {"label": k, "precision": 0.9, "recall": v, "f1": 0.9, "support": 20}
            for k, v in recalls.items()
        ],
    }


def _metrics(candidate: Any, baseline: Any | None) -> MetricsRecord:
    return cast(MetricsRecord, {"keys": ["a"] * 40, "candidate": candidate, "baseline": baseline})


def test_a_first_model_fails_only_what_is_below_its_floor(tmp_path: Path) -> None:
    cases = evaluate_cases(
        _metrics(_result(1, 0.45, {"cat": 0.9, "dog": 0.0}, errors=2), None), GateConfig()
    )
    failed = {c.name: c.failure for c in cases if c.failure}
    assert set(failed) == {"accuracy", "served every test image", "class dog"}
    assert failed["accuracy"] == "accuracy 0.4500 is below the first-model minimum 0.5000"
    assert failed["class dog"] == "class dog: not one of 20 test images recognised"
    path = write_junit(tmp_path, "evaluate", cases)
    suite = ElementTree.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3")


def test_a_class_that_fell_more_than_the_gate_allows_fails() -> None:
    metrics = _metrics(
        _result(2, 0.95, {"cat": 0.97, "dog": 0.80}), _result(1, 0.95, {"cat": 0.96, "dog": 0.90})
    )
    cases = {c.name: c for c in evaluate_cases(metrics, GateConfig(max_class_drop=0.05))}
    assert cases["class cat"].failure is None
    assert "baseline recall 0.9600" in cases["class cat"].output
    assert (
        cases["class dog"].failure
        == "class dog: recall fell from 0.9000 to 0.8000 (more than 0.0500)"
    )
    assert cases["accuracy"].failure is None


def test_a_skipped_stack_test_is_one_skipped_case() -> None:
    [case] = stack_cases(None, 0.0, skipped="skill digits is in no cascade")
    assert case.skipped == "skill digits is in no cascade" and case.failure is None
