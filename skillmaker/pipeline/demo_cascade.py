"""The demo's cascade: "is it 5 or more?" then "which digit", tested whole.

A second skill of the digits family answers ``low`` (0 to 4) or ``high`` (5 to 9); the infra repo's
``stack.json`` routes its ``high`` answers to the digits skill. Once the first step is deployed, the
next run of the digits skill runs the full-stack test with its candidate behind the deployed first
step, and its report shows the result.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from skillmaker.adapters import git
from skillmaker.records import STACK, StackRecord, read_record
from skillmaker.scaffold import new_skill

FIRST_STEP = "five-or-more"
CASCADE = "digits"
TEST_EVERY = 6
"""One image in this many goes into the full-stack test set."""

Run = TypeVar("Run")


def _band(digit: str) -> str:
    return "high" if int(digit) >= 5 else "low"


def write_family_data(digits: Path, data: Path, test_set: Path) -> tuple[int, int]:
    """Give the images written: the digits as ``low``/``high``, and the full-stack test set.

    The test set's folder is each input's final answer: ``low``, or the digit when it is 5 or more.
    """
    written = tested = 0
    for image in sorted(digits.glob("*/*/*.png")):
        digit, group = image.parent.parent.name, image.parent.name
        target = data / _band(digit) / group / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
        written += 1
        if int(image.stem) % TEST_EVERY == 0:
            answer = digit if _band(digit) == "high" else "low"
            case = test_set / answer / f"{group}-{image.name}"
            case.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, case)
            tested += 1
    return written, tested


def stack_definition(test_set: Path) -> dict[str, Any]:
    """Give the ``stack.json`` of the demo's cascade."""
    return {
        "name": CASCADE,
        "description": "Is it 5 or more? If so, which digit?",
        "test_set": test_set.as_uri(),
        "steps": [
            {"skill": FIRST_STEP, "model": "deployed"},
            {"skill": "digits", "after": FIRST_STEP, "on": ["high"], "model": "candidate"},
        ],
    }


def run_first_step(
    workdir: Path,
    digits_config: dict[str, Any],
    one_run: Callable[[Path, TextIO], Run],
    out: TextIO,
) -> Run:
    """Give the run of the first step, after stamping it from the digits skill's config."""
    store = workdir / "store" / "data"
    written, tested = write_family_data(
        store / "digits", store / FIRST_STEP, store / "full-stack" / CASCADE
    )
    print(f"demo: wrote {written} images as low/high and {tested} full-stack test inputs", file=out)
    raw = json.loads(json.dumps(digits_config))
    raw.update(name=FIRST_STEP, title="Is it 5 or more?", ticket="DEMO-2")
    raw["data"]["source"] = (store / FIRST_STEP).as_uri()
    config_path = workdir / f"{FIRST_STEP}.json"
    config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    repo = new_skill(config_path, workdir / FIRST_STEP)
    print(f"demo: stamped skill repo {repo} (first step of the cascade)", file=out)
    return one_run(repo, out)


def wire_cascade(workdir: Path, out: TextIO) -> None:
    """Write the cascade into the infra repo's ``stack.json`` and commit it."""
    infra = workdir / "infra"
    test_set = workdir / "store" / "data" / "full-stack" / CASCADE
    (infra / "stack.json").write_text(
        json.dumps(stack_definition(test_set), indent=2) + "\n", encoding="utf-8"
    )
    git.commit_all(infra, f"Cascade {CASCADE}: {FIRST_STEP}, then digits on high")
    print(f"demo: wired the cascade {CASCADE} into {infra / 'stack.json'}", file=out)


def stack_result(run_dir: Path) -> StackRecord | None:
    """Give the full-stack result of a run, or None when its stack test did not run."""
    path = run_dir / STACK
    return read_record(path) if path.is_file() else None


def describe(record: StackRecord | None) -> str:
    """Give one line saying how the cascade did."""
    if record is None:
        return "cascade: no full-stack result (the stack-test stage did not run)"
    steps = ", ".join(f"{step['skill']} {step['accuracy']:.1%}" for step in record["steps"])
    return (
        f"cascade {CASCADE}: {record['end_to_end_accuracy']:.1%} right end to end on "
        f"{record['inputs']} inputs (steps: {steps}); p95 {record['latency']['p95']:.0f} ms"
    )
