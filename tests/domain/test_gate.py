"""The gate's rules on paired results, rule by rule, with their pinned texts."""

from __future__ import annotations

import pytest

from skillmaker.config.model import GateConfig
from skillmaker.domain.gate import GateDecision, RuleResult, decide, format_table, mcnemar
from skillmaker.domain.gate_class import min_support
from skillmaker.domain.paired import (
    Paired,
    demonstrable_tolerance,
    holm,
    images_needed,
    newcombe_interval,
)
from skillmaker.domain.records import Latency, MetricsRecord
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


def _rule(decision: GateDecision, name: str) -> RuleResult:
    (rule,) = [r for r in decision.rules if r.name == name]
    return rule


def _metrics(
    candidate_wrong: set[int],
    cand_p95: float = 10.0,
    truth: list[int] = TRUTH,
    baseline_wrong: set[int] = BASELINE_WRONG,
) -> MetricsRecord:
    baseline = model_result(1, truth, predict(truth, baseline_wrong), p95=10.0)
    candidate = model_result(2, truth, predict(truth, candidate_wrong), p95=cand_p95)
    return metrics_record(truth, candidate, baseline)


def _decide(
    candidate_wrong: set[int], cand_p95: float = 10.0, gate: GateConfig = GATE
) -> GateDecision:
    return decide(_metrics(candidate_wrong, cand_p95), gate)


# ----------------------------------------------------------------------------- accuracy


def test_equal_models_on_a_large_test_set_pass_with_the_interval_in_the_reason() -> None:
    decision = _decide(BASELINE_WRONG)
    rule = _rule(decision, "accuracy")
    assert rule.verdict == "passed"
    assert rule.reason == (
        "accuracy 95.00% vs 95.00%: +0.00 points, 95% CI -0.40 to +0.40 (Newcombe's paired "
        "hybrid score interval); n=1000, b=0, c=0, exact McNemar p=1: passed: the lower bound "
        "-0.40 is within the tolerance of 0.50 points (margin 0.10 points)"
    )
    assert (rule.n, rule.b, rule.c, rule.p) == (1000, 0, 0, 1.0)
    assert decision.passed and decision.verdict == "passed"
    assert decision.baseline_version == 1


def test_a_small_drop_the_test_set_cannot_bound_is_inconclusive_with_what_would_settle_it() -> None:
    decision = _decide(BASELINE_WRONG | _new_errors(3))  # 94.7%: three more errors
    rule = _rule(decision, "accuracy")
    assert rule.verdict == "inconclusive"
    assert rule.reason == (
        "accuracy 94.70% vs 95.00%: -0.30 points, 95% CI -0.84 to +0.20 (Newcombe's paired "
        "hybrid score interval); n=1000, b=0, c=3, exact McNemar p=0.25: inconclusive: the lower "
        "bound -0.84 is below minus the tolerance of 0.50 points, so these 1000 test images "
        "cannot show the candidate is within it; about 1,560 test images at this disagreement "
        "rate (0.30%) could show it"
    )
    assert not decision.passed
    assert decision.verdict == "inconclusive"
    assert decision.summary() == "inconclusive"


def test_a_drop_beyond_the_tolerance_is_rejected_even_when_not_significant() -> None:
    # The demo's case: 296 images, b=2, c=7 (-1.69 points, McNemar p=0.18) used to pass.
    truth = [i % 10 for i in range(296)]
    base_wrong = {0, 1, 2, 3}
    cand_wrong = {2, 3} | {10, 11, 12, 13, 14, 15, 16}
    decision = decide(_metrics(cand_wrong, truth=truth, baseline_wrong=base_wrong), GATE)
    rule = _rule(decision, "accuracy")
    assert rule.verdict == "rejected"
    assert (rule.b, rule.c) == (2, 7)
    assert rule.reason.endswith(
        "exact McNemar p=0.18: rejected: the drop is larger than the tolerance of 0.50 points"
    )


def test_a_significant_drop_within_the_tolerance_is_rejected() -> None:
    worse = BASELINE_WRONG | _new_errors(40)  # 40 new errors, none fixed: 91.0%
    gate = GATE.model_copy(update={"accuracy_tolerance": 0.05, "max_class_drop": 0.2})
    decision = _decide(worse, gate=gate)
    rule = _rule(decision, "accuracy")
    assert rule.verdict == "rejected"
    assert rule.reason.endswith(
        "n=1000, b=0, c=40, exact McNemar p=1.82e-12: rejected: the drop is significant "
        "(p=1.82e-12 < 0.05)"
    )
    assert [r.name for r in decision.failed_rules] == ["accuracy"]


def test_newcombe_interval_holds_the_estimate_and_narrows_with_agreement() -> None:
    low, high = newcombe_interval(Paired(n=50, both=36, b=12, c=2))
    assert low < 0.2 < high
    agreeing = newcombe_interval(Paired(n=1000, both=940, b=6, c=4))
    disagreeing = newcombe_interval(Paired(n=1000, both=900, b=46, c=44))
    assert agreeing[1] - agreeing[0] < (disagreeing[1] - disagreeing[0]) / 2


