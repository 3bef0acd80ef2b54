"""The one outcome channel: every stage command is run and recorded by the stage runner.

Stages run as the real commands (``skillmaker build``, ``skillmaker cleanup``) or as small Python
commands standing in for a long stage; the runner is the real one, in its own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from skillmaker.context import RunPointer, load_skill
from skillmaker.locks import exclusive
from tests.skill_repos import Skill, SkillFactory


@pytest.fixture
def skill(make_skill: SkillFactory) -> Skill:
    made = make_skill()
    assert made.run("version").code == 0
    return made


def _run_json(skill: Skill) -> dict[str, object]:
    pointer = json.loads((skill.repo / ".skillmaker/current.json").read_text())
    path = skill.repo / f".skillmaker/runs/{pointer['skill_version']}/run.json"
    record: dict[str, object] = json.loads(path.read_text())
    return record


def test_a_stage_run_directly_records_its_outcome_once(skill: Skill) -> None:
    result = skill.run("cleanup")
    assert result.code == 0, result.err
    stages = _run_json(skill)["stages"]
    assert isinstance(stages, dict)
    assert stages["version"]["outcome"] == "passed"
    assert stages["cleanup"]["outcome"] == "passed"
    assert not list((skill.repo / ".skillmaker").rglob("*.skipped"))  # no marker files


def test_a_stage_that_skips_itself_is_recorded_as_skipped_with_why(
    skill: Skill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = skill.run("build")
    assert result.code == 0, result.err
    entry = _run_json(skill)["stages"]["build"]  # type: ignore[index]
    assert entry["outcome"] == "skipped"
    assert "Docker" in entry["message"] or "docker" in entry["message"]


def test_a_failed_stage_is_recorded_with_its_message_and_exit_2(skill: Skill) -> None:
    result = skill.run("gate")  # nothing measured yet: metrics.json is missing
    assert result.code == 2
    entry = _run_json(skill)["stages"]["gate"]  # type: ignore[index]
    assert entry["outcome"] == "failed"
    assert "metrics.json" in entry["message"]


def test_a_stage_run_directly_refuses_while_a_run_holds_the_skill(skill: Skill) -> None:
    with exclusive(skill.repo / ".skillmaker" / "lock", what="a run of skill digits"):
        result = skill.run("cleanup")
    assert result.code == 2
    assert "a run of skill digits is already running (pid" in result.err
    assert "Traceback" not in result.err


RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from skillmaker.context import load_skill
    from skillmaker.pipeline.runner import run_pipeline

    def argv_for(stage, repo, profile):
        return [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(120)"]

    run_pipeline(load_skill(Path(sys.argv[1])), start="train", until="train", argv_for=argv_for)
    """
)


def test_a_runner_killed_with_sigkill_leaves_no_stage_running(skill: Skill) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(skill.repo)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert runner.stdout is not None
    for line in runner.stdout:
        if "working" in line:
            break
    children = psutil.Process(runner.pid).children(recursive=True)
    assert children, "the stage should be running"
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after the runner died: {[p.pid for p in alive]}"
    assert gone


def test_a_stage_killed_under_the_runner_is_recorded_failed_by_the_runner(skill: Skill) -> None:
    from skillmaker.pipeline.runner import run_pipeline

    def argv_for(stage: object, repo: Path, profile: str | None) -> list[str]:
        return [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]

    ctx = load_skill(skill.repo)
    results = run_pipeline(ctx, start="train", until="train", argv_for=argv_for)
    assert [(r.stage, r.outcome) for r in results] == [("train", "failed")]
    assert results[0].exit_code == 1
    entry = _run_json(skill)["stages"]["train"]  # type: ignore[index]
    assert entry["outcome"] == "failed" and "killed by signal 9" in entry["message"]
    assert isinstance(ctx.current_run(), RunPointer)
