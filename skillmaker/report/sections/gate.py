"""The report's comparison with the baseline and the gate's decision."""

from __future__ import annotations

from skillmaker.domain.gate_text import rule_cells
from skillmaker.domain.paired import (
    ASSUMED_DISAGREEMENT,
    Paired,
    demonstrable_tolerance,
    images_needed,
)
from skillmaker.domain.verdict import VERDICT_WORDS, GateDecision
from skillmaker.report import analysis
from skillmaker.report.latex import (
    Tex,
    escape,
    escape_breakable,
    longtable,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    ViewBase,
)


class GateSection(ViewBase):
    """The candidate against the baseline, and the gate."""

    # ----------------------------------------------------------------- comparison and gate
    def comparison(self) -> Tex:
        """Give the candidate beside the baseline, or a sentence when there is no baseline."""
        cand, base = self.candidate, self.baseline
        if base is None:
            return Tex(
                "No model of this skill was deployed before, "
                "so there is no baseline to compare with; "
                "the gate holds a first model to the minimum accuracy of the config.\n"
            )
        cand_macro = analysis.macro_average(cand["per_class"])
        base_macro = analysis.macro_average(base["per_class"])

        def change(new: float, old: float, digits: int = 3, scale: float = 1.0) -> Tex:
            delta = (float(new) - float(old)) * scale
            return Tex(f"{'+' if delta >= 0 else '$-$'}{abs(delta):.{digits}f}")

        rows = [
            [
                "Accuracy",
                percent(cand["accuracy"]),
                percent(base["accuracy"]),
                Tex(change(cand["accuracy"], base["accuracy"], 1, 100) + r"\,pt"),
            ],
            [
                f"Top-{int(cand['top_k'])} accuracy",
                percent(cand["top_k_accuracy"]),
                percent(base["top_k_accuracy"]),
                Tex(change(cand["top_k_accuracy"], base["top_k_accuracy"], 1, 100) + r"\,pt"),
            ],
            [
                "Macro F1",
                number(cand_macro[2]),
                number(base_macro[2]),
                change(cand_macro[2], base_macro[2]),
            ],
            [
                "Latency p50 (ms)",
                number(cand["latency"]["p50"], 1),
                number(base["latency"]["p50"], 1),
                change(cand["latency"]["p50"], base["latency"]["p50"], 1),
            ],
            [
                "Latency p95 (ms)",
                number(cand["latency"]["p95"], 1),
                number(base["latency"]["p95"], 1),
                change(cand["latency"]["p95"], base["latency"]["p95"], 1),
            ],
        ]
        table = tabular(
            "@{}lrrr@{}",
            [
                "",
                f"Candidate (v{int(cand['skill_version'])})",
                f"Baseline (v{int(base['skill_version'])})",
                "Change",
            ],
            rows,
        )
        # Per class, the report says what the gate's own rule found (one computation, the gate's).
        gate, _ = self._gate_record()
        rule = (
            next((r for r in gate["rules"] if r["name"] == "class_recall"), None) if gate else None
        )
        note = f"Per class, the gate found: {escape(rule['reason'])}.\n" if rule else ""
        return Tex(table + note)

    def gate(self) -> Tex:
        """Give the gate's decision: per rule its verdict, estimate, interval, n and margin."""
        gate, provisional = self._gate_record()
        if gate is None:
            return Tex(
                "The gate has not decided on this version yet (no \\texttt{gate.json} when this "
                "report was built); the comparison above shows the figures it will weigh.\n"
            )
        decision = GateDecision.from_record(gate)
        words = escape(VERDICT_WORDS[decision.verdict])
        intro = (
            (
                rf"\textbf{{The gate's rules applied to these figures: {words}.}} (The gate "
                r"stage runs after this report and records the decision; a human override "
                r"would be recorded there.)"
            )
            if provisional
            else rf"\textbf{{The gate's verdict: {words}.}}"
        )
        if decision.verdict == "inconclusive":
            intro += (
                r" An inconclusive candidate is not deployed: this test set cannot show it is "
                r"within the tolerance (see the reasons below)."
            )
        override = gate.get("override")
        if override:
            details = ", ".join(f"{k}: {v}" for k, v in sorted(override.items()))
            intro += r" \textbf{Overridden by hand} (" + escape(details) + ")."
        rows = []
        for rule in decision.rules:
            name, _, estimate, interval, n, margin = rule_cells(rule)
            counts = f"; b={rule.b}, c={rule.c}, p={rule.p:.3g}" if rule.b is not None else ""
            rows.append(
                [
                    escape(name),
                    _verdict_cell(rule.verdict),
                    escape(estimate),
                    escape(interval),
                    escape(n + counts),
                    escape(margin),
                ]
            )
        table = longtable(
            r"@{}lcrl>{\raggedright\arraybackslash}p{0.2\linewidth}r@{}",
            ["Rule", "Verdict", "Estimate", "95\\,\\% interval", "n", "Margin"],
            rows,
        )
        reasons = "\n".join(
            rf"\item \textbf{{{escape(rule.name)}}}: {escape(rule.reason)}"
            for rule in decision.rules
        )
        methods = sorted({rule.method for rule in decision.rules if rule.method})
        how = (
            "Intervals: "
            + escape("; ".join(f"{r.name}: {r.method}" for r in decision.rules if r.method))
            + ".\n"
            if methods
            else ""
        )
        return Tex(
            f"{intro}\n{table}{how}\\begin{{itemize}}\n{reasons}\n\\end{{itemize}}\n"
            f"{self._class_table(decision)}{self._adequacy()}"
        )

    def _class_table(self, decision: GateDecision) -> Tex:
        rule = next((r for r in decision.rules if r.name == "class_recall"), None)
        if rule is None or not rule.classes:
            return Tex("")
        rows = [
            [
                escape_breakable(c.label),
                number(c.support),
                percent(c.baseline),
                percent(c.candidate),
                escape(f"{c.low * 100:+.1f} .. {c.high * 100:+.1f}"),
                escape(f"{c.b}/{c.c}"),
                escape(f"{c.p_holm:.3g}"),
                escape(c.verdict),
            ]
            for c in rule.classes
        ]
        return Tex(
            "\\paragraph{Per class} Recall on each class's own test images, with the interval of "
            "the change in points and the exact McNemar p-value after Holm's correction:\n"
            + longtable(
                r"@{}>{\raggedright\arraybackslash}p{0.2\linewidth}rrrlrrl@{}",
                ["Class", "n", "Baseline", "Candidate", "Change (pt)", "b/c", "Holm p", "Verdict"],
                rows,
            )
        )

    def _adequacy(self) -> Tex:
        """Give the smallest accuracy tolerance this test set can show, against the config's."""
        base = self.baseline
        n = len(self.inputs.metrics["truth"])
        if n == 0:
            return Tex("")
        if base is not None:
            table = Paired.count(
                self.inputs.metrics["truth"],
                self.candidate["predictions"],
                base["predictions"],
            )
            rate = max(table.disagreement, 1.0 / n)
            basis = f"at the measured disagreement of {rate * 100:.2f}\\,\\% of images"
        else:
            rate = ASSUMED_DISAGREEMENT
            basis = f"assuming two models disagree on {rate * 100:.0f}\\,\\% of images"
        smallest = demonstrable_tolerance(n, rate)
        text = (
            f"\\paragraph{{Test-set adequacy}} With {number(n)} test images, {basis}, the "
            f"smallest accuracy tolerance the gate can show is {smallest * 100:.2f} points"
        )
        if self.config is not None:
            tol = self.config.gate.accuracy_tolerance
            text += f"; the configured tolerance is {tol * 100:.2f} points"
            if tol < smallest:
                text += (
                    f", below it: an equally good candidate is likely to be inconclusive "
                    f"(about {number(images_needed(tol, rate))} test images would show it)"
                )
        return Tex(text + ".\n")


def _verdict_cell(verdict: str) -> Tex:
    if verdict == "passed":
        return Tex(r"\pass{}")
    if verdict == "rejected":
        return Tex(r"\fail{}")
    return Tex(r"\textbf{inconclusive}")
