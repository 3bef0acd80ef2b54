"""What every report section reads: the run's records, the config, where figures go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from skillmaker.config import SkillConfig
from skillmaker.records import GateRecord, ModelResult
from skillmaker.report.inputs import ReportInputs
from skillmaker.report.latex import Tex, escape, escape_breakable, number

FIGURES = "figures"
# Above this many classes the heat map shows the most confused classes only.
FULL_MATRIX_LIMIT = 30
MOST_CONFUSED = 25
CONFUSED_PAIRS = 20
MAX_FAILURES = 40
MAX_LISTED = 30


def _tt(text: object) -> Tex:
    return Tex(rf"\texttt{{{escape_breakable(text)}}}")


def _hash(text: object) -> Tex:
    # 64 hex digits fit the value column in footnote-size type without breaking.
    return Tex(rf"{{\footnotesize\texttt{{{escape(text)}}}}}")


def _yes_no(value: bool) -> Tex:
    return Tex("yes" if value else "no")


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        items: list[tuple[str, str]] = []
        for key, inner in value.items():
            items.extend(_flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return items
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value) if value else "none")]
    if value is None:
        return [(prefix, "none")]
    return [(prefix, str(value))]


@dataclass(frozen=True)
class ViewBase:
    """The records of one run, the skill's config (when known) and where figures go."""

    inputs: ReportInputs
    config: SkillConfig | None
    generated_at: datetime
    workdir: Path

    @property
    def labels(self) -> list[str]:
        """Give the class labels in model order."""
        return self.inputs.metrics["labels"]

    @property
    def candidate(self) -> ModelResult:
        """Give the candidate's results."""
        return self.inputs.metrics["candidate"]

    @property
    def baseline(self) -> ModelResult | None:
        """Give the deployed baseline's results, if one was deployed."""
        return self.inputs.metrics["baseline"]

    @property
    def test_images(self) -> Tex:
        """Give the number of test images."""
        return number(len(self.inputs.metrics["truth"]) or self._matrix_total())

    @property
    def class_count(self) -> Tex:
        """Give the number of classes the model knows."""
        return number(len(self.labels))

    def _matrix_total(self) -> int:
        return sum(sum(row) for row in self.candidate["confusion_matrix"])

    def _gate_record(self) -> tuple[GateRecord | None, bool]:
        """Give the gate's record and whether it is provisional (worked out here, not yet run)."""
        if self.inputs.gate is not None or self.config is None:
            return self.inputs.gate, False
        # The gate stage runs after the report; its rules are a pure function of these figures
        # and the config, so the report can show the verdict the gate will give.
        from skillmaker.domain.gate import decide

        return decide(self.inputs.metrics, self.config.gate).to_record(), True

    # ----------------------------------------------------------------- helpers
    def _figure(self, path: Path, caption: str, label: str, width: str = "\\linewidth") -> Tex:
        relative = path.relative_to(self.workdir).as_posix()
        return Tex(
            "\\begin{figure}[H]\n\\centering\n"
            f"\\includegraphics[width={width}]{{{relative}}}\n"
            f"\\caption{{{caption}}}\\label{{{label}}}\n\\end{{figure}}\n"
        )
