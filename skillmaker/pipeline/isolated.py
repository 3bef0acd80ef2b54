"""``skillmaker run --isolated``: replay the Jenkinsfile's contract on this machine.

Each stage of ``pipeline.jenkins.ci_stages`` (the list the Jenkinsfile is rendered from) runs in
a fresh ``git clone`` of the skill repo holding only what the Jenkinsfile unstashes, with an agent
cache per label (so the cpu and gpu "agents" share nothing but the store), under the stage's CI
timeout, judged by its exit code (0 passed, 3 rejected, else failed). Its stash is taken as
Jenkins takes it. The ``post`` steps run in a fresh clone too: unstash what exists, collect the
JUnit XML and the report PDF, notify with the build result, clean up.

What cannot be had here is said, not faked: stages marked ``image`` run with this machine's
Python instead of inside the skill's image, and the ``input`` step is answered by
``--accept-regression --reason`` given up front.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from skillmaker.adapters import git
from skillmaker.config import SkillConfig
from skillmaker.context import CACHE_ENV
from skillmaker.domain.ci import (
    AGENT_SCRIPT,
    APPROVER_VARIABLE,
    JUNIT_GLOB,
    OVERRIDE_COMMAND,
    REPORT_GLOB,
    RUN_STASH,
    CiStage,
    Stash,
    all_stashes,
    ci_stages,
    post_args,
    post_stages,
    release_branch,
    timeout_minutes,
)
from skillmaker.domain.layout import Workspace
from skillmaker.domain.stages import Agent
from skillmaker.errors import ExitCode, UserError
from skillmaker.pipeline.runner import StageRun
from skillmaker.records import RUN, read_record

BuildResult = str
"""Jenkins' words: SUCCESS, UNSTABLE, FAILURE, ABORTED."""


@dataclass(frozen=True)
class Override:
    """A person's answer to the gate's ``input`` step: who accepted the rejection, and why."""

    approver: str
    reason: str


@dataclass(frozen=True)
class IsolatedRun:
    """How a replay ended: each stage, the build result, and what ``post`` published."""

    results: list[StageRun]
    build_result: BuildResult
    workdir: Path
    post_workspace: Path
    junit: tuple[Path, ...]
    archived: tuple[Path, ...]


def _outcome(code: int) -> str:
    if code == ExitCode.OK:
        return "passed"
    return "rejected" if code == ExitCode.GATE_REJECTED else "failed"


@dataclass(frozen=True)
class _Agents:
    """The pretend agents: one cache folder per label, the stashes, the logs."""

    workdir: Path
    env: Mapping[str, str]
    python: str
    out: TextIO

    def env_for(self, label: Agent, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        agent = self.workdir / "agents" / label
        return {
            **self.env,
            "SKILLMAKER_AGENT_CACHE": str(agent),
            CACHE_ENV: str(agent / "cache"),
            "SKILLMAKER_PYTHON": self.python,
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }

    def checkout(self, repo: Path, name: str) -> Path:
        """Give a fresh clone of the repo for one stage (Jenkins: ``checkout scm``)."""
        clone = self.workdir / "workspaces" / name
        shutil.rmtree(clone, ignore_errors=True)
        clone.parent.mkdir(parents=True, exist_ok=True)
        git.clone(str(repo), clone)
        return clone

    def stash(self, stash: Stash, clone: Path) -> None:
        """Keep the files of a stash, replacing an older stash of that name."""
        folder = self.workdir / "stashes" / stash.name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for pattern in stash.includes:
            for path in clone.glob(pattern):
                if path.is_file():
                    target = folder / path.relative_to(clone)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)

    def unstash(self, stash: Stash, clone: Path) -> bool:
        """Copy a stash into a workspace; False when no stage made it."""
        folder = self.workdir / "stashes" / stash.name
        if not folder.is_dir():
            return False
        shutil.copytree(folder, clone, dirs_exist_ok=True)
        return True

    def sh(
        self, name: str, argv: Sequence[str], cwd: Path, env: Mapping[str, str], minutes: int
    ) -> int:
        """Give the exit code of a step, its output logged and echoed; killed at its timeout."""
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            assert process.stdout is not None
            deadline = time.monotonic() + minutes * 60
            for line in process.stdout:
                handle.write(line)
                print(f"[{name}] {line.rstrip()}", file=self.out, flush=True)
                if time.monotonic() > deadline:
                    break
            try:
                return process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                print(f"[{name}] timed out after {minutes} min", file=self.out, flush=True)
                return 124


def _stage_argv(agents: _Agents, item: CiStage) -> list[str]:
    if item.runs_in == "image":
        # The skill's image has skillmaker on PATH; here this machine's Python stands in for it.
        return [agents.python, "-m", "skillmaker", *item.args()]
    return ["sh", AGENT_SCRIPT, *item.args()]


