"""The README's main job: ``skillmaker demo`` runs every stage twice on the real digits data.

This is the end-to-end test of the pipeline on real data: the digits are written as PNGs in the
folders layout, ``examples/digits.json`` trains on CPU, the test harness measures both versions
through the serving path, the report is a real PDF, the gate compares two real models, and the
deploy commits a tag to a real git repo.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmaker.pipeline.demo import DemoRun, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[DemoRun], str]]:
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    out = io.StringIO()
    # The demo's config names public base images no registry here can serve; the image build is
    # tested in tests/test_build.py with a local base image, so here no engine answers.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", f"unix://{workdir.parent}/no-engine.sock")
        runs = run_demo(workdir, out)
    yield workdir, runs, out.getvalue()


def _run_dir(workdir: Path, version: int) -> Path:
    return workdir / "store" / "artifacts" / "skills" / "digits" / "runs" / str(version)


def test_two_versions_with_every_stage(demo: tuple[Path, list[DemoRun], str]) -> None:
    _workdir, runs, out = demo
    assert [r.version for r in runs] == [1, 2]
    for run in runs:
        outcomes = {r.stage: r.outcome for r in run.results}
        assert outcomes["train"] == "passed"
        assert outcomes["evaluate"] == "passed"
        assert outcomes["report"] == "passed"
        # Version 1 is in no cascade yet; version 2 runs behind the deployed first step.
        assert outcomes["stack-test"] == ("skipped" if run.version == 1 else "passed")
        assert outcomes["build"] == "skipped"  # no Docker engine answers
        assert outcomes["gate"] in ("passed", "rejected")
        assert outcomes["notify"] == "passed" and outcomes["cleanup"] == "passed"
    assert "wall time:" in out and "registry:" in out and "outbox:" in out


def test_digits_reach_the_accuracy_the_issue_asks_for(
    demo: tuple[Path, list[DemoRun], str],
) -> None:
    workdir, _, _ = demo
    metrics = json.loads((_run_dir(workdir, 1) / "metrics.json").read_text())
    assert metrics["candidate"]["accuracy"] >= 0.95
    assert metrics["baseline"] is None
    second = json.loads((_run_dir(workdir, 2) / "metrics.json").read_text())
    assert second["baseline"]["skill_version"] == 1, "version 2 is compared with deployed version 1"
    assert second["keys"] == metrics["keys"], "both versions are tested on the same held-out images"


def test_one_version_is_deployed_and_the_other_blocked_with_its_reason(
    demo: tuple[Path, list[DemoRun], str],
) -> None:
    workdir, runs, out = demo
    first, second = runs
    assert first.gate is not None and first.gate["passed"]
    assert second.gate is not None and second.gate["baseline_version"] == 1
    # About 300 test images cannot show a second model within 1 point: never deployed unasked.
    assert not second.gate["passed"]
    assert second.gate["verdict"] in ("rejected", "inconclusive")
    registry = json.loads((workdir / "store/artifacts/skills/digits/registry.json").read_text())
    deployed = registry["deployed"]
    assert deployed["skill_version"] == 1
    template = (workdir / "infra" / "skills.yaml").read_text()
    assert deployed["image_tag"] in template
    log = subprocess.run(
        ["git", "-C", str(workdir / "infra"), "log", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "digits" in log
    summary = out[out.index("demo: done") :]
    assert "version 1: gate passed, deployed" in summary
    accuracy = next(r for r in second.gate["rules"] if r["name"] == "accuracy")
    assert f"version 2: gate {second.gate['verdict']}, not deployed (" in summary
    if accuracy["verdict"] != "passed":
        assert accuracy["reason"] in summary
    repo = workdir / "skill"
    assert f'skillmaker gate --repo {repo} --accept-regression --reason "' in summary
    assert f"skillmaker deploy --repo {repo}" in summary


def test_report_of_a_real_run(demo: tuple[Path, list[DemoRun], str], tmp_path: Path) -> None:
    workdir, _runs, _ = demo
    pdf = _run_dir(workdir, 1) / "report.pdf"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    run = json.loads((_run_dir(workdir, 1) / "run.json").read_text())
    metrics = json.loads((_run_dir(workdir, 1) / "metrics.json").read_text())
    assert run["code_version"][:7] in text
    assert f"{metrics['candidate']['accuracy'] * 100:.1f}" in text
    for label in metrics["labels"]:
        assert label in text
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) >= 3


def test_notifications_went_to_the_outbox(demo: tuple[Path, list[DemoRun], str]) -> None:
    workdir, _, _ = demo
    outbox = workdir / "skill" / ".skillmaker" / "outbox"
    assert any(outbox.rglob("*.eml")), "the reviewers' e-mail with the PDF is in the outbox"


def test_the_cascade_ran_and_its_report_shows_it(
    demo: tuple[Path, list[DemoRun], str],
) -> None:
    workdir, runs, out = demo
    first = json.loads((workdir / "store/artifacts/skills/five-or-more/registry.json").read_text())
    assert first["deployed"]["skill_version"] == 1
    stack = json.loads((_run_dir(workdir, runs[-1].version) / "stack.json").read_text())
    assert [step["skill"] for step in stack["steps"]] == ["five-or-more", "digits"]
    assert stack["inputs"] == len(list((workdir / "store/data/full-stack/digits").rglob("*.png")))
    assert stack["end_to_end_accuracy"] > 0.8
    assert f"cascade digits: {stack['end_to_end_accuracy']:.1%} right end to end" in out
    pdf = _run_dir(workdir, runs[-1].version) / "report.pdf"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Full-stack results" in text
    assert f"{stack['end_to_end_accuracy'] * 100:.1f}" in text
