"""``skillmaker report``: build the current run's PDF and store it beside the model."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import boto3
import pytest

from skillmaker import records
from skillmaker.adapters import git
from skillmaker.adapters.store import open_store
from skillmaker.cli import main
from skillmaker.config import config_hash
from skillmaker.context import RunPointer, load_skill
from skillmaker.domain.layout import run_key
from skillmaker.report import CONFUSION_CSV
from skillmaker.resources import examples_dir
from tests.helpers import MotoServer
from tests.report.pdftools import pdf_text
from tests.report.sample_run import class_names, write_sample_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("pdflatex", "pdftotext")),
        reason="pdflatex and poppler-utils are not installed",
    ),
]


def _skill_repo(root: Path, artifacts: str, version: int = 7) -> Path:
    """Give a skill repo (digits config) whose current run folder holds a full set of records."""
    config = json.loads((examples_dir() / "digits.json").read_text())
    config["data"]["source"] = (root / "data").as_uri()
    config["deploy"]["artifacts"] = artifacts
    config["deploy"]["infra_repo"] = str(root / "infra")
    repo = root / "repo"
    repo.mkdir()
    (repo / "skill.json").write_text(json.dumps(config))
    (repo / ".gitignore").write_text(".skillmaker/\n")
    commit = git.init_and_commit(repo, "skill")  # a stage acts only on a run of HEAD
    context = load_skill(repo)
    context.set_current_run(RunPointer(version, commit))
    write_sample_run(context.run_dir(), class_names(5))
    run_file = context.run_dir() / records.RUN
    run = json.loads(run_file.read_text())
    run["code_version"], run["config_hash"] = commit, config_hash(context.config)
    run_file.write_text(json.dumps(run))
    return repo


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_report_stores_the_pdf_and_the_matrix_in_a_file_store(tmp_path: Path) -> None:
    artifacts = (tmp_path / "artifacts").as_uri()
    repo = _skill_repo(tmp_path, artifacts)
    code, out, err = _run("report", "--repo", str(repo))
    assert (code, err) == (0, "")
    assert "skills/digits/runs/7/report.pdf" in out
    store = open_store(artifacts)
    stored = tmp_path / "stored.pdf"
    stored.write_bytes(store.get_bytes(run_key("digits", 7, records.REPORT)))
    text = pdf_text(stored)
    assert "Handwritten digits" in text and "porsche-model-000" in text
    matrix = store.get_bytes(run_key("digits", 7, CONFUSION_CSV)).decode()
    assert matrix.splitlines()[1].startswith("porsche-model-000,")
    assert (repo / ".skillmaker" / "runs" / "7" / records.REPORT).is_file()


def test_report_uploads_to_s3(tmp_path: Path, aws_env: MotoServer) -> None:
    boto3.client("s3").create_bucket(
        Bucket="skill-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    repo = _skill_repo(tmp_path, "s3://skill-artifacts/team")
    code, _, err = _run("report", "--repo", str(repo))
    assert (code, err) == (0, "")
    keys = {
        item["Key"]
        for item in boto3.client("s3").list_objects_v2(Bucket="skill-artifacts")["Contents"]
    }
    assert keys == {
        "team/skills/digits/runs/7/report.pdf",
        f"team/skills/digits/runs/7/{CONFUSION_CSV}",
        "team/skills/digits/runs/7/run.json",  # the stage runner records the report's outcome
    }
    body = boto3.client("s3").get_object(
        Bucket="skill-artifacts", Key="team/skills/digits/runs/7/report.pdf"
    )
    assert body["Body"].read().startswith(b"%PDF-")


def test_a_missing_record_exits_2_naming_it_and_stores_nothing(tmp_path: Path) -> None:
    artifacts = (tmp_path / "artifacts").as_uri()
    repo = _skill_repo(tmp_path, artifacts)
    (repo / ".skillmaker" / "runs" / "7" / records.METRICS).unlink()
    code, _, err = _run("report", "--repo", str(repo))
    assert code == 2
    assert "metrics.json: missing" in err and "Traceback" not in err
    assert not (tmp_path / "artifacts").exists() or not list(
        (tmp_path / "artifacts").rglob("report.pdf")
    )


def test_records_of_another_run_are_refused(tmp_path: Path) -> None:
    repo = _skill_repo(tmp_path, (tmp_path / "artifacts").as_uri())
    load_skill(repo).set_current_run(RunPointer(8, git.head_commit(repo)))
    shutil.copytree(repo / ".skillmaker" / "runs" / "7", repo / ".skillmaker" / "runs" / "8")
    code, _, err = _run("report", "--repo", str(repo))
    assert code == 2
    assert "records skill 'digits' version 7, but the current run is 'digits' version 8" in err


def test_without_a_current_run_the_user_is_told_what_to_run(tmp_path: Path) -> None:
    repo = _skill_repo(tmp_path, (tmp_path / "artifacts").as_uri())
    (repo / ".skillmaker" / "current.json").unlink()
    code, _, err = _run("report", "--repo", str(repo))
    assert code == 2 and "skillmaker version" in err
