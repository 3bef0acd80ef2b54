"""Building real PDFs with Pweave and pdflatex, read back with pdftotext and pdftoppm."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from skillmaker import records
from skillmaker.config import SkillConfig, load_config
from skillmaker.domain.gate import decide
from skillmaker.errors import UserError
from skillmaker.report import CONFUSION_CSV, build_report, render_tex
from skillmaker.report.build import WeaveError
from skillmaker.report.pdflatex import LatexError, compile_pdf
from skillmaker.resources import examples_dir, report_templates_dir
from tests.report.pdftools import has_ink, page_count, pdf_text, render_pages, squeezed
from tests.report.sample_run import HOSTILE, SampleOptions, class_names, write_sample_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("pdflatex", "pdftotext", "pdftoppm")),
        reason="pdflatex and poppler-utils are not installed",
    ),
]

# A class that tries to read a file sitting right beside the LaTeX, by a path the paranoid file
# policy allows; only escaping keeps it text. The canary's content must never reach the PDF.
CANARY_CLASS = r"\input{canary}\catcode`\^=7 ^^5cinput{canary}"
CANARY_MARK = "CANARYWASREAD"
LABELS = [*class_names(8), HOSTILE, CANARY_CLASS]
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Woven:
    """A run folder and the PDF woven and compiled from it, with pdflatex's working folder kept."""

    run_dir: Path
    workdir: Path
    pdf: Path
    text: str


@pytest.fixture(scope="module")
def config() -> SkillConfig:
    return load_config(examples_dir() / "digits.json").config


@pytest.fixture(scope="module")
def woven(tmp_path_factory: pytest.TempPathFactory, config: SkillConfig) -> Woven:
    root = tmp_path_factory.mktemp("woven")
    run_dir = write_sample_run(root / "run", LABELS, SampleOptions(failures=5))
    workdir = root / "work"
    tex = render_tex(run_dir, workdir, config=config, generated_at=WHEN)
    (workdir / "canary.tex").write_text(CANARY_MARK + "\n")
    pdf = compile_pdf(tex, source_date_epoch=int(WHEN.timestamp()))
    return Woven(run_dir, workdir, pdf, pdf_text(pdf))


def test_the_report_shows_versions_accuracy_and_every_class(woven: Woven) -> None:
    text = woven.text
    for expected in (
        "Handwritten digits",
        "0123456789abcdef0123456789abcdef01234567",  # code version
        "c0" * 32,  # config hash
        "3a" * 32,  # data manifest hash
        "1e" * 32,  # split ledger hash
        "0.1.0",  # skillmaker version
        "Baseline version",
        "2024-05-01 12:00 UTC",
    ):
        assert expected in text, expected
    accuracy = text.split("The candidate model answered ", 1)[1].split(" of the", 1)[0]
    assert accuracy.endswith("%") and 50 < float(accuracy.rstrip(" %")) <= 100
    flat = squeezed(text)
    for label in LABELS:
        assert squeezed(label) in flat, label


def test_the_report_has_every_section(woven: Woven) -> None:
    for heading in (
        "Versions",
        "Pipeline stages",
        "Data",
        "Excluded classes",
        "Quarantined files",
        "Duplicate images",
        "Training",
        "Learning curves",
        "Results",
        "Per-class precision, recall and F1",
        "Confusion matrix",
        "Latency",
        "Comparison with the baseline",
        "Gate",
        "Failures",
        "Full-stack results",
    ):
        assert heading in woven.text, heading
    for fact in (
        "trabant-601",
        "too few examples",
        "truncated",
        "dup-0002",
        "split around their centres: dup-0003 (61)",
        "is-car",
        "predicted:",
    ):
        assert fact in woven.text, fact


def test_every_page_renders(woven: Woven, tmp_path: Path) -> None:
    pages = render_pages(woven.pdf, tmp_path / "pages")
    assert len(pages) == page_count(woven.pdf) >= 5
    assert all(has_ink(page) for page in pages)


def test_figures_and_failure_images_are_in_the_pdf(woven: Woven) -> None:
    figures = sorted(p.name for p in (woven.workdir / "figures").iterdir())
    for name in ("class-balance.png", "confusion.png", "latency.png", "learning-curves.png"):
        assert name in figures
    assert "failure-005-gradcam.png" in figures
    fls = (woven.workdir / "skill_report.fls").read_text()
    assert "figures/failure-005-gradcam.png" in fls


def test_a_hostile_class_name_prints_as_written_and_reads_no_file(woven: Woven) -> None:
    assert HOSTILE in woven.text
    assert squeezed(CANARY_CLASS) in squeezed(woven.text)
    assert CANARY_MARK not in woven.text
    fls = (woven.workdir / "skill_report.fls").read_text()
    log = (woven.workdir / "skill_report.log").read_text(errors="replace")
    assert "passwd" not in fls and "canary" not in fls
    assert "Not reading from" not in log  # nothing even tried: the guard had no work to do


@dataclass(frozen=True)
class Built:
    """Two reports built with ``build_report`` from the woven run: at ``WHEN`` and a year later."""

    same: Path
    later: Path


