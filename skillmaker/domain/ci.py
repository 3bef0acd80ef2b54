"""The skill's CI contract, once: where each stage runs, what it stashes, how long it may take.

The Jenkinsfile of a skill repo is rendered from ``ci_stages`` (through ``jenkins_context``) and
``skillmaker run --isolated`` replays the same list (``skillmaker.pipeline.isolated``), so the two
cannot drift apart. State travels through the artifact store: a stash carries only the run
pointer and the few small files Jenkins itself publishes (JUnit XML, the report PDF).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from skillmaker.config.model import SkillConfig
from skillmaker.domain.stages import STAGES, Agent, Stage

RunsIn = Literal["image", "agent"]
"""``image``: inside the skill's own runtime image; ``agent``: on the agent with the pinned
skillmaker (the stages before the image exists, and those that need git, LaTeX or Docker)."""

AGENT_SCRIPT = "ci/skillmaker-agent.sh"
"""Generated script that runs the skill's pinned skillmaker on an agent (installing it once)."""

DEFAULT_RELEASE_BRANCH = "main"
STORE_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
NOTIFY_SECRETS = ("SLACK_BOT_TOKEN", "SMTP_USER", "SMTP_PASSWORD")
RUN_STATE = (".skillmaker/current.json", ".skillmaker/runs")
"""Local run state, removed when a stage starts and ends (agents reuse their workspaces)."""
OVERRIDE_COMMAND = ("skillmaker", "gate", "--accept-regression")
"""Run in the CPU image after a person accepted a rejected candidate (with a reason)."""
APPROVER_VARIABLE = "SKILLMAKER_APPROVER"
"""Set by the ``input`` step to who accepted; the gate records it."""
JUNIT_GLOB = ".skillmaker/runs/*/junit/*.xml"
REPORT_GLOB = ".skillmaker/runs/*/report.pdf"


@dataclass(frozen=True)
class Stash:
    """A Jenkins stash: its name and the Ant patterns of the files it carries."""

    name: str
    includes: tuple[str, ...]


RUN_STASH = Stash("run", (".skillmaker/current.json",))

_STASHES: Mapping[str, Stash] = {
    "version": RUN_STASH,
    "evaluate": Stash("junit-evaluate", (".skillmaker/runs/*/junit/evaluate.xml",)),
    "stack-test": Stash("junit-stack-test", (".skillmaker/runs/*/junit/stack-test.xml",)),
    "report": Stash("report", (REPORT_GLOB,)),
}

# evaluate and stack-test stay on the agent: they build the serving image and test the models
# in their containers through the agent's Docker engine (and push what deploy ships).
_RUNS_IN: Mapping[str, RunsIn] = {
    "data": "image",
    "train": "image",
    "gate": "image",
}

DEFAULT_TIMEOUTS: Mapping[str, int] = {
    "version": 10,
    "build": 90,
    "data": 180,
    "train": 720,
    "evaluate": 120,
    "stack-test": 120,
    "report": 30,
    "gate": 15,
    "override": 4320,
    "deploy": 60,
    "notify": 15,
    "cleanup": 15,
}
"""Minutes; ``ci.timeouts`` in skill.json overrides them. ``override`` waits for a person."""


@dataclass(frozen=True)
class CiStage:
    """One stage of the Jenkinsfile: the skillmaker stage and how CI runs it."""

    stage: Stage
    runs_in: RunsIn
    timeout_minutes: int
    profile: str | None = None
    stash: Stash | None = None
    release_only: bool = False
    secrets: tuple[str, ...] = STORE_SECRETS

    @property
    def name(self) -> str:
        """Give the stage's name."""
        return self.stage.name

    @property
    def label(self) -> Agent:
        """Give the label of the agents the stage runs on."""
        return self.stage.agent

    @property
    def unstash(self) -> tuple[Stash, ...]:
        """Give the stashes the stage needs: the run pointer, except for ``version``."""
        return () if self.name == "version" else (RUN_STASH,)

    def args(self) -> tuple[str, ...]:
        """Give the skillmaker arguments of the stage: the runner, limited to this stage."""
        argv = ("run", "--from", self.name, "--until", self.name)
        return (*argv, "--profile", self.profile) if self.profile else argv


def release_branch(config: SkillConfig) -> str:
    """Give the branch whose builds deploy: ``deploy.branch`` when the config has it, else main."""
    branch = getattr(config.deploy, "branch", None)
    return str(branch) if branch else DEFAULT_RELEASE_BRANCH


def timeout_minutes(config: SkillConfig, name: str) -> int:
    """Give how many minutes a stage may take in CI."""
    configured = {str(k): v for k, v in config.ci.timeouts.items()}
    return int(configured.get(name, DEFAULT_TIMEOUTS[name]))


