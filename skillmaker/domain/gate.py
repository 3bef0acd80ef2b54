"""The deployment gate: a pure decision from measured results and tolerances, one reason per rule.

Every rule compares the candidate with the deployed baseline measured side by side on the same
test images, gives its estimate with a 95% interval, and one of three verdicts: ``passed``,
``rejected`` or ``inconclusive`` (not deployed, exit 3, with what would settle it).

``accuracy`` (burden of proof on the candidate)
    ``delta`` = candidate - baseline accuracy on the paired predictions, with the 95% interval of
    Newcombe's hybrid score interval for paired proportions (``domain.paired``). Rejected when
    ``delta < -accuracy_tolerance`` or the drop is significant (exact McNemar,
    ``binomtest(b, b + c, 0.5)`` with ``b`` = images only the candidate got right, ``c`` = only the
    baseline; ``p < significance`` and ``c > b``). Passed only when the interval's lower bound is at
    or above ``-accuracy_tolerance``. Anything else is inconclusive: the test set is too small to
    show the candidate is within the tolerance; the reason gives the test-set size that could.
``class_recall``
    Per class, on that class's test images: the paired recall change with its Newcombe interval
    and an exact McNemar p-value, Holm-adjusted over the classes judged. A class is ``dropped``
    when its recall fell by more than ``max_class_drop`` and the adjusted p is below
    ``significance``; the rule then rejects. A class with too few test images for even a total
    collapse to be significant after the correction is ``too few to judge`` and named in the
    reason; when no class can be judged the rule is inconclusive.
``latency_p95``
    The candidate/baseline p95 ratio with a 95% bootstrap interval over measurement rounds (both
    models measured in alternating rounds). Rejected only when the lower bound is above
    ``1 + latency_tolerance``: noise never fails a model.
``latency_slo`` (when ``latency_p95_slo_ms`` is set)
    Rejected only when the lower bound of the candidate's p95 interval is above the objective.
``min_accuracy`` (first model only, no baseline deployed)
    candidate accuracy >= min_accuracy, with its Wilson interval shown.

A human may accept a rejected or inconclusive candidate knowingly: the override, with who and
why, is recorded and the rules keep saying what failed.
"""

from __future__ import annotations

from skillmaker.config.model import GateConfig
from skillmaker.domain.gate_class import class_recall_rule
from skillmaker.domain.gate_text import format_table
from skillmaker.domain.paired import (
    Paired,
    images_needed,
    mcnemar_p,
    newcombe_interval,
    p95_interval,
    p95_ratio_interval,
    wilson,
)
from skillmaker.domain.records import MetricsRecord, ModelResult
from skillmaker.domain.verdict import GateDecision, Override, RuleResult, Verdict
from skillmaker.errors import UserError

__all__ = [
    "ACCURACY",
    "CLASS_RECALL",
    "LATENCY",
    "LATENCY_SLO",
    "MIN_ACCURACY",
    "NEWCOMBE",
    "BadMetricsError",
    "GateDecision",
    "Override",
    "RuleResult",
    "accuracy_rule",
    "class_recall_rule",
    "decide",
    "format_table",
    "latency_rule",
    "min_accuracy_rule",
]

ACCURACY = "accuracy"
LATENCY = "latency_p95"
LATENCY_SLO = "latency_slo"
CLASS_RECALL = "class_recall"
MIN_ACCURACY = "min_accuracy"

NEWCOMBE = "Newcombe's paired hybrid score interval"
BOOTSTRAP_ROUNDS = "bootstrap over measurement rounds"

# Differences below this are rounding, not regressions (e.g. 0.947 - 0.952 + 0.005).
_EPSILON = 1e-9


class BadMetricsError(UserError):
    """``metrics.json`` does not hold what the gate needs (paired predictions of equal length)."""


def _points(value: float) -> str:
    return f"{value * 100:.2f} points"


def _signed(value: float) -> str:
    return f"{value * 100:+.2f}"


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _predictions(truth: list[int], result: ModelResult, who: str) -> list[int]:
    predictions = list(result["predictions"])
    if len(predictions) != len(truth):
        raise BadMetricsError(
            f"metrics.json: {who}.predictions has {len(predictions)} entries but truth has "
            f"{len(truth)}; both models must be measured on the same test images"
        )
    return predictions


