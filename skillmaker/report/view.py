"""What the report template shows: the run's records turned into escaped LaTeX pieces.

The Pweave template (``report_templates/skill_report.texw``) is the document: its prose, sections
and layout. Its chunks ask a ``ReportView`` for values, tables and figures; every piece the view
gives back is LaTeX in which each string from config or data went through ``latex.escape``. Each
part of the document has its module in ``skillmaker.report.sections``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from skillmaker.config import SkillConfig
from skillmaker.report.build import INPUT_FILE
from skillmaker.report.inputs import load_inputs
from skillmaker.report.sections.data import DataSection
from skillmaker.report.sections.failures import FailuresSection
from skillmaker.report.sections.gate import GateSection
from skillmaker.report.sections.overview import OverviewSection
from skillmaker.report.sections.results import ResultsSection
from skillmaker.report.sections.training import TrainingSection

__all__ = ["ReportView"]


class ReportView(
    OverviewSection, DataSection, TrainingSection, ResultsSection, GateSection, FailuresSection
):
    """The records of one run, the skill's config (when known) and where figures go."""

    @classmethod
    def load(cls, input_file: str | Path = INPUT_FILE) -> ReportView:
        """Give the view described by the input file that ``build.render_tex`` wrote."""
        path = Path(input_file).absolute()
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = raw.get("config")
        return cls(
            inputs=load_inputs(Path(raw["run_dir"])),
            config=SkillConfig.model_validate_json(json.dumps(config)) if config else None,
            generated_at=datetime.fromisoformat(raw["generated_at"]),
            workdir=path.parent,
        )
