"""Builders for the release tests: skill repos, measured results, infra repos."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from skillmaker.adapters import git
from skillmaker.adapters.cloudformation import CloudFormationStack
from skillmaker.build.plan import BUILD, BuildRecord, BuiltImageRecord
from skillmaker.cli import main
from skillmaker.context import load_skill
from skillmaker.records import ClassMetrics, Latency, MetricsRecord, ModelResult, write_record

LABELS = [str(d) for d in range(10)]


def balanced_truth(per_class: int = 100, classes: int = 10) -> list[int]:
    """Give test labels with ``per_class`` images of each class, classes interleaved."""
    return [i % classes for i in range(per_class * classes)]


def predict(truth: Sequence[int], wrong: set[int], classes: int = 10) -> list[int]:
    """Give predictions equal to the truth except at the ``wrong`` indices."""
    return [(t + 1) % classes if i in wrong else t for i, t in enumerate(truth)]


def wrong_in_class(truth: Sequence[int], label: int, count: int, skip: int = 0) -> set[int]:
    """Give ``count`` indices of images of one class (after skipping ``skip`` of them)."""
    indices = [i for i, t in enumerate(truth) if t == label]
    return set(indices[skip : skip + count])


def latency(p95: float) -> Latency:
    """Give a latency record with the given p95."""
    return {
        "p50": p95 * 0.6,
        "p95": p95,
        "p99": p95 * 1.2,
        "mean": p95 * 0.7,
        "concurrency": 4,
        "samples_ms": [p95 * 0.6, p95],
    }


def model_result(
    version: int,
    truth: Sequence[int],
    predictions: Sequence[int],
    *,
    p95: float = 10.0,
    labels: Sequence[str] = LABELS,
    code_version: str = "0" * 40,
) -> ModelResult:
    """Give one model's results, every number computed from its predictions."""
    per_class: list[ClassMetrics] = []
    for index, label in enumerate(labels):
        support = sum(t == index for t in truth)
        hits = sum(t == index and p == index for t, p in zip(truth, predictions, strict=True))
        predicted = sum(p == index for p in predictions)
        recall = hits / support if support else 0.0
        precision = hits / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    correct = sum(t == p for t, p in zip(truth, predictions, strict=True))
    size = len(labels)
    matrix = [[0] * size for _ in range(size)]
    for t, p in zip(truth, predictions, strict=True):
        matrix[t][p] += 1
    return {
        "skill_version": version,
        "code_version": code_version,
        "model_hash": f"hash-{version}",
        "accuracy": correct / len(truth),
        "top_k": 1,
        "top_k_accuracy": correct / len(truth),
        "per_class": per_class,
        "confusion_matrix": matrix,
        "latency": latency(p95),
        "predictions": list(predictions),
        "failures": [],
        "errors": 0,
    }


def metrics_record(
    truth: Sequence[int],
    candidate: ModelResult,
    baseline: ModelResult | None,
    labels: Sequence[str] = LABELS,
) -> MetricsRecord:
    """Give ``metrics.json`` for a candidate and an optional baseline on the same images."""
    return {
        "labels": list(labels),
        "keys": [f"test/{i:05d}.png" for i in range(len(truth))],
        "truth": list(truth),
        "candidate": candidate,
        "baseline": baseline,
    }