def accuracy_rule(
    truth: list[int], candidate: ModelResult, baseline: ModelResult, gate: GateConfig
) -> RuleResult:
    """Give the paired accuracy rule's verdict (see the module docstring for the rule)."""
    cand_p = _predictions(truth, candidate, "candidate")
    base_p = _predictions(truth, baseline, "baseline")
    table = Paired.count(truth, cand_p, base_p)
    n, b, c = table.n, table.b, table.c
    cand = (table.both + b) / n
    base = (table.both + c) / n
    delta = table.delta
    low, high = newcombe_interval(table)
    p = mcnemar_p(b, c)
    tol = gate.accuracy_tolerance
    margin = low + tol
    figures = (
        f"accuracy {_pct(cand)} vs {_pct(base)}: {_signed(delta)} points, 95% CI "
        f"{_signed(low)} to {_signed(high)} ({NEWCOMBE}); n={n}, b={b}, c={c}, "
        f"exact McNemar p={p:.3g}"
    )
    verdict: Verdict
    if delta < -tol - _EPSILON:
        verdict = "rejected"
        words = f"rejected: the drop is larger than the tolerance of {_points(tol)}"
    elif c > b and p < gate.significance:
        verdict = "rejected"
        words = f"rejected: the drop is significant (p={p:.3g} < {gate.significance:g})"
    elif margin >= -_EPSILON:
        verdict = "passed"
        words = (
            f"passed: the lower bound {_signed(low)} is within the tolerance of "
            f"{_points(tol)} (margin {_points(margin)})"
        )
    else:
        verdict = "inconclusive"
        rate = max(table.disagreement, 1.0 / n)  # at least one image tells the models apart
        needed = images_needed(tol, rate)
        settle = (
            f"about {needed:,} test images at this disagreement rate ({_pct(rate)}) could show it"
            if needed
            else "a tolerance above 0 is needed to show it"
        )
        words = (
            f"inconclusive: the lower bound {_signed(low)} is below minus the tolerance of "
            f"{_points(tol)}, so these {n} test images cannot show the candidate is within it; "
            f"{settle}"
        )
    return RuleResult(
        ACCURACY,
        verdict,
        cand,
        base,
        base - tol,
        f"{figures}: {words}",
        estimate=delta,
        low=low,
        high=high,
        n=n,
        b=b,
        c=c,
        p=p,
        margin=margin,
        method=NEWCOMBE,
    )


def _model_time(candidate: ModelResult, baseline: ModelResult) -> str:
    cand, base = candidate["latency"].get("model_p95"), baseline["latency"].get("model_p95")
    if cand is None or base is None:
        return ""
    return f"; in-process model time p95 {cand:.2f} ms vs {base:.2f} ms"


def latency_rule(candidate: ModelResult, baseline: ModelResult, gate: GateConfig) -> RuleResult:
    """Give the p95 latency rule's verdict: the ratio's interval against ``1 + tolerance``."""
    cand_s = candidate["latency"]["samples_ms"]
    base_s = baseline["latency"]["samples_ms"]
    limit = 1.0 + gate.latency_tolerance
    cand_p95 = float(candidate["latency"]["p95"])
    base_p95 = float(baseline["latency"]["p95"])
    if not cand_s or len(cand_s) != len(base_s) or min(base_s) <= 0:
        reason = (
            f"p95 {cand_p95:.2f} ms vs {base_p95:.2f} ms: inconclusive: the two models' latency "
            f"samples are missing or unpaired ({len(cand_s)} vs {len(base_s)})"
        )
        return RuleResult(LATENCY, "inconclusive", cand_p95, base_p95, limit, reason)
    ratio, low, high = p95_ratio_interval(cand_s, base_s)
    margin = limit - low
    figures = (
        f"p95 {cand_p95:.2f} ms vs {base_p95:.2f} ms: ratio {ratio:.3f}, 95% CI {low:.3f} to "
        f"{high:.3f} ({BOOTSTRAP_ROUNDS}); n={len(cand_s)} requests each"
        f"{_model_time(candidate, baseline)}"
    )
    if margin < -_EPSILON:
        words = f"rejected: even the lower bound is above the limit of {limit:.3f}"
        verdict: Verdict = "rejected"
    else:
        words = f"passed: the lower bound is within the limit of {limit:.3f} (margin {margin:.3f})"
        verdict = "passed"
    return RuleResult(
        LATENCY,
        verdict,
        cand_p95,
        base_p95,
        limit,
        f"{figures}: {words}",
        estimate=ratio,
        low=low,
        high=high,
        n=len(cand_s),
        margin=margin,
        method=BOOTSTRAP_ROUNDS,
    )