def test_identical_predictions_give_no_evidence_either_way() -> None:
    predictions = predict(TRUTH, BASELINE_WRONG)
    assert mcnemar(TRUTH, predictions, predictions) == (0, 0, 1.0)


def test_the_demonstrable_tolerance_and_the_images_needed_agree() -> None:
    assert round(demonstrable_tolerance(300, 0.03), 4) == 0.036
    assert round(demonstrable_tolerance(5000, 0.03), 4) == 0.0088
    assert images_needed(0.01, 0.03) == 3899
    assert demonstrable_tolerance(3899, 0.03) <= 0.01 < demonstrable_tolerance(3898, 0.03)
    assert images_needed(0.0) == 0


# ----------------------------------------------------------------------------- per class


def test_one_class_collapsing_is_rejected_though_accuracy_rose() -> None:
    fixed = {i for i in BASELINE_WRONG if TRUTH[i] != 3}  # 45 errors fixed outside class 3
    broken = wrong_in_class(TRUTH, 3, 30, skip=41)  # 30 new errors in class 3
    decision = _decide((BASELINE_WRONG - fixed) | broken)
    assert _rule(decision, "accuracy").verdict == "passed"
    rule = _rule(decision, "class_recall")
    assert rule.verdict == "rejected"
    assert rule.reason == (
        "rejected: 1 class(es) dropped by more than 5.00 points, significantly after Holm's "
        "correction over 10 classes: '3' 95.0% -> 65.0% (-30.0 points, CI -39.4 to -20.8, "
        "n=100, b=0, c=30, Holm p=1.86e-08)"
    )
    dropped = [c for c in rule.classes if c.verdict == "dropped"]
    assert [(c.label, c.support) for c in dropped] == [("3", 100)]
    assert not decision.passed


def test_a_class_drop_that_noise_explains_is_kept() -> None:
    broken = wrong_in_class(TRUTH, 3, 6, skip=41)  # 6 new errors in class 3: -6 points
    gate = GATE.model_copy(update={"accuracy_tolerance": 0.02})
    rule = _rule(_decide(BASELINE_WRONG | broken, gate=gate), "class_recall")
    assert rule.verdict == "passed"
    assert rule.reason == (
        "passed: no class dropped by more than 5.00 points significantly after Holm's correction "
        "over 10 classes (largest change: '3' 95.0% -> 89.0% (-6.0 points, CI -12.4 to -0.8, "
        "n=100, b=0, c=6, Holm p=0.312))"
    )


def test_classes_with_too_few_test_images_are_named_never_judged() -> None:
    truth = balanced_truth(per_class=4)  # 4 images per class: too few to judge any
    wrong = set(range(0, 40, 8))
    decision = decide(_metrics(wrong, truth=truth, baseline_wrong=wrong), GATE)
    rule = _rule(decision, "class_recall")
    assert rule.verdict == "inconclusive"
    assert rule.reason == (
        "inconclusive: no class has the 9 test images needed to judge it; too few to judge "
        "(fewer than 9 test images): '0', '1', '2', '3', '4' and 5 more"
    )
    assert {c.verdict for c in rule.classes} == {"too few to judge"}


def test_the_least_support_is_where_a_total_collapse_becomes_significant() -> None:
    assert min_support(10, 0.05) == 9  # 2 * 0.5**9 = 0.0039 < 0.005 <= 2 * 0.5**8
    assert min_support(1, 0.05) == 6


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# ----------------------------------------------------------------------------- latency


def _latency(samples: list[float]) -> Latency:
    ordered = sorted(samples)
    return {
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[int(len(ordered) * 0.95)],
        "p99": ordered[-1],
        "mean": sum(samples) / len(samples),
        "concurrency": 1,
        "samples_ms": samples,
    }


def _latency_metrics(slowdown: float, noise: float) -> MetricsRecord:
    record = _metrics(BASELINE_WRONG)
    base = [10.0 + noise * ((i * 37) % 11) / 10 for i in range(len(TRUTH))]
    cand = [(10.0 + noise * ((i * 53) % 11) / 10) * slowdown for i in range(len(TRUTH))]
    assert record["baseline"] is not None
    record["baseline"]["latency"] = _latency(base)
    record["candidate"]["latency"] = {**_latency(cand), "model_p50": 4.0, "model_p95": 4.5}
    record["baseline"]["latency"].update({"model_p50": 4.0, "model_p95": 4.4})
    return record


def test_a_model_clearly_slower_than_the_tolerance_is_rejected() -> None:
    rule = _rule(decide(_latency_metrics(1.3, 1.0), GATE), "latency_p95")
    assert rule.verdict == "rejected"
    assert rule.low is not None and rule.low > 1.05
    assert "n=1000 requests each; in-process model time p95 4.50 ms vs 4.40 ms" in rule.reason
    assert rule.reason.endswith("rejected: even the lower bound is above the limit of 1.050")


