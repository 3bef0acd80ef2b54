"""The report's comparison with the baseline and the gate's decision."""

from __future__ import annotations

from skillmaker.report import analysis
from skillmaker.report.latex import (
    Tex,
    escape,
    longtable,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    ViewBase,
    _verdict,
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
        """Give the gate's decision with each rule, or a sentence when the gate has not run."""
        gate, provisional = self._gate_record()
        if gate is None:
            return Tex(
                "The gate has not decided on this version yet (no \\texttt{gate.json} when this "
                "report was built); the comparison above shows the figures it will weigh.\n"
            )
        verdict = "passes" if gate["passed"] else "rejects"
        decision = (
            (
                rf"\textbf{{The gate's rules applied to these figures: it {verdict} the "
                r"candidate.} (The gate stage runs after this report and records the decision; "
                r"a human override would be recorded there.)"
            )
            if provisional
            else r"\textbf{The gate passed the candidate.}"
            if gate["passed"]
            else r"\textbf{The gate rejected the candidate.}"
        )
        override = gate.get("override")
        if override:
            details = ", ".join(f"{k}: {v}" for k, v in sorted(override.items()))
            decision += r" \textbf{Overridden by hand} (" + escape(details) + ")."
        rows = [
            [
                escape(rule["name"]),
                number(rule["candidate"], 4),
                number(rule["baseline"], 4),
                number(rule["limit"], 4),
                _verdict(bool(rule["passed"])),
                escape(rule["reason"]),
            ]
            for rule in gate["rules"]
        ]
        table = longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.16\linewidth}rrrc>{\raggedright\arraybackslash}p{0.33\linewidth}@{}",
            ["Rule", "Candidate", "Baseline", "Limit", "Result", "Reason"],
            rows,
        )
        return Tex(f"{decision}\n{table}")