LATER = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def built(woven: Woven, tmp_path_factory: pytest.TempPathFactory, config: SkillConfig) -> Built:
    root = tmp_path_factory.mktemp("built")
    same = build_report(woven.run_dir, root / "a" / "report.pdf", config=config, generated_at=WHEN)
    later = build_report(
        woven.run_dir, root / "b" / "report.pdf", config=config, generated_at=LATER
    )
    return Built(same, later)


def test_same_records_give_the_same_text_except_the_generation_time(
    woven: Woven, built: Built
) -> None:
    assert pdf_text(built.same) == woven.text
    # Same records and the same time even give the same bytes (pdfTeX dates from SOURCE_DATE_EPOCH).
    assert built.same.read_bytes() == woven.pdf.read_bytes()
    later = pdf_text(built.later)
    assert later != woven.text
    assert later == woven.text.replace("2024-05-01 12:00 UTC", "2025-01-02 03:04 UTC")


def test_the_full_confusion_matrix_is_written_beside_the_pdf(woven: Woven, built: Built) -> None:
    assert built.same.name == "report.pdf" and built.same.is_file()
    with (built.same.parent / CONFUSION_CSV).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["true \\ predicted", *LABELS]
    assert [row[0] for row in rows[1:]] == LABELS
    metrics = records.read_record(woven.run_dir / records.METRICS)
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == metrics["candidate"][
        "confusion_matrix"
    ]


def test_the_report_gets_the_permissions_of_any_new_file(built: Built) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert built.same.stat().st_mode & 0o777 == 0o666 & ~umask


def test_absent_optional_records_are_explained(tmp_path: Path) -> None:
    options = SampleOptions(baseline=False, gate=False, stack=False, history=False, failures=0)
    run_dir = write_sample_run(tmp_path / "run", class_names(3), options)
    text = pdf_text(build_report(run_dir, tmp_path / "out" / "report.pdf", generated_at=WHEN))
    flat = " ".join(text.split())
    assert "there is no baseline to compare with" in flat
    assert "The gate has not decided on this version yet" in flat
    assert "No full-stack result" in flat
    assert "No training history was recorded" in flat
    assert "no failure images were recorded" in flat
    assert "none (no model deployed before)" in flat


def test_a_missing_required_record_fails_before_anything_is_written(
    woven: Woven, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(woven.run_dir, run_dir)
    (run_dir / records.AUDIT).unlink()
    output = tmp_path / "out" / "report.pdf"
    with pytest.raises(UserError, match=r"audit\.json: missing"):
        build_report(run_dir, output)
    assert not output.parent.exists()


def _template_folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "skill_report.texw").write_text(
        "\\documentclass{article}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    )
    return folder


def test_a_latex_error_names_the_problem_from_the_log(woven: Woven, tmp_path: Path) -> None:
    templates = _template_folder(tmp_path, "Hello \\nosuchcommand{}")
    output = tmp_path / "out" / "report.pdf"
    with pytest.raises(LatexError) as caught:
        build_report(woven.run_dir, output, templates=templates)
    assert "Undefined control sequence" in str(caught.value)
    assert "nosuchcommand" in str(caught.value)
    assert not output.exists()


def test_a_failing_chunk_stops_the_weave_with_its_traceback(woven: Woven, tmp_path: Path) -> None:
    body = (
        "<<echo=False, results='tex'>>=\nprint('fine')\nraise RuntimeError('chunk went wrong')\n@"
    )
    templates = _template_folder(tmp_path, body)
    with pytest.raises(WeaveError, match="chunk went wrong") as caught:
        build_report(woven.run_dir, tmp_path / "out" / "report.pdf", templates=templates)
    assert "chunk 1 (ending at line 6)" in str(caught.value)


def test_the_bundled_template_never_sets_a_matplotlib_backend() -> None:
    # Pweave silently drops figures after matplotlib.use in a chunk (DESIGN.md).
    assert "matplotlib.use" not in (report_templates_dir() / "skill_report.texw").read_text()


def test_the_gate_section_explains_each_rule_and_the_test_sets_adequacy(
    tmp_path: Path, config: SkillConfig
) -> None:
    options = SampleOptions(gate=False, stack=False, failures=0, test_per_class=30)
    run_dir = write_sample_run(tmp_path / "run", class_names(4), options)
    metrics = records.read_record(run_dir / records.METRICS)
    decision = decide(metrics, config.gate)
    records.write_record(run_dir / records.GATE, decision.to_record())
    pdf = build_report(run_dir, tmp_path / "out" / "report.pdf", config=config, generated_at=WHEN)
    flat = " ".join(pdf_text(pdf).split()).replace("\u2019", "'")
    assert f"The gate's verdict: {decision.verdict}" in flat
    assert "accuracy: Newcombe's paired hybrid score interval" in flat
    assert "latency_p95: bootstrap over measurement rounds" in flat
    accuracy = decision.rules[0]
    assert f"b={accuracy.b}, c={accuracy.c}" in flat
    assert "Per class Recall on each class's own test images" in flat
    assert "Test-set adequacy With" in flat
    assert "the smallest accuracy tolerance the gate can show is" in flat
    assert "the configured tolerance is 1.00 points" in flat