def test_a_noisy_ratio_whose_interval_reaches_the_limit_passes() -> None:
    # Two latency samples per model: the ratio's interval is as wide as the data.
    noisy = _decide(BASELINE_WRONG, cand_p95=10.4)
    rule = _rule(noisy, "latency_p95")
    assert rule.verdict == "passed"
    assert rule.reason == (
        "p95 10.40 ms vs 10.00 ms: ratio 1.040, 95% CI 1.040 to 1.040 (bootstrap over "
        "measurement rounds); n=2 requests each: passed: the lower bound is within the limit "
        "of 1.050 (margin 0.010)"
    )
    assert _rule(decide(_latency_metrics(1.0, 3.0), GATE), "latency_p95").verdict == "passed"


def test_an_absolute_p95_objective_rejects_only_when_clearly_over() -> None:
    record = _latency_metrics(1.0, 1.0)
    over = decide(record, GATE.model_copy(update={"latency_p95_slo_ms": 8.0}))
    under = decide(record, GATE.model_copy(update={"latency_p95_slo_ms": 50.0}))
    assert _rule(over, "latency_slo").verdict == "rejected"
    assert "rejected: even the lower bound is above the objective of 8.00 ms" in (
        _rule(over, "latency_slo").reason
    )
    assert _rule(under, "latency_slo").verdict == "passed"
    assert [r.name for r in decide(record, GATE).rules] == [
        "accuracy",
        "latency_p95",
        "class_recall",
    ]


# ----------------------------------------------------------------------------- first model


def test_a_first_model_passes_only_above_the_minimum() -> None:
    good = model_result(1, TRUTH, predict(TRUTH, BASELINE_WRONG))
    bad = model_result(1, TRUTH, predict(TRUTH, set(range(0, 1000, 4))))  # 75%
    passed = decide(metrics_record(TRUTH, good, None), GATE)
    rejected = decide(metrics_record(TRUTH, bad, None), GATE)
    assert passed.passed
    assert [r.name for r in passed.rules] == ["min_accuracy"]
    assert passed.baseline_version is None
    assert not rejected.passed
    assert rejected.rules[0].reason == (
        "first model: accuracy 75.00%, 95% CI 72.22% to 77.58% (Wilson score interval); "
        "n=1000: rejected: below the minimum of 80.00%"
    )


# ----------------------------------------------------------------------------- decision


def test_an_override_passes_an_inconclusive_verdict_and_keeps_what_failed() -> None:
    decision = _decide(BASELINE_WRONG | _new_errors(3))
    accepted = decision.accepted_by(
        "alice", "labels of the new images are noisier", "2026-01-01T00:00:00+00:00"
    )
    assert accepted.passed
    assert not accepted.rules_passed
    record = accepted.to_record()
    assert record["override"] == {
        "by": "alice",
        "reason": "labels of the new images are noisier",
        "at": "2026-01-01T00:00:00+00:00",
    }
    assert (record["passed"], record["verdict"]) == (True, "inconclusive")
    assert GateDecision.from_record(record) == accepted
    assert accepted.summary() == (
        "inconclusive, overridden by alice: labels of the new images are noisier"
    )


def test_a_gate_json_of_an_older_version_reads_back() -> None:
    old = {
        "passed": False,
        "rules": [
            {
                "name": "accuracy",
                "passed": False,
                "candidate": 0.9,
                "baseline": 0.95,
                "limit": 0.945,
                "reason": "old text",
            }
        ],
        "baseline_version": 3,
    }
    decision = GateDecision.from_record(old)  # type: ignore[arg-type]
    assert decision.verdict == "rejected"
    assert decision.rules[0].low is None


def test_the_table_prints_every_rule_with_estimate_interval_n_and_margin() -> None:
    decision = _decide(BASELINE_WRONG | _new_errors(1), cand_p95=10.8)
    table = format_table(decision)
    for rule in decision.rules:
        assert rule.reason in table
    lines = table.splitlines()
    assert lines[0].split() == ["rule", "verdict", "estimate", "95%", "CI", "n", "margin"]
    assert lines[2].split() == (
        [
            "accuracy",
            "INCONCLUSIVE",
            "-0.10",
            "pt",
            "-0.55",
            "pt",
            "..",
            "+0.33",
            "pt",
            "1000",
            "-0.05",
            "pt",
        ]
    )
    assert "latency_p95   REJECTED" in table
    assert lines[-1] == "gate: rejected (baseline version 1)"


def test_results_on_different_images_are_refused() -> None:
    baseline = model_result(1, TRUTH, predict(TRUTH, BASELINE_WRONG))
    candidate = model_result(2, TRUTH, predict(TRUTH, BASELINE_WRONG))
    candidate["predictions"] = candidate["predictions"][:-1]
    with pytest.raises(
        UserError, match=r"candidate\.predictions has 999 entries but truth has 1000"
    ):
        decide(metrics_record(TRUTH, candidate, baseline), GATE)
