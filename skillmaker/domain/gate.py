"""The deployment gate: a pure decision from measured results and tolerances, one reason per rule.

Rules, with the candidate and the deployed baseline measured side by side on the same test images:

``accuracy``
    Let ``delta`` = candidate accuracy - baseline accuracy. A drop no larger than the tolerance
    (``delta >= -accuracy_tolerance``) passes. A larger drop is judged on the paired predictions
    with an exact McNemar test: ``b`` = images only the candidate got right, ``c`` = images only the
    baseline got right, ``p`` = two-sided ``binomtest(b, b + c, 0.5)`` (``p = 1`` when
    ``b + c == 0``). The drop fails only when ``p < significance``; otherwise it is within the noise
    of this test set and passes, with the p-value in its reason. So noise alone never fails a model,
    and a model that is clearly worse never passes.
``latency_p95``
    candidate p95 <= baseline p95 x (1 + latency_tolerance).
``class_recall``
    For every class the baseline was tested on: baseline recall - candidate recall <=
    max_class_drop (a class missing from the candidate counts as recall 0). A candidate can fail
    here even when its overall accuracy rose.
``min_accuracy`` (first model only, no baseline deployed)
    candidate accuracy >= min_accuracy. The other rules need a baseline and are not applied.

A human may accept a rejected candidate knowingly: the override, with who and why, is recorded and
the rules keep saying what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from skillmaker.config.model import GateConfig
from skillmaker.domain.records import GateRecord, GateRule, MetricsRecord, ModelResult
from skillmaker.errors import UserError

ACCURACY = "accuracy"
LATENCY = "latency_p95"
CLASS_RECALL = "class_recall"
MIN_ACCURACY = "min_accuracy"

# Differences below this are rounding, not regressions (e.g. 0.947 - 0.952 + 0.005).
_EPSILON = 1e-9


class BadMetricsError(UserError):
    """``metrics.json`` does not hold what the gate needs (paired predictions of equal length)."""


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict with the values it compared and why.

    The one rule type: the gate decides with it, ``gate.json`` stores it (``GateRule`` is its
    record shape, written by ``to_record`` and read by ``from_record``), and the report, the deploy
    commit message and the notifications show it.
    """

    name: str
    passed: bool
    candidate: float | None
    baseline: float | None
    limit: float | None
    reason: str

    def to_record(self) -> GateRule:
        """Give the rule as it is written in ``gate.json``."""
        return {
            "name": self.name,
            "passed": self.passed,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "limit": self.limit,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, record: GateRule) -> RuleResult:
        """Give the rule read back from ``gate.json``."""
        return cls(
            name=str(record["name"]),
            passed=bool(record["passed"]),
            candidate=record.get("candidate"),
            baseline=record.get("baseline"),
            limit=record.get("limit"),
            reason=str(record.get("reason", "")),
        )


@dataclass(frozen=True)
class Override:
    """A human's knowing acceptance of a rejected candidate."""

    by: str
    reason: str
    at: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: every rule's result, the baseline compared with, and any override."""

    rules: tuple[RuleResult, ...]
    baseline_version: int | None
    override: Override | None = None

    @property
    def rules_passed(self) -> bool:
        """Give whether every rule passed on its own."""
        return all(rule.passed for rule in self.rules)

    @property
    def passed(self) -> bool:
        """Give whether the candidate may be deployed (all rules passed, or a human accepted it)."""
        return self.rules_passed or self.override is not None

    @property
    def failed_rules(self) -> tuple[RuleResult, ...]:
        """Give the rules that failed."""
        return tuple(rule for rule in self.rules if not rule.passed)

    def summary(self) -> str:
        """Give the decision in a few words (``passed``, ``rejected`` or ``overridden by ...``)."""
        if self.rules_passed:
            return "passed"
        if self.override is not None:
            return f"overridden by {self.override.by}: {self.override.reason}"
        return "rejected"

    def accepted_by(self, by: str, reason: str, at: str) -> GateDecision:
        """Give the decision with a human override recorded."""
        return replace(self, override=Override(by=by, reason=reason, at=at))

    def to_record(self) -> GateRecord:
        """Give the decision as it is written in ``gate.json``."""
        record: GateRecord = {
            "passed": self.passed,
            "rules": [rule.to_record() for rule in self.rules],
            "baseline_version": self.baseline_version,
            "override": None,
        }
        if self.override is not None:
            record["override"] = {
                "by": self.override.by,
                "reason": self.override.reason,
                "at": self.override.at,
            }
        return record

    @classmethod
    def from_record(cls, record: GateRecord) -> GateDecision:
        """Give the decision read back from ``gate.json``."""
        rules = tuple(RuleResult.from_record(r) for r in record["rules"])
        raw = record.get("override")
        override = (
            Override(by=str(raw["by"]), reason=str(raw["reason"]), at=str(raw.get("at", "")))
            if raw
            else None
        )
        return cls(rules=rules, baseline_version=record.get("baseline_version"), override=override)