def run_isolated(
    repo: Path,
    config: SkillConfig,
    *,
    workdir: Path,
    out: TextIO,
    env: Mapping[str, str] | None = None,
    branch: str | None = None,
    override: Override | None = None,
    python: str = sys.executable,
) -> IsolatedRun:
    """Give how the pipeline ended after replaying the Jenkinsfile's contract stage by stage."""
    repo = repo.absolute()
    if not git.is_repo(repo) or not git.has_commit(repo):
        raise UserError(f"{repo}: --isolated clones the skill repo, which needs a git commit")
    if git.is_dirty(repo):
        out.write("note: uncommitted changes are not in the clones (as in CI: push them first)\n")
    branch = branch or git.current_branch(repo)
    release = release_branch(config)
    workdir = workdir.absolute()
    agents = _Agents(workdir, dict(os.environ if env is None else env), python, out)
    results: list[StageRun] = []
    result: BuildResult = "SUCCESS"
    stopped = False
    for item in ci_stages(config):
        if stopped:
            break
        if item.release_only and branch != release:
            print(f"== {item.name}: skipped (branch {branch}, releases from {release})", file=out)
            results.append(StageRun(item.name, "skipped", 0.0, ExitCode.OK))
            continue
        results.append(_run_stage(agents, repo, item))
        code = results[-1].exit_code
        if code == ExitCode.GATE_REJECTED and item.name == "gate":
            result = "UNSTABLE"
            if override is None or branch != release:
                why = "nobody accepted it" if branch == release else f"{branch} does not deploy"
                print(f"== override: skipped ({why}); the build ends UNSTABLE", file=out)
                stopped = True
                continue
            results.append(_override(agents, repo, config, override))
            if results[-1].exit_code != ExitCode.OK:
                result, stopped = "FAILURE", True
        elif code != ExitCode.OK:
            result = "ABORTED" if code == 124 else "FAILURE"
            stopped = True
    post, junit, archived = _post(agents, repo, config, result, results)
    return IsolatedRun(results, result, workdir, post, junit, archived)


def _run_stage(agents: _Agents, repo: Path, item: CiStage) -> StageRun:
    """Give how a stage ended in a fresh clone with only what it unstashes."""
    print(f"== {item.name} on a fresh {item.label} workspace ({item.runs_in})", file=agents.out)
    started = time.monotonic()
    clone = agents.checkout(repo, item.name)
    for stash in item.unstash:
        if not agents.unstash(stash, clone):
            raise UserError(f"stage {item.name}: no stash {stash.name!r} (Jenkins would fail)")
    env = agents.env_for(item.label)
    code = agents.sh(item.name, _stage_argv(agents, item), clone, env, item.timeout_minutes)
    if code == ExitCode.OK and item.name == "build":
        code = _image_refs(agents, item, clone)
    if code == ExitCode.OK and item.stash is not None:
        agents.stash(item.stash, clone)
    outcome = _outcome(code)
    if code == ExitCode.OK and _skipped(clone, item.name):
        outcome = "skipped"  # e.g. build when no Docker engine answers
    shutil.rmtree(clone, ignore_errors=True)  # Jenkins: the stage's post { cleanup }
    return StageRun(item.name, outcome, time.monotonic() - started, code)


def _skipped(clone: Path, name: str) -> bool:
    """Say whether the stage recorded itself as skipped in the clone's run.json."""
    workspace = Workspace(clone)
    if not workspace.current.is_file():
        return False
    version = int(json.loads(workspace.current.read_text(encoding="utf-8"))["skill_version"])
    run = workspace.run_dir(version) / RUN
    if not run.is_file():
        return False
    entry = read_record(run)["stages"].get(name)
    return entry is not None and entry["outcome"] == "skipped"


def _image_refs(agents: _Agents, item: CiStage, clone: Path) -> int:
    """Ask for the runtime images later stages run in, as the build stage does in Jenkins."""
    for flavor in ("cpu", "gpu"):
        argv = ["sh", AGENT_SCRIPT, "image", "--flavor", flavor]
        code = agents.sh(item.name, argv, clone, agents.env_for(item.label), item.timeout_minutes)
        if code != ExitCode.OK:
            return code
    return ExitCode.OK


def _override(agents: _Agents, repo: Path, config: SkillConfig, override: Override) -> StageRun:
    started = time.monotonic()
    print(f"== override: {override.approver} accepts the rejection", file=agents.out)
    clone = agents.checkout(repo, "override")
    agents.unstash(RUN_STASH, clone)
    env = agents.env_for("cpu", {APPROVER_VARIABLE: override.approver})
    argv = [agents.python, "-m", *OVERRIDE_COMMAND, "--reason", override.reason]
    code = agents.sh("override", argv, clone, env, timeout_minutes(config, "override"))
    shutil.rmtree(clone, ignore_errors=True)
    return StageRun("override", _outcome(code), time.monotonic() - started, code)


def _post(
    agents: _Agents,
    repo: Path,
    config: SkillConfig,
    result: BuildResult,
    results: list[StageRun],
) -> tuple[Path, tuple[Path, ...], tuple[Path, ...]]:
    print(f"== post (build {result}) on a fresh cpu workspace", file=agents.out)
    clone = agents.checkout(repo, "post")
    for stash in all_stashes(config):
        if not agents.unstash(stash, clone):
            print(f"post: no stash {stash.name}: its stage did not run", file=agents.out)
    junit = tuple(sorted(clone.glob(JUNIT_GLOB)))
    archive = agents.workdir / "archive"
    archived: list[Path] = []
    for path in sorted(clone.glob(REPORT_GLOB)):
        target = archive / path.relative_to(clone)
        target.parent.mkdir(parents=True, exist_ok=True)
        archived.append(Path(shutil.copy2(path, target)))
    env = agents.env_for("cpu")
    for stage in post_stages():
        started = time.monotonic()
        argv = ["sh", AGENT_SCRIPT, *post_args(stage)]
        if stage.name == "notify":
            argv += ["--build-result", result]
        code = agents.sh(stage.name, argv, clone, env, timeout_minutes(config, stage.name))
        results.append(StageRun(stage.name, _outcome(code), time.monotonic() - started, code))
    return clone, junit, tuple(archived)
