"""The report's failure gallery and full-stack result."""

from __future__ import annotations

from PIL import Image, UnidentifiedImageError

from skillmaker.records import Failure
from skillmaker.report import analysis
from skillmaker.report.latex import (
    Tex,
    escape_breakable,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    FIGURES,
    MAX_FAILURES,
    ViewBase,
    _tt,
)


class FailuresSection(ViewBase):
    """Misclassified images and the cascade."""

    # ----------------------------------------------------------------- failures
    def failures(self) -> Tex:
        """Give a gallery of misclassified test images with their Grad-CAM overlays."""
        failures = self.candidate["failures"]
        wrong = self._matrix_total() - sum(
            row[i] for i, row in enumerate(self.candidate["confusion_matrix"])
        )
        if not failures:
            return Tex(
                f"The candidate misclassified {number(wrong)} test images; "
                "no failure images were recorded.\n"
            )
        shown = analysis.failures_by_confidence(failures, MAX_FAILURES)
        which = "The" if len(shown) == len(failures) else f"The {len(shown)} most confident of the"
        intro = (
            f"The candidate misclassified {number(wrong)} of {self.test_images} test images. "
            f"{which} {number(len(failures))} recorded failures are shown, "
            "most confident first: the test image, "
            "then the Grad-CAM overlay of where the model looked.\n\n"
        )
        cells = [self._failure_cell(index, failure) for index, failure in enumerate(shown, 1)]
        body = ""
        for start in range(0, len(cells), 2):
            pair = cells[start : start + 2]
            body += "\\noindent" + "\\hfill".join(pair) + "\\par\\medskip\n"
        return Tex(intro + body)

    def _failure_cell(self, index: int, failure: Failure) -> str:
        image = self._copy_image(failure["image"], f"failure-{index:03d}.png")
        gradcam = self._copy_image(failure["gradcam"], f"failure-{index:03d}-gradcam.png")
        return (
            "\\begin{minipage}[t]{0.48\\linewidth}\\centering\n"
            f"{image}\\hspace{{0.02\\linewidth}}{gradcam}\\\\[2pt]\n"
            "\\raggedright\\footnotesize\n"
            f"true: \\textbf{{{escape_breakable(failure['true'])}}}\\\\\n"
            f"predicted: \\textbf{{{escape_breakable(failure['predicted'])}}} "
            f"({percent(failure['probability'])})\\\\\n"
            f"{_tt(failure['key'])}\n"
            "\\end{minipage}"
        )

    def _copy_image(self, relative: str, name: str) -> str:
        """Give an includegraphics of a run-folder image re-encoded as PNG, or a placeholder box."""
        run_dir = self.inputs.run_dir.resolve()
        source = (run_dir / relative).resolve()
        box = (
            "\\fbox{\\parbox[c][0.4\\linewidth][c]{0.4\\linewidth}"
            "{\\centering\\footnotesize image missing}}"
        )
        if not source.is_relative_to(run_dir) or not source.is_file():
            return box  # never read outside the run folder, whatever the record says
        try:
            with Image.open(source) as picture:
                picture.load()
                converted = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        except (UnidentifiedImageError, OSError, ValueError):
            return box
        target = self.workdir / FIGURES / name
        target.parent.mkdir(parents=True, exist_ok=True)
        converted.save(target, format="PNG")
        size = "width=0.46\\linewidth,height=0.46\\linewidth,keepaspectratio"
        return f"\\includegraphics[{size}]{{{FIGURES}/{name}}}"

    # ----------------------------------------------------------------- full stack
    def stack(self) -> Tex:
        """Give the full-stack (cascade) result, or a sentence when there is none."""
        stack = self.inputs.stack
        if stack is None:
            return Tex(
                "No full-stack result: this skill is not part of a cascade, "
                "or the stack test has not "
                "run for this version (no \\texttt{stack.json}).\n"
            )
        previous = stack["previous_end_to_end_accuracy"]
        before = (
            f" (previous stack: {percent(previous)})"
            if previous is not None
            else " (no previous stack result)"
        )
        rows = [
            [
                _tt(step["skill"]),
                number(int(step["skill_version"])),
                _tt(step["code_version"][:12]),
                percent(step["accuracy"]),
            ]
            for step in stack["steps"]
        ]
        latency = stack["latency"]
        table = tabular("@{}lrlr@{}", ["Step (skill)", "Version", "Code", "Accuracy"], rows)
        return Tex(
            f"On {number(int(stack['inputs']))} full-stack test inputs the whole cascade was right "
            f"end to end for {percent(stack['end_to_end_accuracy'])}{before}. "
            f"End-to-end latency: p50 {number(float(latency['p50']), 1)}\\,ms, "
            f"p95 {number(float(latency['p95']), 1)}\\,ms.\n{table}"
        )
