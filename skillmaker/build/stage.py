"""The build stage: the skill's container images, from its Dockerfiles, through the Docker engine.

An image is built from a context folder assembled for it: the flavour's Dockerfile, ``skill.json``,
a wheelhouse (skillmaker's wheel and its dependencies, so the build needs no network) and, for the
serving image, the trained model bundle in ``.skillmaker/model``. Before training there is no model:
the stage builds the ``runtime`` target, which checks the Dockerfile and the wheelhouse early and
leaves every expensive layer in the engine's cache for the serving build after training.

Tags are ``<registry>/<skill>:<skill_version>-<short sha>-<flavor>`` (the runtime image adds
``-runtime``); labels and the environment carry the skill and code versions.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO, cast

from skillmaker.adapters.docker import DockerEngine
from skillmaker.build.context import assemble_context, find_model_bundle, find_wheelhouse
from skillmaker.build.plan import (
    BUILD,
    FLAVORS_ENV,
    WHEELHOUSE_ENV,
    BuildRecord,
    BuiltImageRecord,
    base_image_env,
    parse_flavors,
    plan_build,
    should_push,
)
from skillmaker.context import SkillContext
from skillmaker.domain.versions import Flavor
from skillmaker.errors import UserError
from skillmaker.records import write_record


@dataclass(frozen=True)
class BuildOptions:
    """How the build stage is asked to run (flags and environment)."""

    flavors: Sequence[Flavor] | None = None
    model: Path | None = None
    wheelhouse: Path | None = None
    base_image: str | None = None
    network: Literal["none", "host"] = "none"
    push: bool | None = None
    """None: push when ``images.registry`` is configured."""


@dataclass(frozen=True)
class BuildResult:
    """What the build stage made, or why it made nothing."""

    images: tuple[BuiltImageRecord, ...] = ()
    skipped: str | None = None


def _flavors(ctx: SkillContext, options: BuildOptions) -> tuple[Flavor, ...]:
    if options.flavors:
        return tuple(options.flavors)
    return parse_flavors(ctx.env.get(FLAVORS_ENV, ""))


class _BuildLog:
    """Writes each line of ``docker build`` to the log with the seconds since the build began,
    and shows the ``Step n/m`` lines as progress."""

    def __init__(self, ctx: SkillContext, log: TextIO, started: float) -> None:
        self.ctx, self.log, self.started = ctx, log, started

    def __call__(self, line: str) -> None:
        print(f"{time.monotonic() - self.started:8.1f}s {line}", file=self.log, flush=True)
        if line.startswith("Step "):
            self.ctx.say(f"  {line}")


def build_images(
    ctx: SkillContext, options: BuildOptions, engine: DockerEngine | None = None
) -> BuildResult:
    """Give the images built for the current run, or a skip notice when no engine answers."""
    pointer = ctx.current_run()
    run_dir = ctx.run_dir()
    flavors = _flavors(ctx, options)
    engine = engine or DockerEngine.connect(ctx.env)
    if engine is None:
        reason = (
            f"no Docker engine answers at {DockerEngine.address(ctx.env)} "
            "(start one with `bash ci/docker-engine.sh start` and export DOCKER_HOST)"
        )
        ctx.say(f"build: skipped: {reason}")
        write_record(run_dir / BUILD, {"skipped": reason, "engine": None, "images": []})
        return BuildResult(skipped=reason)

    model = find_model_bundle(run_dir, options.model)
    if model is None:
        ctx.say("build: no trained model yet: building the runtime image (rerun after `train`)")
    root = options.wheelhouse or (
        Path(ctx.env[WHEELHOUSE_ENV]) if ctx.env.get(WHEELHOUSE_ENV) else None
    )
    built: list[BuiltImageRecord] = []
    for flavor in flavors:
        base = options.base_image or ctx.env.get(base_image_env(flavor)) or None
        plan = plan_build(
            ctx.config, pointer, flavor, with_model=model is not None, base_image=base
        )
        started = time.monotonic()
        wheelhouse = find_wheelhouse(root, flavor, ctx.workspace.root / "cache" / "wheelhouse")
        context = ctx.workspace.root / "cache" / "build" / flavor
        assemble_context(ctx.repo, plan.dockerfile, wheelhouse, model, context)
        ctx.say(f"build: {plan.ref} from {plan.dockerfile} on {plan.base_image}")
        log_path = run_dir / f"build-{flavor}-{plan.target}.log"
        try:
            with log_path.open("w", encoding="utf-8") as log:
                image_id = engine.build(
                    context,
                    dockerfile=plan.dockerfile,
                    tag=plan.ref,
                    labels=plan.labels,
                    buildargs=plan.buildargs,
                    target=plan.target,
                    network=options.network,
                    on_line=_BuildLog(ctx, log, started),
                )
        finally:
            shutil.rmtree(context, ignore_errors=True)
        digest = None
        pushed = should_push(ctx.config.images.registry, options.push, plan.target)
        if pushed:
            digest = engine.push(plan.ref) or None
            ctx.say(f"build: pushed {plan.ref} {digest or ''}".rstrip())
        seconds = round(time.monotonic() - started, 3)
        size = engine.inspect(image_id).size_bytes
        ctx.say(
            f"build: {plan.ref} ({image_id[:19]}) {size / 1e6:.0f} MB in {seconds:.0f} s; "
            f"log {log_path}"
        )
        built.append(
            {
                "flavor": flavor,
                "ref": plan.ref,
                "id": image_id,
                "target": plan.target,
                "base_image": plan.base_image,
                "labels": dict(plan.labels),
                "pushed": pushed,
                "digest": digest,
                "seconds": seconds,
                "size_bytes": size,
            }
        )
    # A later build of some flavours (the evaluate stage's CPU serving image) keeps the others.
    kept = [image for image in _recorded_images(run_dir) if image["flavor"] not in flavors]
    record: BuildRecord = {"skipped": None, "engine": engine.version(), "images": kept + built}
    write_record(run_dir / BUILD, record)
    return BuildResult(images=tuple(built))


def _recorded_images(run_dir: Path) -> list[BuiltImageRecord]:
    path = run_dir / BUILD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    images = record.get("images") if isinstance(record, dict) else None
    if not isinstance(images, list):
        return []
    return [cast(BuiltImageRecord, i) for i in images if isinstance(i, dict) and "flavor" in i]


def build_serving_image(
    ctx: SkillContext, engine: DockerEngine, flavor: Flavor = "cpu"
) -> BuiltImageRecord:
    """Give the serving image of one flavour, after building (and pushing) the serving image of
    every flavour the run may deploy (``SKILLMAKER_BUILD_FLAVORS``, default CPU and GPU).

    The deploy stage ships only a tag whose serving image is in ``build.json`` as pushed, and a
    skill on GPU capacity deploys its ``-gpu`` tag: so both are built here, once, from cache.
    """
    if find_model_bundle(ctx.run_dir(), None) is None:
        raise UserError(f"{ctx.run_dir()}: no trained model to build a serving image with")
    flavors = _flavors(ctx, BuildOptions())
    wanted = (flavor, *(f for f in flavors if f != flavor))
    built = build_images(ctx, BuildOptions(flavors=wanted), engine).images
    return next(image for image in built if image["flavor"] == flavor)
