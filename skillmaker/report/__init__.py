"""The PDF model report: records of a run woven into a Pweave LaTeX template and compiled."""

from skillmaker.report.build import CONFUSION_CSV, build_report, render_tex
from skillmaker.report.inputs import ReportInputs, load_inputs

__all__ = ["CONFUSION_CSV", "ReportInputs", "build_report", "load_inputs", "render_tex"]
