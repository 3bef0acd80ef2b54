"""The cascade definition: validation messages and routing rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillmaker.cascade.definition import (
    StackDefinition,
    check_labels,
    expected_path,
    load_stack_definition,
    next_step,
)
from skillmaker.errors import ProblemsError

CARS = StackDefinition.model_validate(
    json.loads(Path("infra/stack.json").read_text(encoding="utf-8"))
)
LABELS = {
    "car-detector": ["car", "no-car"],
    "car-make": ["porsche", "volkswagen", "fiat"],
    "porsche-911-variant": ["carrera", "targa"],
    "vw-golf-variant": ["gti", "tdi"],
}


def test_the_example_cascade_loads(tmp_path: Path) -> None:
    definition = load_stack_definition(Path("infra/stack.json"))
    assert [s.skill for s in definition.steps] == [
        "car-detector",
        "car-make",
        "porsche-911-variant",
        "vw-golf-variant",
    ]
    assert definition.step("porsche-911-variant").model == "candidate"
    assert check_labels(definition, LABELS) == []


def test_answers_route_to_the_step_that_takes_them() -> None:
    assert next_step(CARS, "car-detector", "car") == CARS.step("car-make")
    assert next_step(CARS, "car-detector", "no-car") is None
    assert next_step(CARS, "car-make", "volkswagen") == CARS.step("vw-golf-variant")
    assert next_step(CARS, "car-make", "fiat") is None


def test_the_expected_path_is_worked_out_from_the_final_answer() -> None:
    assert expected_path(CARS, LABELS, "targa") == {
        "porsche-911-variant": "targa",
        "car-make": "porsche",
        "car-detector": "car",
    }
    assert expected_path(CARS, LABELS, "fiat") == {"car-make": "fiat", "car-detector": "car"}
    assert expected_path(CARS, LABELS, "no-car") == {"car-detector": "no-car"}
    assert expected_path(CARS, LABELS, "porsche") is None  # porsche always goes on to its variant
    assert expected_path(CARS, LABELS, "bicycle") is None


def test_a_route_on_a_label_the_step_before_never_gives_is_named() -> None:
    labels = {**LABELS, "car-make": ["porsche", "vw"]}
    problems = check_labels(CARS, labels)
    assert [str(p) for p in problems] == [
        "steps[3].on: 'volkswagen' is not a class of 'car-make' (its classes: porsche, vw)"
    ]


A, B = {"skill": "a"}, {"skill": "b", "after": "a", "on": ["x"]}
BROKEN = [
    ([{**B, "skill": "a"}], "steps[0]: the first step sees every input"),
    ([A, {"skill": "b", "on": ["x"]}], "steps[1].after: is required"),
    ([A, {**B, "after": "c"}], "steps[1].after: 'c' is not an earlier step"),
    ([A, {"skill": "b", "after": "a"}], "steps[1].on: must list at least one label of 'a'"),
    ([A, {**B, "skill": "a"}], "steps[1].skill: 'a' is already steps[0]"),
    ([A, B, {**B, "skill": "c"}], "steps[2].on: 'x' of 'a' already routes to steps[1]"),
    ([{**A, "model": "latest"}], "steps[0].model: Input should be 'deployed' or 'candidate'"),
    ([{**A, "colour": "red"}], "steps[0].colour: is not a known key"),
    ([], "steps: List should have at least 1 item"),
]


@pytest.mark.parametrize(("steps", "message"), BROKEN)
def test_a_broken_cascade_is_refused_naming_the_key(
    tmp_path: Path, steps: list[object], message: str
) -> None:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"name": "cars", "steps": steps}), encoding="utf-8")
    with pytest.raises(ProblemsError) as caught:
        load_stack_definition(path)
    assert f"stack.json: {message}" in str(caught.value)