def _points(value: float) -> str:
    return f"{value * 100:.2f} points"


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _accuracy(truth: list[int], result: ModelResult, who: str) -> float:
    predictions = result["predictions"]
    if len(predictions) != len(truth):
        raise BadMetricsError(
            f"metrics.json: {who}.predictions has {len(predictions)} entries but truth has "
            f"{len(truth)}; both models must be measured on the same test images"
        )
    return sum(p == t for p, t in zip(predictions, truth, strict=True)) / len(truth)


def mcnemar(truth: list[int], candidate: list[int], baseline: list[int]) -> tuple[int, int, float]:
    """Give ``b`` (only the candidate right), ``c`` (only the baseline right) and exact p."""
    b = sum(cp == t and bp != t for t, cp, bp in zip(truth, candidate, baseline, strict=True))
    c = sum(cp != t and bp == t for t, cp, bp in zip(truth, candidate, baseline, strict=True))
    if b + c == 0:
        return b, c, 1.0
    # scipy.stats takes seconds to import; only this test needs it, not every reader of gate.json.
    from scipy.stats import binomtest

    return b, c, float(binomtest(b, b + c, 0.5).pvalue)


def accuracy_rule(
    truth: list[int], candidate: ModelResult, baseline: ModelResult, gate: GateConfig
) -> RuleResult:
    """Give the paired accuracy rule's verdict (see the module docstring for the rule)."""
    cand = _accuracy(truth, candidate, "candidate")
    base = _accuracy(truth, baseline, "baseline")
    delta = cand - base
    limit = base - gate.accuracy_tolerance
    change = f"accuracy {_pct(cand)} vs {_pct(base)} ({delta * 100:+.2f} points)"
    if delta >= -gate.accuracy_tolerance - _EPSILON:
        reason = f"{change}: within the tolerance of {_points(gate.accuracy_tolerance)}"
        return RuleResult(ACCURACY, True, cand, base, limit, reason)
    b, c, p = mcnemar(truth, candidate["predictions"], baseline["predictions"])
    test = f"exact McNemar b={b}, c={c}, p={p:.4g}"
    if p < gate.significance:
        reason = (
            f"{change}: drop beyond the tolerance of {_points(gate.accuracy_tolerance)} "
            f"and significant ({test} < {gate.significance:g})"
        )
        return RuleResult(ACCURACY, False, cand, base, limit, reason)
    reason = (
        f"{change}: drop beyond the tolerance of {_points(gate.accuracy_tolerance)} "
        f"but not significant ({test} >= {gate.significance:g}), within this test set's noise"
    )
    return RuleResult(ACCURACY, True, cand, base, limit, reason)


def latency_rule(candidate: ModelResult, baseline: ModelResult, gate: GateConfig) -> RuleResult:
    """Give the p95 latency rule's verdict."""
    cand = float(candidate["latency"]["p95"])
    base = float(baseline["latency"]["p95"])
    limit = base * (1.0 + gate.latency_tolerance)
    slower = (cand / base - 1.0) if base > 0 else 0.0
    change = f"p95 {cand:.2f} ms vs {base:.2f} ms ({slower * 100:+.1f}%)"
    tolerance = f"the limit of {limit:.2f} ms ({gate.latency_tolerance * 100:.1f}% slower)"
    if cand <= limit + _EPSILON:
        return RuleResult(LATENCY, True, cand, base, limit, f"{change}: within {tolerance}")
    return RuleResult(LATENCY, False, cand, base, limit, f"{change}: slower than {tolerance}")


