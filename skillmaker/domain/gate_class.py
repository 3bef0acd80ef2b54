"""The gate's per-class recall rule: each class on its own test images, Holm-corrected.

Per class, the paired 2x2 table of the class's test images gives the recall change, its 95%
Newcombe interval and an exact McNemar p-value. The p-values of the classes judged are adjusted
with Holm's step-down method, so two equally good models are rejected at most ``significance`` of
the time however many classes there are. A class is ``dropped`` when its recall fell by more than
``max_class_drop`` and its adjusted p is below ``significance``. A class whose support is so small
that losing every one of its images could not be significant after the correction is ``too few to
judge``: listed as such, neither passed nor failed.
"""

from __future__ import annotations

import math

from skillmaker.config.model import GateConfig
from skillmaker.domain.paired import Paired, holm, mcnemar_p, newcombe_interval
from skillmaker.domain.verdict import ClassJudgement, ClassVerdict, RuleResult, Verdict

CLASS_RECALL = "class_recall"
METHOD = "per class: Newcombe interval, exact McNemar, Holm-adjusted"
MAX_LISTED = 5


def min_support(classes: int, significance: float) -> int:
    """Give the fewest test images of a class for a total collapse to be Holm-significant.

    A collapse of ``k`` images has exact McNemar p = 2 * 0.5**k; Holm's strictest step compares
    it with ``significance / classes``.
    """
    return max(1, math.ceil(math.log2(2 * max(classes, 1) / significance) + 1e-12))


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _class_text(item: ClassJudgement) -> str:
    return (
        f"{item.label!r} {_pct(item.baseline)} -> {_pct(item.candidate)} "
        f"({item.delta * 100:+.1f} points, CI {item.low * 100:+.1f} to {item.high * 100:+.1f}, "
        f"n={item.support}, b={item.b}, c={item.c}, Holm p={item.p_holm:.3g})"
    )


def class_recall_rule(
    truth: list[int],
    candidate: list[int],
    baseline: list[int],
    labels: list[str],
    gate: GateConfig,
) -> RuleResult:
    """Give the per-class recall rule's verdict (see the module docstring)."""
    tables: list[tuple[int, Paired]] = []
    for index in range(len(labels)):
        rows = [i for i, t in enumerate(truth) if t == index]
        if rows:
            table = Paired.count(
                [truth[i] for i in rows], [candidate[i] for i in rows], [baseline[i] for i in rows]
            )
            tables.append((index, table))
    least = min_support(len(tables), gate.significance)
    judged = [(i, t) for i, t in tables if t.n >= least]
    adjusted = holm([mcnemar_p(t.b, t.c) for _, t in judged])
    holm_of = {i: p for (i, _), p in zip(judged, adjusted, strict=True)}
    classes: list[ClassJudgement] = []
    for index, table in tables:
        low, high = newcombe_interval(table)
        p_holm = holm_of.get(index, 1.0)
        verdict: ClassVerdict = "kept"
        if index not in holm_of:
            verdict = "too few to judge"
        elif table.delta < -gate.max_class_drop and p_holm < gate.significance:
            verdict = "dropped"
        classes.append(
            ClassJudgement(
                label=labels[index],
                support=table.n,
                candidate=(table.both + table.b) / table.n,
                baseline=(table.both + table.c) / table.n,
                low=low,
                high=high,
                b=table.b,
                c=table.c,
                p=mcnemar_p(table.b, table.c),
                p_holm=p_holm,
                verdict=verdict,
            )
        )
    dropped = [c for c in classes if c.verdict == "dropped"]
    few = [c for c in classes if c.verdict == "too few to judge"]
    kept = [c for c in classes if c.verdict == "kept"]
    worst = min(classes, key=lambda c: (c.delta, c.label), default=None)
    rule_verdict: Verdict
    if dropped:
        rule_verdict = "rejected"
        listed = "; ".join(_class_text(c) for c in dropped)
        words = (
            f"rejected: {len(dropped)} class(es) dropped by more than "
            f"{gate.max_class_drop * 100:.2f} points, significantly after Holm's correction "
            f"over {len(judged)} classes: {listed}"
        )
    elif kept:
        rule_verdict = "passed"
        words = (
            f"passed: no class dropped by more than {gate.max_class_drop * 100:.2f} points "
            f"significantly after Holm's correction over {len(judged)} classes"
            + (f" (largest change: {_class_text(worst)})" if worst is not None else "")
        )
    else:
        rule_verdict = "inconclusive"
        words = f"inconclusive: no class has the {least} test images needed to judge it"
    if few:
        names = ", ".join(repr(c.label) for c in few[:MAX_LISTED])
        more = f" and {len(few) - MAX_LISTED} more" if len(few) > MAX_LISTED else ""
        words += f"; too few to judge (fewer than {least} test images): {names}{more}"
    focus = dropped[0] if dropped else worst
    margin = None
    if focus is not None and focus.verdict != "too few to judge":
        margin = focus.delta + gate.max_class_drop
    return RuleResult(
        CLASS_RECALL,
        rule_verdict,
        focus.candidate if focus else None,
        focus.baseline if focus else None,
        gate.max_class_drop,
        words,
        estimate=focus.delta if focus else None,
        low=focus.low if focus else None,
        high=focus.high if focus else None,
        n=len(truth),
        p=focus.p_holm if focus else None,
        margin=margin,
        method=METHOD,
        classes=tuple(classes),
    )
