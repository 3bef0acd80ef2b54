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
