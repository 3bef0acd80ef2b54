"""The gate's rules on paired results: accuracy (McNemar), p95, per-class recall, first model."""

from __future__ import annotations

import pytest

from skillmaker.config.model import GateConfig
from skillmaker.domain.gate import GateDecision, decide, format_table, mcnemar
from skillmaker.errors import UserError
from tests.skill_repos import (
    balanced_truth,
    metrics_record,
    model_result,
    predict,
    wrong_in_class,
)

GATE = GateConfig(
    accuracy_tolerance=0.005,
    latency_tolerance=0.05,
    max_class_drop=0.05,
    min_accuracy=0.8,
    significance=0.05,
)
TRUTH = balanced_truth()  # 1000 images, 100 per class
BASELINE_WRONG = {c + 100 * k for c in range(10) for k in range(5)}  # 5 errors per class: 95.0%


def _new_errors(count: int) -> set[int]:
    """Give ``count`` images the baseline got right, spread over the classes."""
    right = [i for i in range(len(TRUTH)) if i not in BASELINE_WRONG]
    return set(right[::7][:count])


def _rule(decision: GateDecision, name: str) -> tuple[bool, str]:
    (rule,) = [r for r in decision.rules if r.name == name]
    return rule.passed, rule.reason


def _decide(
    candidate_wrong: set[int], cand_p95: float = 10.0, gate: GateConfig = GATE
) -> GateDecision:
    baseline = model_result(1, TRUTH, predict(TRUTH, BASELINE_WRONG), p95=10.0)
    candidate = model_result(2, TRUTH, predict(TRUTH, candidate_wrong), p95=cand_p95)
    return decide(metrics_record(TRUTH, candidate, baseline), gate)


def test_a_drop_of_three_tenths_of_a_point_within_half_a_point_passes() -> None:
    decision = _decide(BASELINE_WRONG | _new_errors(3))  # 94.7%: three more errors
    passed, reason = _rule(decision, "accuracy")
    assert passed
    assert "-0.30 points" in reason
    assert "within the tolerance of 0.50 points" in reason
    assert decision.passed
    assert decision.baseline_version == 1


def test_a_significant_drop_fails() -> None:
    worse = BASELINE_WRONG | _new_errors(40)  # 40 new errors, none fixed: 91.0%
    decision = _decide(worse, gate=GATE.model_copy(update={"max_class_drop": 0.2}))
    passed, reason = _rule(decision, "accuracy")
    assert not passed
    assert not decision.passed
    assert "significant (exact McNemar b=0, c=40" in reason
    assert [r.name for r in decision.failed_rules] == ["accuracy"]


def test_a_drop_beyond_tolerance_that_noise_explains_passes() -> None:
    # 200 images: the candidate fixes 3 of the baseline's errors and makes 6 new ones (-1.5 points).
    truth = balanced_truth(per_class=20)
    base_wrong = set(range(0, 200, 20))
    cand_wrong = (base_wrong - {0, 20, 40}) | {1, 21, 41, 61, 81, 101}
    baseline = model_result(1, truth, predict(truth, base_wrong))
    candidate = model_result(2, truth, predict(truth, cand_wrong))
    gate = GATE.model_copy(update={"max_class_drop": 0.1})
    decision = decide(metrics_record(truth, candidate, baseline), gate)
    passed, reason = _rule(decision, "accuracy")
    assert passed
    assert "-1.50 points" in reason
    assert "not significant (exact McNemar b=3, c=6" in reason


def test_eight_percent_slower_with_five_percent_tolerance_fails() -> None:
    decision = _decide(BASELINE_WRONG, cand_p95=10.8)
    passed, reason = _rule(decision, "latency_p95")
    assert not passed
    assert "p95 10.80 ms vs 10.00 ms (+8.0%)" in reason
    assert "slower than the limit of 10.50 ms" in reason
    assert not decision.passed


def test_four_percent_slower_with_five_percent_tolerance_passes() -> None:
    passed, _ = _rule(_decide(BASELINE_WRONG, cand_p95=10.4), "latency_p95")
    assert passed


def test_one_class_dropping_past_the_limit_fails_though_accuracy_rose() -> None:
    fixed = {i for i in BASELINE_WRONG if TRUTH[i] != 3}  # 45 errors fixed outside class 3
    broken = wrong_in_class(TRUTH, 3, 10, skip=41)  # 10 new errors in class 3
    decision = _decide((BASELINE_WRONG - fixed) | broken)
    accuracy_passed, accuracy_reason = _rule(decision, "accuracy")
    assert accuracy_passed
    assert "+3.50 points" in accuracy_reason
    passed, reason = _rule(decision, "class_recall")
    assert not passed
    assert "'3' 95.00% -> 85.00% (-10.00 points)" in reason
    assert not decision.passed


def test_a_first_model_passes_only_above_the_minimum() -> None:
    good = model_result(1, TRUTH, predict(TRUTH, BASELINE_WRONG))
    bad = model_result(1, TRUTH, predict(TRUTH, set(range(0, 1000, 4))))  # 75%
    passed = decide(metrics_record(TRUTH, good, None), GATE)
    rejected = decide(metrics_record(TRUTH, bad, None), GATE)
    assert passed.passed
    assert [r.name for r in passed.rules] == ["min_accuracy"]
    assert passed.baseline_version is None
    assert not rejected.passed
    assert "75.00% is below the minimum of 80.00%" in rejected.rules[0].reason


def test_identical_predictions_give_no_evidence_either_way() -> None:
    predictions = predict(TRUTH, BASELINE_WRONG)
    assert mcnemar(TRUTH, predictions, predictions) == (0, 0, 1.0)


def test_an_override_passes_a_rejection_and_keeps_what_failed() -> None:
    decision = _decide(BASELINE_WRONG, cand_p95=20.0)
    accepted = decision.accepted_by(
        "alice", "ten times cheaper hardware", "2026-01-01T00:00:00+00:00"
    )
    assert accepted.passed
    assert not accepted.rules_passed
    record = accepted.to_record()
    assert record["override"] == {
        "by": "alice",
        "reason": "ten times cheaper hardware",
        "at": "2026-01-01T00:00:00+00:00",
    }
    assert GateDecision.from_record(record) == accepted
    assert accepted.summary() == "overridden by alice: ten times cheaper hardware"


def test_the_table_prints_every_rule_with_its_reason() -> None:
    decision = _decide(BASELINE_WRONG | _new_errors(1), cand_p95=10.8)
    table = format_table(decision)
    for rule in decision.rules:
        assert rule.reason in table
    assert "latency_p95   FAIL" in table
    assert table.splitlines()[-1] == "gate: rejected (baseline version 1)"


def test_results_on_different_images_are_refused() -> None:
    baseline = model_result(1, TRUTH, predict(TRUTH, BASELINE_WRONG))
    candidate = model_result(2, TRUTH, predict(TRUTH, BASELINE_WRONG))
    candidate["predictions"] = candidate["predictions"][:-1]
    with pytest.raises(
        UserError, match=r"candidate\.predictions has 999 entries but truth has 1000"
    ):
        decide(metrics_record(TRUTH, candidate, baseline), GATE)
