"""The pipeline's stages, defined once: Jenkins and ``skillmaker run`` both read this list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Agent = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its name, the agent it needs and the command that runs it."""

    name: str
    agent: Agent
    argv: tuple[str, ...]
    summary: str
    always: bool = False
    """Runs whatever happened before (Jenkins ``post { always }``)."""

    @property
    def command(self) -> str:
        """Give the shell command of the stage, as Jenkins runs it."""
        return " ".join(("skillmaker", *self.argv))


STAGES: tuple[Stage, ...] = (
    Stage("version", "cpu", ("version",), "allocate the next skill version; record the commit"),
    Stage("build", "cpu", ("build",), "build the CPU and GPU images"),
    Stage("data", "cpu", ("data", "pull"), "pull, audit, split and cache the images"),
    Stage("train", "gpu", ("train",), "train the candidate model"),
    Stage("evaluate", "cpu", ("evaluate",), "test candidate and baseline on held-out data"),
    Stage("stack-test", "cpu", ("stack-test",), "test the whole cascade of skills"),
    Stage("report", "cpu", ("report",), "render the PDF model report"),
    Stage("gate", "cpu", ("gate",), "compare the candidate with the deployed model"),
    Stage("deploy", "cpu", ("deploy",), "update the infra template and the stack"),
    Stage("notify", "cpu", ("notify",), "tell Slack and the reviewers", always=True),
    Stage(
        "cleanup", "cpu", ("cleanup",), "delete the run's local data (the caches stay)", always=True
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    """Give the stage of that name."""
    for item in STAGES:
        if item.name == name:
            return item
    raise KeyError(name)


def stages_between(start: str | None, until: str | None) -> tuple[Stage, ...]:
    """Give the stages from ``start`` to ``until``, both included, in pipeline order."""
    first = STAGE_NAMES.index(start) if start else 0
    last = STAGE_NAMES.index(until) if until else len(STAGES) - 1
    return STAGES[first : last + 1]