def skill_config(
    name: str, artifacts: str, infra_repo: str, gate: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Give a valid ``skill.json`` for the release stages."""
    return {
        "name": name,
        "title": f"{name} classifier",
        "ticket": "TEST-7",
        "owner": "owner@example.com",
        "data": {"source": "file:///nonexistent/data"},
        "gate": gate
        or {
            "accuracy_tolerance": 0.005,
            "latency_tolerance": 0.05,
            "max_class_drop": 0.05,
            "min_accuracy": 0.8,
        },
        "deploy": {
            "artifacts": artifacts,
            "infra_repo": infra_repo,
            "template_path": "skills.yaml",
            "mapping_name": "SkillImages",
            "stack_name": "skills",
            "region": "eu-west-1",
        },
    }


def make_skill_repo(root: Path, config: dict[str, Any]) -> Path:
    """Give a committed skill repo holding ``skill.json`` (the workspace ignored, as stamped)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "skill.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (root / ".gitignore").write_text(".skillmaker/\n", encoding="utf-8")
    git.init_and_commit(root, "skill")
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Give every file under a folder with its bytes (to compare before and after)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def fake_rolling_back_cloudformation(stack: str) -> Any:
    """Give a CloudFormation deployer whose update rolls back (moto never rolls back).

    A botocore ``Stubber`` answers, in order: the stack exists (UPDATE_COMPLETE), the update is
    accepted, the stack is updating, then UPDATE_ROLLBACK_COMPLETE, and the events name the failed
    resource. Everything else is the real adapter.
    """
    client = boto3.client(
        "cloudformation",
        region_name="eu-west-1",
        aws_access_key_id="fake",
        aws_secret_access_key="fake",
    )
    stubber = Stubber(client)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    arn = f"arn:aws:cloudformation:eu-west-1:123456789012:stack/{stack}/1"

    def described(status: str) -> dict[str, Any]:
        return {
            "Stacks": [
                {
                    "StackName": stack,
                    "StackId": arn,
                    "CreationTime": created,
                    "StackStatus": status,
                    "Parameters": [{"ParameterKey": "ImageRegistry", "ParameterValue": "r"}],
                    "Outputs": [{"OutputKey": "DigitsImageTag", "OutputValue": "1-aaaaaaa-cpu"}],
                }
            ]
        }

    stubber.add_response("describe_stacks", described("UPDATE_COMPLETE"), {"StackName": stack})
    stubber.add_response(
        "get_template", {"TemplateBody": "the running template"}, {"StackName": stack}
    )
    stubber.add_response(
        "update_stack",
        {"StackId": arn},
        {
            "StackName": stack,
            "TemplateBody": ANY,
            "Parameters": [{"ParameterKey": "ImageRegistry", "UsePreviousValue": True}],
            "Capabilities": ANY,
        },
    )
    stubber.add_response("describe_stacks", described("UPDATE_IN_PROGRESS"), {"StackName": stack})
    stubber.add_response(
        "describe_stacks", described("UPDATE_ROLLBACK_COMPLETE"), {"StackName": stack}
    )
    event = {"StackId": arn, "StackName": stack, "Timestamp": created}
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {
                    **event,
                    "EventId": "4",
                    "LogicalResourceId": stack,
                    "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE",
                },
                {
                    **event,
                    "EventId": "3",
                    "LogicalResourceId": "DigitsService",
                    "ResourceStatus": "UPDATE_FAILED",
                    "ResourceStatusReason": "CannotPullContainerError: image not found",
                },
                {
                    **event,
                    "EventId": "2",
                    "LogicalResourceId": stack,
                    "ResourceStatus": "UPDATE_IN_PROGRESS",
                    "ResourceStatusReason": "User Initiated",
                },
                {
                    **event,
                    "EventId": "1",
                    "LogicalResourceId": "OldService",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "an older failure",
                },
            ]
        },
        {"StackName": stack},
    )
    stubber.activate()
    return CloudFormationStack("eu-west-1", client=client, poll_seconds=0.0)


TRUTH = balanced_truth()
GOOD = {c + 100 * k for c in range(10) for k in range(5)}  # 95% accurate
WORSE = GOOD | set(range(1, 1000, 10))  # 85% accurate: a clear regression


@dataclass
class Result:
    """What a command printed and how it exited."""

    code: int
    out: str
    err: str


def run_cli(*argv: str) -> Result:
    """Run the ``skillmaker`` command in this process and give its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


@dataclass
class Skill:
    """A committed skill repo whose stages the tests run."""

    name: str
    repo: Path

    def run(self, *argv: str) -> Result:
        """Run one command inside this skill repo."""
        return run_cli(*argv, "--repo", str(self.repo))

    def new_commit(self) -> str:
        """Give the sha of a new commit of the skill repo (a code change)."""
        notes = self.repo / "NOTES.md"
        notes.write_text(notes.read_text() + "change\n" if notes.exists() else "change\n")
        return git.commit_all(self.repo, "change") or ""

    def measured(self, wrong: set[int], *, baseline: int | None, p95: float = 10.0) -> None:
        """Write the current run's ``metrics.json`` (candidate vs. an optional baseline)."""
        ctx = load_skill(self.repo)
        pointer = ctx.current_run()
        candidate = model_result(
            pointer.skill_version,
            TRUTH,
            predict(TRUTH, wrong),
            p95=p95,
            code_version=pointer.code_version,
        )
        base = None if baseline is None else model_result(baseline, TRUTH, predict(TRUTH, GOOD))
        write_record(ctx.run_dir() / "metrics.json", metrics_record(TRUTH, candidate, base))

    def built(self, flavors: Sequence[str] = ("cpu", "gpu"), *, pushed: bool = True) -> None:
        """Write the current run's ``build.json`` as the build stage records serving images it
        built and pushed (no Docker engine or registry runs in these tests)."""
        ctx = load_skill(self.repo)
        pointer = ctx.current_run()
        images: list[BuiltImageRecord] = []
        for flavor in flavors:
            tag = f"{pointer.skill_version}-{pointer.code_version[:7]}-{flavor}"
            images.append(
                {
                    "flavor": flavor,
                    "ref": f"registry.test/{self.name}:{tag}",
                    "id": "sha256:" + "0" * 64,
                    "target": "serving",
                    "base_image": "base",
                    "labels": {},
                    "pushed": pushed,
                    "digest": "sha256:" + "1" * 64 if pushed else None,
                    "seconds": 1.0,
                }
            )
        record: BuildRecord = {"skipped": None, "engine": "test", "images": images}
        write_record(ctx.run_dir() / BUILD, record)

    def passed_run(self, *, baseline: int | None, built: bool = True) -> int:
        """Give the version of a new run that the gate passed (its images built and pushed)."""
        assert self.run("version").code == 0
        self.measured(GOOD, baseline=baseline)
        if built:
            self.built()
        result = self.run("gate")
        assert result.code == 0, result.err
        return load_skill(self.repo).current_run().skill_version


SkillFactory = Callable[..., Skill]