def latency_slo_rule(candidate: ModelResult, slo_ms: float) -> RuleResult:
    """Give the absolute p95 objective's verdict: the candidate's p95 interval against it."""
    samples = candidate["latency"]["samples_ms"]
    if not samples:
        reason = f"p95 objective {slo_ms:.2f} ms: inconclusive: no latency samples"
        return RuleResult(LATENCY_SLO, "inconclusive", None, None, slo_ms, reason)
    p95, low, high = p95_interval(samples)
    margin = slo_ms - low
    figures = (
        f"p95 {p95:.2f} ms, 95% CI {low:.2f} to {high:.2f} ms ({BOOTSTRAP_ROUNDS}); "
        f"n={len(samples)} requests"
    )
    verdict: Verdict = "rejected" if margin < -_EPSILON else "passed"
    words = (
        f"rejected: even the lower bound is above the objective of {slo_ms:.2f} ms"
        if verdict == "rejected"
        else f"passed: the lower bound is within the objective of {slo_ms:.2f} ms "
        f"(margin {margin:.2f} ms)"
    )
    return RuleResult(
        LATENCY_SLO,
        verdict,
        p95,
        None,
        slo_ms,
        f"{figures}: {words}",
        estimate=p95,
        low=low,
        high=high,
        n=len(samples),
        margin=margin,
        method=BOOTSTRAP_ROUNDS,
    )


def min_accuracy_rule(truth: list[int], candidate: ModelResult, gate: GateConfig) -> RuleResult:
    """Give the first-model rule's verdict: accuracy at least the configured minimum."""
    predictions = _predictions(truth, candidate, "candidate")
    right = sum(p == t for p, t in zip(predictions, truth, strict=True))
    n = len(truth)
    cand = right / n
    low, high = wilson(right, n)
    figures = (
        f"first model: accuracy {_pct(cand)}, 95% CI {_pct(low)} to {_pct(high)} "
        f"(Wilson score interval); n={n}"
    )
    margin = cand - gate.min_accuracy
    verdict: Verdict = "passed" if margin >= -_EPSILON else "rejected"
    words = (
        f"passed: reaches the minimum of {_pct(gate.min_accuracy)}"
        if verdict == "passed"
        else f"rejected: below the minimum of {_pct(gate.min_accuracy)}"
    )
    return RuleResult(
        MIN_ACCURACY,
        verdict,
        cand,
        None,
        gate.min_accuracy,
        f"{figures}: {words}",
        estimate=cand,
        low=low,
        high=high,
        n=n,
        margin=margin,
        method="Wilson score interval",
    )


def decide(metrics: MetricsRecord, gate: GateConfig) -> GateDecision:
    """Give the gate's decision on a candidate, with one result per rule."""
    truth = list(metrics["truth"])
    if not truth:
        raise BadMetricsError("metrics.json: no test images (truth is empty); nothing to judge")
    candidate = metrics["candidate"]
    baseline = metrics.get("baseline")
    if baseline is None:
        rules = [min_accuracy_rule(truth, candidate, gate)]
        if gate.latency_p95_slo_ms is not None:
            rules.append(latency_slo_rule(candidate, gate.latency_p95_slo_ms))
        return GateDecision(rules=tuple(rules), baseline_version=None)
    rules = [
        accuracy_rule(truth, candidate, baseline, gate),
        latency_rule(candidate, baseline, gate),
        class_recall_rule(
            truth,
            _predictions(truth, candidate, "candidate"),
            _predictions(truth, baseline, "baseline"),
            list(metrics["labels"]),
            gate,
        ),
    ]
    if gate.latency_p95_slo_ms is not None:
        rules.append(latency_slo_rule(candidate, gate.latency_p95_slo_ms))
    return GateDecision(rules=tuple(rules), baseline_version=int(baseline["skill_version"]))


def mcnemar(truth: list[int], candidate: list[int], baseline: list[int]) -> tuple[int, int, float]:
    """Give ``b`` (only the candidate right), ``c`` (only the baseline right) and exact p."""
    table = Paired.count(truth, candidate, baseline)
    return table.b, table.c, mcnemar_p(table.b, table.c)