def ci_stages(config: SkillConfig) -> tuple[CiStage, ...]:
    """Give the main (not ``post``) stages of the pipeline as CI runs them, in order."""
    return tuple(
        CiStage(
            stage=item,
            runs_in=_RUNS_IN.get(item.name, "agent"),
            timeout_minutes=timeout_minutes(config, item.name),
            profile=config.ci.profiles.get(item.agent) if item.name == "train" else None,
            stash=_STASHES.get(item.name),
            release_only=item.name == "deploy",
        )
        for item in STAGES
        if not item.always
    )


def post_stages() -> tuple[Stage, ...]:
    """Give the stages Jenkins runs in ``post { always }`` (notify, cleanup)."""
    return tuple(s for s in STAGES if s.always)


def post_args(stage: Stage) -> tuple[str, ...]:
    """Give the skillmaker arguments of a ``post`` stage, without the build result."""
    return stage.argv


def all_stashes(config: SkillConfig) -> tuple[Stash, ...]:
    """Give every stash a build may make, in pipeline order (``post`` unstashes them all)."""
    return tuple(s.stash for s in ci_stages(config) if s.stash is not None)


# -- rendering: every value below is a finished Groovy or shell literal, never template code


def groovy(text: str) -> str:
    """Give ``text`` as a single-quoted Groovy string literal (no interpolation)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def shell_words(args: tuple[str, ...]) -> str:
    """Give arguments as one POSIX shell command line, each word quoted only when needed."""
    import shlex

    return " ".join(shlex.quote(a) for a in args)


def _credentials(config: SkillConfig, names: tuple[str, ...]) -> str:
    bindings = [
        f"string(credentialsId: {groovy(config.ci.credentials[n])}, variable: {groovy(n)})"
        for n in names
        if n in config.ci.credentials
    ]
    return ", ".join(bindings)


def _docker_args(config: SkillConfig, item: CiStage) -> str:
    cache = f"{config.ci.agent_cache}/{config.name}"
    args = [f"-v {cache}:{cache}", "-e HOME=/tmp"]
    if item.label == "gpu":
        args.append("--gpus all")
    return " ".join(args)


def _command(item: CiStage) -> str:
    words = shell_words(item.args())
    return f"skillmaker {words}" if item.runs_in == "image" else f"sh {AGENT_SCRIPT} {words}"


def _stage_context(config: SkillConfig, item: CiStage) -> dict[str, Any]:
    return {
        "name": item.name,
        "label": item.label,
        "agent": groovy(config.ci.agents.get(item.name, item.label)),  # type: ignore[call-overload]
        "image": item.runs_in == "image",
        "image_variable": f"SKILL_IMAGE_{item.label.upper()}",
        "docker_args": groovy(_docker_args(config, item)),
        "timeout": item.timeout_minutes,
        "command": groovy(_command(item)),
        "unstash": [groovy(s.name) for s in item.unstash],
        "stash_name": groovy(item.stash.name) if item.stash else None,
        "stash_includes": groovy(", ".join(item.stash.includes)) if item.stash else None,
        "credentials": _credentials(config, item.secrets),
        "release_only": item.release_only,
        "gate": item.name == "gate",
        "sets_images": item.name == "build",
    }


def jenkins_context(config: SkillConfig) -> dict[str, Any]:
    """Give the cookiecutter context of the Jenkinsfile: stages, stashes, branch, commands."""
    post = {s.name: f"sh {AGENT_SCRIPT} {shell_words(post_args(s))}" for s in post_stages()}
    return {
        "stages": [_stage_context(config, s) for s in ci_stages(config)],
        "release_branch": groovy(release_branch(config)),
        "title": groovy(config.title),
        "ticket": groovy(config.ticket),
        "timeout_hours": config.ci.timeout_hours,
        "post_agent": groovy(config.ci.agents.get("notify", "cpu")),
        "override_agent": groovy(config.ci.agents.get("override", "cpu")),
        "agent_cache": groovy(config.ci.agent_cache),
        "skill_cache": groovy(f"{config.ci.agent_cache}/{config.name}"),
        "stashes": [
            {"name": groovy(s.name), "missing": groovy(f"no stash {s.name}: its stage did not run")}
            for s in all_stashes(config)
        ],
        "notify": groovy(post["notify"] + ' --build-result "$SKILLMAKER_BUILD_RESULT"'),
        "cleanup": groovy(post["cleanup"]),
        "override": groovy(
            shell_words(OVERRIDE_COMMAND) + ' --reason "$SKILLMAKER_OVERRIDE_REASON"'
        ),
        "image_cpu": groovy(f"sh {AGENT_SCRIPT} image --flavor cpu"),
        "image_gpu": groovy(f"sh {AGENT_SCRIPT} image --flavor gpu"),
        "notify_credentials": _credentials(config, STORE_SECRETS + NOTIFY_SECRETS),
        "override_timeout": timeout_minutes(config, "override"),
        "post_timeout": timeout_minutes(config, "notify") + timeout_minutes(config, "cleanup"),
        "clean": groovy("rm -rf " + " ".join(RUN_STATE)),
        "junit": groovy(JUNIT_GLOB),
        "report": groovy(REPORT_GLOB),
        "agent_script": groovy(AGENT_SCRIPT),
    }
