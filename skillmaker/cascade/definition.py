"""The cascade definition (``infra/stack.json``) and its routing rules, as pure functions.

A cascade is a tree of steps. The first step sees every input; every other step names the step it
comes ``after`` and the labels of that step it takes (``on``). An input's final answer is the label
of the last step it reached: the one whose answer routes to no further step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skillmaker.config.load import read_json_file
from skillmaker.errors import Problem, ProblemsError


class StackStep(BaseModel):
    """One step of the cascade: a skill, which of its models runs, and what routes inputs to it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    skill: str = Field(min_length=1)
    """The skill (its name, as in its skill.json)."""
    after: str | None = None
    """The step whose answer routes inputs here (none for the first step)."""
    on: list[str] = Field(default_factory=list)
    """Labels of the ``after`` step that send an input here."""
    model: Literal["deployed", "candidate"] = "deployed"
    """Which model of the skill runs: the deployed one, or the candidate of the run under test."""
    image: str | None = None
    """Container image to run instead of a model folder (Docker launchers only)."""


class StackDefinition(BaseModel):
    """A cascade of skills tested together by the full-stack test."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Name of the cascade (lowercase letters, digits, hyphens); the store keeps its last result."""
    description: str = ""
    """What the cascade answers, for people."""
    steps: list[StackStep] = Field(min_length=1)
    """The steps; the first sees every input, each other one comes after an earlier step."""
    test_set: str | None = None
    """URI of the full-stack test set (``s3://…`` or ``file:///…``): ``<final answer>/…/<file>``."""

    def step(self, skill: str) -> StackStep:
        """Give the step of a skill."""
        for item in self.steps:
            if item.skill == skill:
                return item
        raise KeyError(skill)

    @property
    def root(self) -> StackStep:
        """Give the step every input starts at."""
        return self.steps[0]


def check_definition(definition: StackDefinition) -> list[Problem]:
    """Give what is wrong with the shape of a cascade (order, references, overlapping routes)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    routes: dict[tuple[str, str], int] = {}
    for index, step in enumerate(definition.steps):
        where = f"steps[{index}]"
        if step.skill in seen:
            problems.append(
                Problem(f"{where}.skill", f"{step.skill!r} is already steps[{seen[step.skill]}]")
            )
        if index == 0:
            if step.after is not None or step.on:
                problems.append(Problem(where, "the first step sees every input: no after or on"))
        elif step.after is None:
            problems.append(
                Problem(f"{where}.after", "is required (the step whose answer routes here)")
            )
        elif step.after not in seen:
            problems.append(Problem(f"{where}.after", f"{step.after!r} is not an earlier step"))
        elif not step.on:
            problems.append(
                Problem(f"{where}.on", f"must list at least one label of {step.after!r}")
            )
        for label in step.on:
            key = (step.after or "", label)
            if key in routes:
                problems.append(
                    Problem(
                        f"{where}.on",
                        f"{label!r} of {step.after!r} already routes to steps[{routes[key]}]",
                    )
                )
            routes[key] = index
        seen.setdefault(step.skill, index)
    return problems


def load_stack_definition(path: Path) -> StackDefinition:
    """Give the validated cascade of a ``stack.json`` file, or every problem with its key path."""
    label = path.name
    raw = read_json_file(path, label)
    try:
        definition = StackDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]
            ).lstrip(".")
            message = "is not a known key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(Problem(f"{label}: {where or '(top level)'}", message))
        raise ProblemsError(problems) from None
    problems = [Problem(f"{label}: {p.where}", p.message) for p in check_definition(definition)]
    if problems:
        raise ProblemsError(problems)
    return definition


def next_step(definition: StackDefinition, skill: str, label: str) -> StackStep | None:
    """Give the step an answer ``label`` of ``skill`` routes to, or None when it is final."""
    for step in definition.steps:
        if step.after == skill and label in step.on:
            return step
    return None


def check_labels(definition: StackDefinition, labels: Mapping[str, Sequence[str]]) -> list[Problem]:
    """Give the routes that name a label the step before never answers."""
    problems: list[Problem] = []
    for index, step in enumerate(definition.steps):
        if step.after is None:
            continue
        known = labels.get(step.after, ())
        for label in step.on:
            if label not in known:
                problems.append(
                    Problem(
                        f"steps[{index}].on",
                        f"{label!r} is not a class of {step.after!r} "
                        f"(its classes: {', '.join(known)})",
                    )
                )
    return problems


def expected_path(
    definition: StackDefinition, labels: Mapping[str, Sequence[str]], answer: str
) -> dict[str, str] | None:
    """Give the label each step should answer for an input whose final answer is ``answer``.

    The final step is the one step that can answer ``answer`` without routing it further; each
    step above it is expected to answer the label that routes there (when only one label does).
    Gives None when no step, or more than one, can give that final answer.
    """
    finals = [
        step
        for step in definition.steps
        if answer in labels.get(step.skill, ())
        and next_step(definition, step.skill, answer) is None
    ]
    if len(finals) != 1:
        return None
    path = {finals[0].skill: answer}
    step = finals[0]
    while step.after is not None:
        if len(step.on) == 1:
            path[step.after] = step.on[0]
        step = definition.step(step.after)
    return path
