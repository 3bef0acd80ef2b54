"""Fixtures of the release tests: skill repos that share a store and an infra repo."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skillmaker.adapters import git
from skillmaker.cli import main
from skillmaker.context import load_skill
from skillmaker.records import write_record
from tests.deploy.builders import (
    balanced_truth,
    make_skill_repo,
    metrics_record,
    model_result,
    predict,
    skill_config,
)

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

    def passed_run(self, *, baseline: int | None) -> int:
        """Give the version of a new run that the gate passed."""
        assert self.run("version").code == 0
        self.measured(GOOD, baseline=baseline)
        result = self.run("gate")
        assert result.code == 0, result.err
        return load_skill(self.repo).current_run().skill_version


SkillFactory = Callable[..., Skill]


@pytest.fixture
def make_skill(tmp_path: Path) -> SkillFactory:
    """Give a factory of skill repos sharing ``tmp_path/artifacts`` and an infra repo."""

    def factory(
        name: str = "digits",
        *,
        artifacts: str | None = None,
        infra: Path | None = None,
        **config: Any,
    ) -> Skill:
        settings = skill_config(
            name,
            artifacts or (tmp_path / "artifacts").as_uri(),
            str(infra or tmp_path / "infra"),
        )
        settings.update(config)
        return Skill(name, make_skill_repo(tmp_path / "skills" / name, settings))

    return factory
