"""``skillmaker run --isolated``: the Jenkinsfile's contract replayed on real digits.

Every stage runs in a fresh ``git clone`` holding only what the Jenkinsfile unstashes, the cpu and
gpu "agents" keep separate data caches, and ``post`` runs in a fresh clone too. If a stage needed
a file another agent made and the store does not hold, these runs fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from skillmaker.adapters import git
from skillmaker.config import load_config
from skillmaker.domain.ci import all_stashes, ci_stages
from skillmaker.pipeline.demo import make_infra_repo, write_digits
from skillmaker.pipeline.isolated import IsolatedRun, Override, run_isolated
from skillmaker.resources import examples_dir
from skillmaker.scaffold import new_skill

MAIN = ["version", "build", "data", "train", "evaluate", "stack-test", "report", "gate", "deploy"]


def _config(root: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((examples_dir() / "digits.json").read_text())
    raw["data"]["source"] = (root / "data" / "digits").as_uri()
    raw["deploy"]["artifacts"] = (root / "artifacts").as_uri()
    raw["deploy"]["infra_repo"] = str(root / "infra")
    raw["train"]["epochs"] = 8
    raw["ci"] = {"profiles": {"gpu": "laptop"}}
    return raw


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DOCKER_HOST": f"unix://{root}/no-engine.sock",  # no engine: build skips itself
        "MPLCONFIGDIR": str(root / "mpl"),
        "USER": "ci",
    }


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isolated")
    write_digits(root / "data" / "digits")
    make_infra_repo(root / "infra")
    (root / "digits.json").write_text(json.dumps(_config(root)))
    new_skill(root / "digits.json", root / "skill")
    return root


@pytest.fixture(scope="module")
def first(digits: Path) -> Iterator[tuple[IsolatedRun, str]]:
    out = io.StringIO()
    config = load_config(digits / "skill" / "skill.json").config
    run = run_isolated(digits / "skill", config, workdir=digits / "ci-1", out=out, env=_env(digits))
    yield run, out.getvalue()


def _outcomes(run: IsolatedRun) -> dict[str, str]:
    return {r.stage: r.outcome for r in run.results}


def test_a_digits_skill_goes_through_deploy_stage_by_stage(
    first: tuple[IsolatedRun, str], digits: Path
) -> None:
    run, out = first
    outcomes = _outcomes(run)
    assert [r.stage for r in run.results] == [*MAIN, "notify", "cleanup"], out[-3000:]
    assert outcomes.pop("build") == "skipped", "no Docker engine answers here"
    assert outcomes.pop("stack-test") == "skipped", "digits is in no cascade"
    assert set(outcomes.values()) == {"passed"}, out[-3000:]
    assert run.build_result == "SUCCESS"
    registry = json.loads((digits / "artifacts/skills/digits/registry.json").read_text())
    assert registry["deployed"]["skill_version"] == 1
    assert registry["deployed"]["image_tag"] in (digits / "infra" / "skills.yaml").read_text()
    stored = json.loads((digits / "artifacts/skills/digits/runs/1/run.json").read_text())
    assert stored["stages"]["deploy"]["outcome"] == "passed"
    assert stored["stages"]["build"]["outcome"] == "skipped"


def test_train_used_the_profile_of_the_gpu_label(
    first: tuple[IsolatedRun, str], digits: Path
) -> None:
    train = json.loads((digits / "artifacts/skills/digits/runs/1/train.json").read_text())
    assert train["profile"] == "laptop"


def test_each_agent_pulled_its_own_data_and_stashes_stay_small(
    first: tuple[IsolatedRun, str],
) -> None:
    run, _ = first
    for label in ("cpu", "gpu"):
        raw = run.workdir / "agents" / label / "cache" / "raw"
        assert any(raw.rglob("*")), f"the {label} agent pulled the images itself"
    stashed = sorted(
        p.relative_to(run.workdir / "stashes").as_posix()
        for p in (run.workdir / "stashes").rglob("*")
        if p.is_file()
    )
    assert stashed == [
        "junit-evaluate/.skillmaker/runs/1/junit/evaluate.xml",
        "junit-stack-test/.skillmaker/runs/1/junit/stack-test.xml",
        "report/.skillmaker/runs/1/report.pdf",
        "run/.skillmaker/current.json",
    ]
    assert not (run.workdir / "workspaces" / "train").exists(), "stage workspaces are removed"


def test_post_publishes_junit_and_this_runs_pdf_and_notifies(
    first: tuple[IsolatedRun, str],
) -> None:
    run, _ = first
    names = [p.name for p in run.junit]
    assert names == ["evaluate.xml", "stack-test.xml"]
    evaluate = ElementTree.parse(run.junit[0]).getroot().find("testsuite")
    assert evaluate is not None
    cases = [str(c.get("name")) for c in evaluate.findall("testcase")]
    assert cases[:2] == ["accuracy", "served every test image"]
    assert sorted(cases[2:]) == [f"class {d}" for d in range(10)]
    assert evaluate.get("failures") == "0"
    stack = ElementTree.parse(run.junit[1]).getroot().find("testsuite")
    assert stack is not None and stack.get("skipped") == "1"
    assert [p.name for p in run.archived] == ["report.pdf"]
    assert run.archived[0].parent.name == "1"
    outbox = run.post_workspace / ".skillmaker" / "outbox" / "1"
    slack = json.loads((outbox / "slack.json").read_text())
    assert "v1: passed the gate and deployed" in json.dumps(slack)
    assert (outbox / "email.eml").is_file()


def test_a_rejection_is_unstable_and_an_override_deploys_it(
    first: tuple[IsolatedRun, str], digits: Path
) -> None:
    repo = digits / "skill"
    stamped = json.loads((repo / "skill.json").read_text())
    # No tolerance at all: the paired test cannot show a second, smaller model is no worse.
    stamped["gate"].update({"accuracy_tolerance": 0.0, "max_class_drop": 0.0})
    stamped["model"].update({"filters": [4, 8], "dense_units": 8})
    (repo / "skill.json").write_text(json.dumps(stamped, indent=2) + "\n")
    git.commit_all(repo, "A smaller network with no tolerance")
    config = load_config(repo / "skill.json").config
    out = io.StringIO()
    run = run_isolated(
        repo,
        config,
        workdir=digits / "ci-2",
        out=out,
        env=_env(digits),
        override=Override("alice", "smaller model for the edge devices"),
    )
    outcomes = _outcomes(run)
    assert outcomes["gate"] == "rejected", out.getvalue()[-3000:]
    assert outcomes["override"] == "passed" and outcomes["deploy"] == "passed"
    assert run.build_result == "UNSTABLE"
    gate = json.loads((digits / "artifacts/skills/digits/runs/2/gate.json").read_text())
    assert gate["passed"] and gate["override"]["by"] == "alice"
    assert gate["override"]["reason"] == "smaller model for the edge devices"
    registry = json.loads((digits / "artifacts/skills/digits/registry.json").read_text())
    assert registry["deployed"]["skill_version"] == 2


def test_a_failing_version_stage_still_notifies(tmp_path: Path) -> None:
    config = json.loads((examples_dir() / "digits.json").read_text())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be\n")
    config["deploy"]["artifacts"] = (blocker / "artifacts").as_uri()
    (tmp_path / "digits.json").write_text(json.dumps(config))
    repo = new_skill(tmp_path / "digits.json", tmp_path / "skill")
    workdir = tmp_path / "ci"
    done = subprocess.run(
        [sys.executable, "-m", "skillmaker", "run", "--isolated", "--workdir", str(workdir)],
        cwd=repo,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode not in (0, 3), done.stdout + done.stderr
    assert "build result: FAILURE" in done.stdout
    assert re.search(r"^version\s+failed", done.stdout, re.MULTILINE)
    assert re.search(r"^notify\s+passed", done.stdout, re.MULTILINE), done.stdout
    outbox = workdir / "workspaces" / "post" / ".skillmaker" / "outbox" / "0"
    message = (outbox / "email.eml").read_text()
    assert "no version: failed at version" in message
    assert "FAILURE" in message


def test_the_jenkinsfile_stashes_what_the_replay_stashes(digits: Path) -> None:
    config = load_config(digits / "skill" / "skill.json").config
    text = (digits / "skill" / "Jenkinsfile").read_text()
    rendered = re.findall(r"stash name: '([^']+)', includes: '([^']+)'", text)
    assert rendered == [(s.name, ", ".join(s.includes)) for s in all_stashes(config)]
    unstashed = re.findall(r"^\s+unstash '([^']+)'", text, re.MULTILINE)
    per_stage = [u.name for s in ci_stages(config) for u in s.unstash]
    assert unstashed[: len(per_stage)] == per_stage
    assert "models" not in " ".join(i for _, i in rendered) and "train-state" not in text
