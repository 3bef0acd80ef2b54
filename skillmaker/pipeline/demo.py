"""``skillmaker demo``: the whole pipeline on scikit-learn's bundled digits, on embedded defaults.

It writes the digits into a ``file://`` store in the folders layout, makes a local infra repo,
stamps a skill from ``examples/digits.json``, runs every stage (Docker stages skipped with a
notice when no engine answers), deploys a first version, then runs a second version with a
changed config so the gate compares two models. On the demo's test set (about 300 images) the gate
cannot show a second model to be within the 1-point accuracy tolerance, so the demo ends with one
version deployed and the other rejected or inconclusive, says why, and prints the override command
and where everything is.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
from PIL import Image

from skillmaker.adapters import git
from skillmaker.context import load_skill
from skillmaker.domain.records import GateRecord
from skillmaker.domain.verdict import GateDecision
from skillmaker.errors import UserError
from skillmaker.pipeline import demo_cascade
from skillmaker.pipeline.demo_cascade import FIRST_STEP
from skillmaker.pipeline.runner import StageRun, exit_code_of, print_summary, run_pipeline
from skillmaker.records import GATE, read_record
from skillmaker.resources import examples_dir, infra_dir
from skillmaker.scaffold import new_skill


@dataclass(frozen=True)
class DemoRun:
    """One pipeline run of the demo: its version, stage results and gate decision."""

    version: int
    results: list[StageRun]
    gate: dict[str, Any] | None


def write_digits(root: Path) -> int:
    """Give the number of images written: scikit-learn's digits as PNGs, one group per image."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("the demo needs scikit-learn: pip install 'skillmaker[demo]'") from None
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    for index, (pixels, label) in enumerate(zip(images, digits.target, strict=True)):
        folder = root / str(int(label)) / f"writer-{index:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:05d}.png")
    return len(images)


def make_infra_repo(path: Path) -> None:
    """Make the local infra git repository holding the CloudFormation template of the skills."""
    path.mkdir(parents=True)
    for item in infra_dir().iterdir():
        if item.is_file():
            shutil.copyfile(item, path / item.name)
    git.init_and_commit(path, "Infrastructure of the skills")


def _config(workdir: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((examples_dir() / "digits.json").read_text(encoding="utf-8"))
    raw["data"]["source"] = (workdir / "store" / "data" / "digits").as_uri()
    raw["deploy"]["artifacts"] = (workdir / "store" / "artifacts").as_uri()
    raw["deploy"]["infra_repo"] = str(workdir / "infra")
    return raw


def _one_run(repo: Path, out: TextIO) -> DemoRun:
    # GPU base images are large and need a GPU to be useful: the demo builds the CPU image only.
    env = {"SKILLMAKER_BUILD_FLAVORS": "cpu", **os.environ}
    ctx = load_skill(repo, env=env, out=out)
    results = run_pipeline(ctx)
    print_summary(results, out)
    version = ctx.current_run().skill_version
    gate_file = ctx.workspace.run_dir(version) / GATE
    gate = read_record(gate_file) if gate_file.is_file() else None
    code = exit_code_of(results)
    if code not in (0, 3):
        failed = next(r.stage for r in results if r.exit_code == code)
        log = ctx.workspace.run_dir(version) / "logs" / f"{failed}.log"
        raise UserError(f"demo: stage {failed} of version {version} failed; see {log}")
    return DemoRun(version, results, gate)


def _decision(run: DemoRun) -> str:
    """Give a run's gate verdict in words, with the reason of each rule that did not pass."""
    if run.gate is None:
        return "no gate decision"
    decision = GateDecision.from_record(cast(GateRecord, run.gate))
    if decision.passed:
        deployed = any(r.stage == "deploy" and r.outcome == "passed" for r in run.results)
        return f"gate {decision.summary()}, {'deployed' if deployed else 'not deployed'}"
    reasons = "; ".join(f"{r.name}: {r.reason}" for r in decision.failed_rules)
    return f"gate {decision.verdict}, not deployed ({reasons})"


def run_demo(workdir: Path, out: TextIO) -> list[DemoRun]:
    """Give the two runs of the demo after running them in ``workdir`` (made anew)."""
    started = time.monotonic()
    workdir = workdir.absolute()
    marker = workdir / ".skillmaker-demo"
    if workdir.exists() and any(workdir.iterdir()):
        if not marker.is_file():
            raise UserError(
                f"--workdir: {workdir} is not empty and is not an earlier demo's folder"
            )
        shutil.rmtree(workdir)  # an earlier demo's folder: start afresh
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by skillmaker demo\n", encoding="utf-8")
    count = write_digits(workdir / "store" / "data" / "digits")
    print(
        f"demo: wrote {count} digit images to {(workdir / 'store' / 'data' / 'digits').as_uri()}",
        file=out,
    )
    make_infra_repo(workdir / "infra")
    config_path = workdir / "digits.json"
    raw = _config(workdir)
    config_path.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    repo = new_skill(config_path, workdir / "skill")
    print(f"demo: stamped skill repo {repo}", file=out)

    runs = [_one_run(repo, out)]
    # The cascade: a first step ("is it 5 or more?") deployed, then wired before version 2.
    first_step = demo_cascade.run_first_step(workdir, raw, _one_run, out)
    demo_cascade.wire_cascade(workdir, out)
    # A second version with a changed network, so the gate compares two real models.
    raw["model"]["filters"] = [24, 48]
    raw["model"]["dense_units"] = 96
    stamped = json.loads((repo / "skill.json").read_text(encoding="utf-8"))
    stamped["model"].update({"filters": [24, 48], "dense_units": 96})
    (repo / "skill.json").write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
    git.commit_all(repo, "Wider small_cnn for version 2")
    runs.append(_one_run(repo, out))

    artifacts = workdir / "store" / "artifacts" / "skills" / "digits"
    print("\ndemo: done", file=out)
    for run in runs:
        report = artifacts / "runs" / str(run.version) / "report.pdf"
        print(f"  version {run.version}: {_decision(run)}; report {report}", file=out)
    print(f"  {FIRST_STEP} version {first_step.version}: gate {_decision(first_step)}", file=out)
    stack = demo_cascade.stack_result(artifacts / "runs" / str(runs[-1].version))
    print("  " + demo_cascade.describe(stack), file=out)
    blocked = [run for run in runs if run.gate is not None and not run.gate["passed"]]
    for run in blocked:
        print(
            f"  version {run.version} was not deployed; to ship it anyway, knowingly "
            "(recorded with who and why):\n"
            f'    skillmaker gate --repo {repo} --accept-regression --reason "why it is acceptable"'
            f"\n    skillmaker deploy --repo {repo}",
            file=out,
        )
    print(f"  registry: {artifacts / 'registry.json'}", file=out)
    print(f"  outbox:   {repo / '.skillmaker' / 'outbox'}", file=out)
    print(f"  infra:    {workdir / 'infra'} (git log shows the deploy commits)", file=out)
    print(f"  wall time: {time.monotonic() - started:.0f} s", file=out)
    return runs