def class_recall_rule(
    candidate: ModelResult, baseline: ModelResult, gate: GateConfig
) -> RuleResult:
    """Give the per-class recall rule's verdict (the worst class's values are the rule's values)."""
    cand_recall = {c["label"]: float(c["recall"]) for c in candidate["per_class"]}
    drops: list[tuple[float, str, float, float]] = []
    for item in baseline["per_class"]:
        label = item["label"]
        base = float(item["recall"])
        cand = cand_recall.get(label, 0.0)
        drops.append((base - cand, label, cand, base))
    if not drops:
        return RuleResult(
            CLASS_RECALL, True, None, None, gate.max_class_drop, "baseline has no per-class results"
        )
    drops.sort(key=lambda d: (-d[0], d[1]))
    worst_drop, worst_label, worst_cand, worst_base = drops[0]
    limit = f"the limit of {_points(gate.max_class_drop)}"
    failing = [d for d in drops if d[0] > gate.max_class_drop + _EPSILON]
    if not failing:
        reason = (
            f"no class recall dropped past {limit} (largest change: {worst_label!r} "
            f"{_pct(worst_base)} -> {_pct(worst_cand)}, {-worst_drop * 100:+.2f} points)"
        )
        return RuleResult(CLASS_RECALL, True, worst_cand, worst_base, gate.max_class_drop, reason)
    listed = ", ".join(
        f"{label!r} {_pct(base)} -> {_pct(cand)} ({-drop * 100:+.2f} points)"
        for drop, label, cand, base in failing
    )
    reason = f"recall dropped past {limit} for {len(failing)} class(es): {listed}"
    return RuleResult(CLASS_RECALL, False, worst_cand, worst_base, gate.max_class_drop, reason)


def min_accuracy_rule(truth: list[int], candidate: ModelResult, gate: GateConfig) -> RuleResult:
    """Give the first-model rule's verdict: accuracy at least the configured minimum."""
    cand = _accuracy(truth, candidate, "candidate")
    if cand >= gate.min_accuracy - _EPSILON:
        reason = (
            f"first model: accuracy {_pct(cand)} reaches the minimum of {_pct(gate.min_accuracy)}"
        )
        return RuleResult(MIN_ACCURACY, True, cand, None, gate.min_accuracy, reason)
    reason = f"first model: accuracy {_pct(cand)} is below the minimum of {_pct(gate.min_accuracy)}"
    return RuleResult(MIN_ACCURACY, False, cand, None, gate.min_accuracy, reason)


def decide(metrics: MetricsRecord, gate: GateConfig) -> GateDecision:
    """Give the gate's decision on a candidate, with one result per rule."""
    truth = list(metrics["truth"])
    if not truth:
        raise BadMetricsError("metrics.json: no test images (truth is empty); nothing to judge")
    candidate = metrics["candidate"]
    baseline = metrics.get("baseline")
    if baseline is None:
        return GateDecision(
            rules=(min_accuracy_rule(truth, candidate, gate),), baseline_version=None
        )
    rules = (
        accuracy_rule(truth, candidate, baseline, gate),
        latency_rule(candidate, baseline, gate),
        class_recall_rule(candidate, baseline, gate),
    )
    return GateDecision(rules=rules, baseline_version=int(baseline["skill_version"]))


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == LATENCY:
        return f"{value:.2f} ms"
    return _pct(value)


def format_table(decision: GateDecision) -> str:
    """Give the decision as a plain-text table: one row per rule, then the verdict."""
    header = ("rule", "result", "candidate", "baseline", "limit")
    rows = [
        (
            rule.name,
            "pass" if rule.passed else "FAIL",
            _value(rule.name, rule.candidate),
            _value(rule.name, rule.baseline),
            _value(rule.name, rule.limit)
            if rule.name != CLASS_RECALL
            else _points(rule.limit or 0),
        )
        for rule in decision.rules
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    for row, rule in zip(rows, decision.rules, strict=True):
        out.append(line(row))
        out.append(f"    {rule.reason}")
    baseline = (
        f"baseline version {decision.baseline_version}"
        if decision.baseline_version is not None
        else "no baseline deployed"
    )
    out.append(f"gate: {decision.summary()} ({baseline})")
    return "\n".join(out)
