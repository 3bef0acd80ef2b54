"""The gate's decision in words: the plain-text table printed by ``skillmaker gate``, and one
rule's figures as a short line for the notifications. Pure functions, no I/O."""

from __future__ import annotations

from skillmaker.domain.verdict import VERDICT_WORDS, GateDecision, RuleResult

_POINTS = {"accuracy", "class_recall"}
_RATIO = {"latency_p95"}
_MS = {"latency_slo"}


def _value(rule: RuleResult, value: float | None) -> str:
    if value is None:
        return "-"
    if rule.name in _POINTS:
        return f"{value * 100:+.2f} pt"
    if rule.name in _RATIO:
        return f"{value:.3f}x"
    if rule.name in _MS:
        return f"{value:.2f} ms"
    return f"{value * 100:.2f}%"


def _margin(rule: RuleResult) -> str:
    if rule.margin is None:
        return "-"
    if rule.name in _POINTS or rule.name == "min_accuracy":
        return f"{rule.margin * 100:+.2f} pt"
    if rule.name in _MS:
        return f"{rule.margin:+.2f} ms"
    return f"{rule.margin:+.3f}"


def rule_cells(rule: RuleResult) -> tuple[str, str, str, str, str, str]:
    """Give one rule's cells: name, verdict, estimate, 95% interval, n and margin, as text."""
    interval = (
        f"{_value(rule, rule.low)} .. {_value(rule, rule.high)}"
        if rule.low is not None and rule.high is not None
        else "-"
    )
    return (
        rule.name,
        rule.verdict.upper() if rule.verdict != "passed" else "passed",
        _value(rule, rule.estimate),
        interval,
        str(rule.n) if rule.n is not None else "-",
        _margin(rule),
    )


def rule_line(rule: RuleResult) -> str:
    """Give one rule in a line: ``accuracy: inconclusive; +0.30 pt (95% CI ...), n=300, ...``."""
    name, verdict, estimate, interval, n, margin = rule_cells(rule)
    counts = f", b={rule.b}, c={rule.c}, p={rule.p:.3g}" if rule.b is not None else ""
    return (
        f"{name}: {verdict.lower()}; estimate {estimate} (95% CI {interval}), n={n}{counts}, "
        f"margin {margin}"
    )


def verdict_words(decision: GateDecision) -> str:
    """Give the decision's verdict in words, an override included."""
    words = VERDICT_WORDS[decision.verdict]
    if decision.override is not None and not decision.rules_passed:
        return f"{words}; overridden by {decision.override.by}: {decision.override.reason}"
    return words


def format_table(decision: GateDecision) -> str:
    """Give the decision as a plain-text table: one row per rule with its reason, then the verdict."""
    header = ("rule", "verdict", "estimate", "95% CI", "n", "margin")
    rows = [rule_cells(rule) for rule in decision.rules]
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


def adequacy_lines(
    test_images: int,
    tolerance: float,
    class_support: dict[str, int] | None = None,
    significance: float = 0.05,
    *,
    estimated: bool = False,
) -> list[str]:
    """Give what a test split of ``test_images`` can show, and warnings when it falls short.

    The smallest accuracy tolerance assumes two equally good models disagree on
    ``ASSUMED_DISAGREEMENT`` of the images (the gate's report uses the measured share later).
    Classes with fewer test images than a per-class judgement needs are named.
    """
    from skillmaker.domain.gate_class import min_support
    from skillmaker.domain.paired import (
        ASSUMED_DISAGREEMENT,
        demonstrable_tolerance,
        images_needed,
    )

    about = "about " if estimated else ""
    smallest = demonstrable_tolerance(test_images, ASSUMED_DISAGREEMENT)
    lines = [
        f"gate: {about}{test_images} test images can show an accuracy tolerance of "
        f"{smallest * 100:.2f} points or more (if two equally good models disagree on "
        f"{ASSUMED_DISAGREEMENT * 100:.0f}% of images)"
    ]
    if tolerance < smallest:
        needed = images_needed(tolerance, ASSUMED_DISAGREEMENT)
        wanted = f"about {needed:,} test images" if needed else "a tolerance above 0"
        lines.append(
            f"WARNING gate.accuracy_tolerance {tolerance * 100:.2f} points is below what this "
            f"test split can show: an equally good candidate is likely to be inconclusive "
            f"(needs {wanted})"
        )
    if class_support:
        least = min_support(len(class_support), significance)
        few = sorted(name for name, count in class_support.items() if count < least)
        if few:
            shown = ", ".join(few[:5]) + (f" and {len(few) - 5} more" if len(few) > 5 else "")
            lines.append(
                f"WARNING {len(few)} class(es) have fewer than {least} test images, too few for "
                f"the per-class rule to judge: {shown}"
            )
    return lines
