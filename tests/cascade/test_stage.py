"""The stack-test stage: finds the skill's cascade in the infra repo, serves the candidate with the
other skills' deployed models, runs the full-stack test set from the store, keeps the last result."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from skillmaker.adapters.git import init_and_commit
from skillmaker.adapters.store import open_store
from skillmaker.cascade.runner import StackCase
from skillmaker.cascade.stage import stack_test_stage
from skillmaker.context import RunPointer, load_skill
from skillmaker.domain.layout import run_key, stack_key
from skillmaker.domain.outcome import Outcome
from skillmaker.evaluation.launch import LocalProcessLauncher
from skillmaker.records import LABELS, MODEL
from skillmaker.registry import allocate_version, mark_deployed
from skillmaker.scaffold import new_skill
from tests.cascade.test_runner import CASCADE, cascade_bundles, cases

__all__ = ["cascade_bundles", "cases"]  # shared module fixtures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _skill(tmp_path: Path, name: str, infra: Path) -> Path:
    config = json.loads((EXAMPLES / "digits.json").read_text())
    config["name"] = name
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    config["deploy"]["infra_repo"] = str(infra)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return new_skill(path, tmp_path / name)


def test_the_cascade_runs_with_the_candidate_and_the_deployed_skills(
    tmp_path: Path,
    cascade_bundles: dict[str, Path],
    cases: list[StackCase],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    test_set = tmp_path / "full-stack"
    for case in cases:
        folder = test_set / case.answer
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case.path, folder / case.key.replace("/", "-"))
    infra = tmp_path / "infra"
    infra.mkdir()
    stack = json.loads(CASCADE.model_dump_json()) | {"test_set": test_set.as_uri()}
    (infra / "stack.json").write_text(json.dumps(stack))
    (infra / "skills.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n")
    init_and_commit(infra, "infra")

    store = open_store((tmp_path / "artifacts").as_uri())
    for skill in ("detector", "size"):
        stamp = json.loads((cascade_bundles[skill] / "stamp.json").read_text())
        version = 0
        while version < stamp["skill_version"]:
            version = allocate_version(store, skill, stamp["code_version"])
        for name in (MODEL, LABELS, "stamp.json"):
            store.upload(cascade_bundles[skill] / name, run_key(skill, version, name))
        mark_deployed(
            store,
            skill,
            skill_version=version,
            code_version=stamp["code_version"],
            image_tag=f"{version}-{stamp['code_version'][:6]}-cpu",
            gate="passed",
            infra_commit=None,
        )

    repo = _skill(tmp_path, "low-digit", infra)
    ctx = load_skill(repo, out=io.StringIO())
    stamp = json.loads((cascade_bundles["low-digit"] / "stamp.json").read_text())
    ctx.set_current_run(RunPointer(stamp["skill_version"], stamp["code_version"]))
    for name in (MODEL, LABELS, "stamp.json"):
        shutil.copyfile(cascade_bundles["low-digit"] / name, ctx.run_dir() / name)

    record = stack_test_stage(ctx, launcher=LocalProcessLauncher())
    assert not isinstance(record, Outcome)
    assert record["inputs"] == len(cases)
    assert {s["skill"] for s in record["steps"]} == {"detector", "size", "low-digit"}
    assert record["previous_end_to_end_accuracy"] is None
    last = json.loads(store.get_bytes(stack_key(CASCADE.name)))
    assert last["end_to_end_accuracy"] == record["end_to_end_accuracy"]
    again = stack_test_stage(ctx, launcher=LocalProcessLauncher())
    assert not isinstance(again, Outcome)
    assert again["previous_end_to_end_accuracy"] == record["end_to_end_accuracy"]


def test_a_skill_in_no_cascade_skips_with_a_reason(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "stack.json").write_text(json.dumps(json.loads(CASCADE.model_dump_json())))
    (infra / "skills.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\n")
    init_and_commit(infra, "infra")
    ctx = load_skill(_skill(tmp_path, "digits", infra), out=io.StringIO())
    ctx.set_current_run(RunPointer(1, "a" * 40))
    outcome = stack_test_stage(ctx)
    assert isinstance(outcome, Outcome) and outcome.kind == "skipped"
    assert "skill digits is in no cascade" in outcome.message
