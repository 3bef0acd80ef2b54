"""Build a run's PDF report: check the records, weave the Pweave template, compile, write.

``build_report`` is the API (the ``skillmaker report`` command only calls it). Work happens in a
temporary folder; the PDF and the confusion-matrix CSV are moved into place only when everything
succeeded, so a failed build leaves no half-written report behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import skillmaker
from skillmaker.config import SkillConfig
from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic
from skillmaker.report.analysis import confusion_csv_rows
from skillmaker.report.inputs import ReportInputs, load_inputs
from skillmaker.report.pdflatex import compile_pdf
from skillmaker.resources import report_templates_dir

__all__ = [
    "CONFUSION_CSV",
    "ERROR_FILE",
    "INPUT_FILE",
    "TEMPLATE",
    "WeaveError",
    "build_report",
    "check_weaver",
    "render_tex",
    "write_confusion_csv",
]

TEMPLATE = "skill_report.texw"
CONFUSION_CSV = "confusion_matrix.csv"
# Files in the working folder: what the template's first chunk reads, and where a failing chunk
# is described by the child process.
INPUT_FILE = "report_input.json"
ERROR_FILE = "weave_error.txt"
_WEAVE_TIMEOUT = 600.0


class WeaveError(UserError):
    """A chunk of the report template failed; the message holds the chunk and its traceback."""


def _package_root() -> str:
    return str(Path(skillmaker.__file__).resolve().parent.parent)


def _child_environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    state = workdir / ".state"
    env.update(
        {
            # Pweave traps (DESIGN.md) and tools that would otherwise write under HOME.
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "MPLCONFIGDIR": str(state / "matplotlib"),
            "IPYTHONDIR": str(state / "ipython"),
            "JUPYTER_CONFIG_DIR": str(state / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(state / "jupyter-runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONHASHSEED": "0",
            "PYTHONPATH": os.pathsep.join(
                p for p in (_package_root(), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def check_weaver() -> None:
    """Raise a user error unless Pweave and an IPython it works with (before 9) are installed."""
    try:
        ipython = metadata.version("ipython")
        metadata.version("pweave")
    except metadata.PackageNotFoundError as exc:
        raise UserError(
            f"{exc.name} is not installed: the report needs pip install 'skillmaker[report]'"
        ) from None
    if int(ipython.split(".", 1)[0]) >= 9:
        raise UserError(
            f"ipython {ipython} is installed, but Pweave 0.30 works only with ipython<9 "
            "(pip install 'ipython<9')"
        )


def _template_folder(templates: Path | None) -> Path:
    folder = templates if templates is not None else report_templates_dir()
    if not (folder / TEMPLATE).is_file():
        raise UserError(f"{folder}: no report template {TEMPLATE} there")
    return folder


def render_tex(
    run_dir: Path,
    workdir: Path,
    *,
    templates: Path | None = None,
    config: SkillConfig | None = None,
    generated_at: datetime | None = None,
) -> Path:
    """Give the LaTeX file woven in ``workdir`` from the template and the records of ``run_dir``.

    Figures land in ``workdir/figures``. The records are checked first, so a missing or broken
    one is a user error naming it, never a failure inside the template.
    """
    load_inputs(run_dir)
    check_weaver()
    folder = _template_folder(templates)
    workdir.mkdir(parents=True, exist_ok=True)
    for item in sorted(folder.iterdir()):
        # The template and any LaTeX fragments it \input's sit beside the woven file.
        if item.is_file() and item.suffix in (".texw", ".tex", ".sty", ".cls"):
            shutil.copyfile(item, workdir / item.name)
    moment = generated_at or datetime.now(UTC)
    payload = {
        "run_dir": str(run_dir.resolve()),
        "generated_at": moment.isoformat(),
        "config": config.model_dump(mode="json") if config is not None else None,
    }
    (workdir / INPUT_FILE).write_text(
        json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    tex = workdir / (Path(TEMPLATE).stem + ".tex")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "skillmaker.report.weave", TEMPLATE, tex.name, ERROR_FILE],
            cwd=workdir,
            env=_child_environment(workdir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_WEAVE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise WeaveError(
            f"{folder / TEMPLATE}: weaving ran longer than {_WEAVE_TIMEOUT:.0f} s"
        ) from None
    if result.returncode != 0 or not tex.is_file():
        error_file = workdir / ERROR_FILE
        if error_file.is_file():
            detail = error_file.read_text(encoding="utf-8")
        else:
            detail = (result.stderr.strip() or result.stdout.strip())[-6000:]
        raise WeaveError(f"{folder / TEMPLATE}: weaving the report failed:\n{detail}")
    return tex


def write_confusion_csv(inputs: ReportInputs, path: Path) -> Path:
    """Give the path of the candidate's full confusion matrix written as CSV (atomically)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(
        confusion_csv_rows(
            inputs.metrics["labels"], inputs.metrics["candidate"]["confusion_matrix"]
        )
    )
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path


def build_report(
    run_dir: Path,
    output: Path,
    *,
    templates: Path | None = None,
    config: SkillConfig | None = None,
    generated_at: datetime | None = None,
) -> Path:
    """Give the path of the PDF report of the run in ``run_dir``, written to ``output``.

    The candidate's full confusion matrix is written beside it as ``confusion_matrix.csv``.
    ``config`` adds the skill's title, owner and hyperparameters; ``generated_at`` (default: now)
    is the one thing that differs between two builds from the same records.
    """
    inputs = load_inputs(run_dir)
    moment = generated_at or datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="skillmaker-report-") as tmp:
        workdir = Path(tmp)
        tex = render_tex(run_dir, workdir, templates=templates, config=config, generated_at=moment)
        pdf = compile_pdf(tex, source_date_epoch=int(moment.timestamp()))
        data = pdf.read_bytes()
    write_confusion_csv(inputs, output.with_name(CONFUSION_CSV))
    write_atomic(output, data)
    return output
