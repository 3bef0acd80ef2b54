"""Fixtures of the notify tests: a skill repo with a finished run, a real PDF, real servers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from skillmaker.adapters.git import init_and_commit
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.records import (
    GATE,
    METRICS,
    REPORT,
    RUN,
    GateRecord,
    MetricsRecord,
    ModelResult,
    RunRecord,
    write_record,
)
from skillmaker.resources import examples_dir
from tests.notify.servers import SlackServer, SmtpServer, slack_server, smtp_server

VERSION = 3


@dataclass
class SkillRun:
    """A skill repo whose current run has records in its run folder."""

    repo: Path
    run_dir: Path
    commit: str
    report: bytes

    def context(self, env: dict[str, str]) -> SkillContext:
        """Give the skill's context with exactly this environment and a captured output."""
        return load_skill(self.repo, env=env, out=io.StringIO())

    def run_json(self) -> RunRecord:
        """Give the run folder's run.json."""
        record: RunRecord = json.loads((self.run_dir / RUN).read_text())
        return record


@pytest.fixture(scope="session")
def report_pdf() -> bytes:
    """Give the bytes of a real one-page PDF with a figure (binary content, compressed streams)."""
    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([0, 1, 2], [0.90, 0.95, 0.97])
    axes.set_title("accuracy")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf")
    plt.close(figure)
    return buffer.getvalue()


def _result(version: int, commit: str, accuracy: float, p95: float) -> ModelResult:
    return {
        "skill_version": version,
        "code_version": commit,
        "model_hash": f"sha256:{version:064d}",
        "accuracy": accuracy,
        "top_k": 3,
        "top_k_accuracy": 0.99,
        "per_class": [],
        "confusion_matrix": [[9, 1], [0, 10]],
        "latency": {
            "p50": p95 / 2,
            "p95": p95,
            "p99": p95 * 1.5,
            "mean": p95 / 1.8,
            "concurrency": 4,
            "samples_ms": [],
        },
        "predictions": [0, 0, 1, 1],
        "failures": [],
        "errors": 0,
    }


def metrics_record(commit: str, baseline: bool = True) -> MetricsRecord:
    """Give metrics of a candidate (0.9533, p95 12.5 ms) and its baseline (0.9480, p95 12 ms)."""
    return {
        "labels": ["0", "1"],
        "keys": ["a.png", "b.png", "c.png", "d.png"],
        "truth": [0, 0, 1, 1],
        "candidate": _result(VERSION, commit, 0.9533, 12.5),
        "baseline": _result(VERSION - 1, "0" * 40, 0.9480, 12.0) if baseline else None,
    }


def gate_record(passed: bool) -> GateRecord:
    """Give a gate decision against version 2 with one reason per rule."""
    return {
        "passed": passed,
        "baseline_version": VERSION - 1,
        "rules": [
            {
                "name": "accuracy",
                "passed": True,
                "candidate": 0.9533,
                "baseline": 0.9480,
                "limit": 0.9380,
                "reason": "0.9533 >= 0.9380 (baseline 0.9480 - tolerance 0.01)",
            },
            {
                "name": "latency_p95",
                "passed": passed,
                "candidate": 12.5,
                "baseline": 12.0,
                "limit": 12.6 if passed else 12.2,
                "reason": "12.5 ms <= 12.6 ms" if passed else "12.5 ms > 12.2 ms (5% slower)",
            },
        ],
    }


def run_record(commit: str, stages: dict[str, str]) -> RunRecord:
    """Give a run.json with the given stage outcomes."""
    return {
        "skill": "digits",
        "skill_version": VERSION,
        "code_version": commit,
        "config_hash": "c" * 64,
        "manifest_hash": "m" * 64,
        "skillmaker_version": "0.1.0",
        "hardware": {"cpus": 2},
        "stages": {
            name: {
                "outcome": outcome,
                "seconds": 1.0,
                "message": "out of memory" if outcome == "failed" else "",
            }
            for name, outcome in stages.items()
        },
        "warnings": [],
    }


PASSED_STAGES = {
    "version": "passed",
    "build": "skipped",
    "data": "passed",
    "train": "passed",
    "evaluate": "passed",
    "stack-test": "passed",
    "report": "passed",
    "gate": "passed",
    "deploy": "passed",
}


@pytest.fixture
def skill_run(tmp_path: Path, report_pdf: bytes) -> SkillRun:
    """Give a digits skill repo (a real git repo) whose run 3 passed the gate and was deployed."""
    repo = tmp_path / "digits"
    repo.mkdir()
    config = json.loads((examples_dir() / "digits.json").read_text())
    config["data"]["source"] = (tmp_path / "data").as_uri()
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    config["deploy"]["infra_repo"] = str(tmp_path / "infra")
    (repo / "skill.json").write_text(json.dumps(config, indent=2))
    commit = init_and_commit(repo, "skill")
    context = load_skill(repo, env={}, out=io.StringIO())
    context.set_current_run(RunPointer(VERSION, commit))
    run_dir = context.run_dir()
    write_record(run_dir / RUN, run_record(commit, PASSED_STAGES))
    write_record(run_dir / GATE, gate_record(passed=True))
    write_record(run_dir / METRICS, metrics_record(commit))
    (run_dir / REPORT).write_bytes(report_pdf)
    return SkillRun(repo=repo, run_dir=run_dir, commit=commit, report=report_pdf)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """Give a Slack Web API server on 127.0.0.1 that knows the token ``xoxb-test-token``."""
    with slack_server() as server:
        yield server


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """Give an SMTP server on 127.0.0.1 that requires STARTTLS (self-signed cert) and a login."""
    with smtp_server(tmp_path) as server:
        yield server
