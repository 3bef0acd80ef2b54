"""The report's first pages: titles, the summary table, versions and stage outcomes."""

from __future__ import annotations

from skillmaker.domain.stages import STAGE_NAMES
from skillmaker.report import analysis
from skillmaker.report.latex import (
    Tex,
    escape,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    ViewBase,
    _hash,
    _tt,
)


class OverviewSection(ViewBase):
    """Titles, summary, versions and stages."""

    @property
    def skill(self) -> Tex:
        """Give the skill's name."""
        return escape(self.inputs.run["skill"])

    @property
    def title(self) -> Tex:
        """Give the skill's human title (its name when the config is not known)."""
        return escape(self.config.title if self.config else self.inputs.run["skill"])

    @property
    def pdf_title(self) -> Tex:
        """Give a plain-ASCII title for the PDF's metadata."""
        return Tex(
            f"Model report {self.inputs.run['skill']} version {self.inputs.run['skill_version']}"
        )

    @property
    def version(self) -> Tex:
        """Give the skill version."""
        return Tex(str(int(self.inputs.run["skill_version"])))

    @property
    def code_version(self) -> Tex:
        """Give the short code version (commit)."""
        return _tt(self.inputs.run["code_version"][:12])

    @property
    def generated(self) -> Tex:
        """Give the generation time (the one part of the report that differs between builds)."""
        return escape(self.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip())

    @property
    def accuracy(self) -> Tex:
        """Give the candidate's overall test accuracy."""
        return percent(self.candidate["accuracy"])

    @property
    def top_k(self) -> Tex:
        """Give k of the top-k accuracy."""
        return Tex(str(int(self.candidate["top_k"])))

    @property
    def top_k_accuracy(self) -> Tex:
        """Give the candidate's top-k accuracy."""
        return percent(self.candidate["top_k_accuracy"])

    @property
    def class_count(self) -> Tex:
        """Give the number of classes the model knows."""
        return number(len(self.labels))

    # ----------------------------------------------------------------- summary
    def summary_table(self) -> Tex:
        """Give the key figures of the run: accuracy, latency, baseline and gate."""
        cand, base = self.candidate, self.baseline

        rows: list[list[str]] = [
            [
                "Test accuracy",
                percent(cand["accuracy"]),
                percent(base["accuracy"]) if base else Tex("---"),
            ],
            [
                Tex(f"Top-{int(cand['top_k'])} accuracy"),
                percent(cand["top_k_accuracy"]),
                percent(base["top_k_accuracy"]) if base else Tex("---"),
            ],
            [
                Tex("Latency p95 (ms)"),
                number(cand["latency"]["p95"], 1),
                number(base["latency"]["p95"], 1) if base else Tex("---"),
            ],
        ]
        gate, provisional = self._gate_record()
        decision = (
            Tex(r"not decided yet")
            if gate is None
            else Tex(
                r"\textbf{"
                + (gate.get("verdict") or ("passed" if gate["passed"] else "rejected"))
                + (", overridden by hand" if gate.get("override") else "")
                + "}"
            )
        )
        if provisional:
            decision = Tex(f"{decision} by its rules (the gate stage records it after this report)")
        body = tabular("lrr", ["", "Candidate", "Baseline"], rows)
        baseline = (
            Tex(f"version {int(base['skill_version'])}") if base else Tex("none (first model)")
        )
        return Tex(
            f"{body}\\noindent Baseline: {baseline}. Gate: {decision}. "
            f"Test images: {self.test_images}; classes: {self.class_count}.\n"
        )

    def warnings(self) -> Tex:
        """Give the run's warnings as a list, or nothing."""
        items = self.inputs.run["warnings"]
        if not items:
            return Tex("")
        lines = "\n".join(rf"\item {escape(w)}" for w in items)
        return Tex(
            f"\\paragraph{{Warnings of this run}}\n\\begin{{itemize}}\n{lines}\n\\end{{itemize}}\n"
        )

    # ----------------------------------------------------------------- versions
    def versions_table(self) -> Tex:
        """Give every version and hash needed to reproduce the model."""
        run, audit, train = self.inputs.run, self.inputs.audit, self.inputs.train
        base = self.baseline
        gate = self.inputs.gate
        if base is not None:
            baseline = Tex(f"{int(base['skill_version'])} (code {_tt(base['code_version'][:12])})")
        elif gate is not None and gate["baseline_version"] is not None:
            baseline = Tex(str(int(gate["baseline_version"])))
        else:
            baseline = Tex("none (no model deployed before)")
        rows: list[list[str]] = [["Skill", _tt(run["skill"])]]
        if self.config is not None:
            rows += [
                ["Title", escape(self.config.title)],
                ["Ticket", escape(self.config.ticket)],
                ["Owner", escape(self.config.owner)],
            ]
        manifest = run["manifest_hash"] or audit["manifest_hash"]
        rows += [
            ["Skill version", self.version],
            ["Code version", _hash(run["code_version"])],
            ["skillmaker version", _tt(run["skillmaker_version"])],
            ["Config hash", _hash(run["config_hash"])],
            ["Data manifest hash", _hash(manifest)],
            ["Split ledger hash", _hash(audit["ledger_hash"])],
            ["Model hash", _hash(self.candidate["model_hash"])],
            ["Baseline version", baseline],
            ["Report generated", self.generated],
        ]
        mismatch = []
        if train["config_hash"] != run["config_hash"]:
            mismatch.append("config hash")
        if train["manifest_hash"] != audit["manifest_hash"]:
            mismatch.append("data manifest hash")
        if train["ledger_hash"] != audit["ledger_hash"]:
            mismatch.append("split ledger hash")
        note = ""
        if mismatch:
            note = (
                r"\noindent\textbf{Warning:} the model was trained with a different "
                + escape(", ".join(mismatch))
                + r" than this run records (see \texttt{train.json}).\par"
                + "\n"
            )
        return Tex(
            tabular(
                r"@{}l>{\raggedright\arraybackslash}p{0.68\linewidth}@{}", ["Item", "Value"], rows
            )
            + note
        )

    def stages_table(self) -> Tex:
        """Give each pipeline stage's outcome so far."""
        stages = self.inputs.run["stages"]
        if not stages:
            return Tex("No stage outcome was recorded yet.\n")
        # Records keep keys sorted; show stages in pipeline order, unknown names last.
        order = {name: index for index, name in enumerate(STAGE_NAMES)}
        names = sorted(stages, key=lambda name: (order.get(name, len(order)), name))
        rows = [
            [
                escape(name),
                escape(stages[name]["outcome"]),
                Tex(analysis.duration(stages[name]["seconds"])),
                escape(stages[name]["message"]) if stages[name]["message"] else Tex("---"),
            ]
            for name in names
        ]
        return tabular(
            r"@{}llr>{\raggedright\arraybackslash}p{0.5\linewidth}@{}",
            ["Stage", "Outcome", "Time", "Message"],
            rows,
        )
