"""The gate's verdict as data: one ``RuleResult`` per rule, and the ``GateDecision`` over them.

``RuleResult`` is the one rule type: the gate decides with it, ``gate.json`` stores it (``GateRule``
is its record shape, written by ``to_record`` and read by ``from_record``), and the report, the
deploy commit message and the notifications show it. The rules themselves are in ``domain.gate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, cast

from skillmaker.domain.records import ClassJudgementRecord, GateRecord, GateRule

Verdict = Literal["passed", "rejected", "inconclusive"]
ClassVerdict = Literal["kept", "dropped", "too few to judge"]

VERDICT_WORDS: dict[str, str] = {
    "passed": "passed",
    "rejected": "rejected",
    "inconclusive": "inconclusive (not shown to be within the tolerance)",
}


@dataclass(frozen=True)
class ClassJudgement:
    """One class under the per-class recall rule: support, recalls, interval, Holm-adjusted p."""

    label: str
    support: int
    candidate: float
    baseline: float
    low: float
    high: float
    b: int
    c: int
    p: float
    p_holm: float
    verdict: ClassVerdict

    @property
    def delta(self) -> float:
        """Give candidate minus baseline recall."""
        return self.candidate - self.baseline

    def to_record(self) -> ClassJudgementRecord:
        """Give the class as it is written in ``gate.json`` (its fields, one to one)."""
        return cast(ClassJudgementRecord, asdict(self))

    @classmethod
    def from_record(cls, record: ClassJudgementRecord) -> ClassJudgement:
        """Give the class read back from ``gate.json``."""
        return cls(
            label=record["label"],
            support=record["support"],
            candidate=record["candidate"],
            baseline=record["baseline"],
            low=record["low"],
            high=record["high"],
            b=record["b"],
            c=record["c"],
            p=record["p"],
            p_holm=record["p_holm"],
            verdict=cast(ClassVerdict, record["verdict"]),
        )


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: the estimate, its interval, n, the margin to the limit, and why.

    ``margin`` is how far the deciding figure lies from the limit on the passing side (negative:
    on the failing side), in the rule's unit. ``candidate``, ``baseline`` and ``limit`` are the
    compared values as older ``gate.json`` files hold them.
    """

    name: str
    verdict: Verdict
    candidate: float | None
    baseline: float | None
    limit: float | None
    reason: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    b: int | None = None
    c: int | None = None
    p: float | None = None
    margin: float | None = None
    method: str | None = None
    classes: tuple[ClassJudgement, ...] = ()

    @property
    def passed(self) -> bool:
        """Give whether the rule passed."""
        return self.verdict == "passed"

    def to_record(self) -> GateRule:
        """Give the rule as it is written in ``gate.json`` (``passed`` kept for older readers)."""
        record: GateRule = {
            "name": self.name,
            "passed": self.passed,
            "verdict": self.verdict,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "limit": self.limit,
            "reason": self.reason,
        }
        for key in ("estimate", "low", "high", "n", "b", "c", "p", "margin", "method"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.classes:
            record["classes"] = [c.to_record() for c in self.classes]
        return record

    @classmethod
    def from_record(cls, record: GateRule) -> RuleResult:
        """Give the rule read back from ``gate.json`` (older files have no verdict: from passed)."""
        verdict = record.get("verdict") or ("passed" if record["passed"] else "rejected")
        return cls(
            name=str(record["name"]),
            verdict=cast(Verdict, verdict),
            candidate=record.get("candidate"),
            baseline=record.get("baseline"),
            limit=record.get("limit"),
            reason=str(record.get("reason", "")),
            estimate=record.get("estimate"),
            low=record.get("low"),
            high=record.get("high"),
            n=record.get("n"),
            b=record.get("b"),
            c=record.get("c"),
            p=record.get("p"),
            margin=record.get("margin"),
            method=record.get("method"),
            classes=tuple(ClassJudgement.from_record(c) for c in record.get("classes", [])),
        )


@dataclass(frozen=True)
class Override:
    """A human's knowing acceptance of a rejected or inconclusive candidate."""

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
    def verdict(self) -> Verdict:
        """Give the rules' verdict: rejected if any rule rejects, else inconclusive if any is."""
        verdicts = {rule.verdict for rule in self.rules}
        if "rejected" in verdicts:
            return "rejected"
        if "inconclusive" in verdicts:
            return "inconclusive"
        return "passed"

    @property
    def rules_passed(self) -> bool:
        """Give whether every rule passed on its own."""
        return self.verdict == "passed"

    @property
    def passed(self) -> bool:
        """Give whether the candidate may be deployed (all rules passed, or a human accepted it)."""
        return self.rules_passed or self.override is not None

    @property
    def failed_rules(self) -> tuple[RuleResult, ...]:
        """Give the rules that did not pass (rejected or inconclusive)."""
        return tuple(rule for rule in self.rules if not rule.passed)

    def summary(self) -> str:
        """Give the decision in a few words (``passed``, ``rejected``, ``inconclusive``, override)."""
        if self.rules_passed:
            return "passed"
        if self.override is not None:
            return f"{self.verdict}, overridden by {self.override.by}: {self.override.reason}"
        return self.verdict

    def accepted_by(self, by: str, reason: str, at: str) -> GateDecision:
        """Give the decision with a human override recorded."""
        return replace(self, override=Override(by=by, reason=reason, at=at))

    def to_record(self) -> GateRecord:
        """Give the decision as it is written in ``gate.json``."""
        record: GateRecord = {
            "passed": self.passed,
            "verdict": self.verdict,
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
