"""The stack-test stage: the cascades this skill belongs to, run whole with its candidate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from skillmaker.adapters.docker import DockerEngine
from skillmaker.adapters.infra_repo import InfraCheckout, init_infra_repo, is_url, resolve_location
from skillmaker.adapters.store import ObjectNotFound
from skillmaker.cascade.definition import StackDefinition, load_stack_definition
from skillmaker.cascade.runner import StackCase, run_stack_test
from skillmaker.context import SkillContext
from skillmaker.data.pull import pull
from skillmaker.domain.layout import run_key, stack_key
from skillmaker.domain.outcome import Outcome
from skillmaker.errors import UserError
from skillmaker.evaluation.docker_launch import DockerLauncher
from skillmaker.evaluation.launch import LocalProcessLauncher, ServerLauncher, ServerSpec
from skillmaker.evaluation.stage import fetch_bundle, from_image
from skillmaker.records import STACK, StackRecord
from skillmaker.registry import deployed_version

STACK_FILE = "stack.json"


def _definition(ctx: SkillContext) -> StackDefinition | None:
    settings = ctx.config.deploy
    source = resolve_location(settings.infra_repo, ctx.repo)
    if not is_url(source) and not Path(source).exists():
        init_infra_repo(Path(source), template_path=settings.template_path)
    checkout = InfraCheckout.clone(source, ctx.workspace.root / "infra-stack")
    path = checkout.path / Path(settings.template_path).parent / STACK_FILE
    return load_stack_definition(path) if path.is_file() else None


def _cases(ctx: SkillContext, definition: StackDefinition) -> list[StackCase]:
    if not definition.test_set:
        raise UserError(f"{STACK_FILE}: test_set: is required to run the full-stack test")
    folder = ctx.workspace.root / "cache" / "stack" / definition.name
    pulled = pull(ctx.store(definition.test_set), folder)
    cases = [
        StackCase(item.key, item.path, answer=item.key.split("/", 1)[0])
        for item in pulled.objects
        if "/" in item.key
    ]
    if not cases:
        raise UserError(f"{definition.test_set}: the full-stack test set is empty")
    return cases


def _launcher(ctx: SkillContext, servers: dict[str, ServerSpec | Path]) -> ServerLauncher:
    """Give containers for every step whose serving image the engine holds, processes otherwise.

    Where a Docker engine answers, the cascade runs as the stack would: each step in its own
    container on the host network (the candidate's image was built by the evaluate stage).
    """
    engine = DockerEngine.connect(ctx.env)
    if engine is None:
        ctx.say("stack-test: serving as local processes (no Docker engine answers)")
        return LocalProcessLauncher()
    for skill, spec in list(servers.items()):
        if isinstance(spec, ServerSpec):
            servers[skill] = from_image(ctx, engine, spec, f"stack-test: {skill}")
    logs = ctx.run_dir() / "logs"
    return DockerLauncher(engine, fallback=LocalProcessLauncher(log_dir=logs), log_dir=logs)


def stack_test_stage(
    ctx: SkillContext, *, launcher: ServerLauncher | None = None
) -> StackRecord | Outcome:
    """Give the full-stack result of the cascade that holds this skill, or why it was skipped."""
    run = ctx.current_run()
    run_dir = ctx.run_dir()
    definition = _definition(ctx)
    skills = [] if definition is None else [s.skill for s in definition.steps]
    if definition is None or ctx.name not in skills:
        reason = f"skill {ctx.name} is in no cascade of the infra repo's {STACK_FILE}"
        return Outcome.skipped(reason)

    store = ctx.artifacts()
    servers: dict[str, ServerSpec | Path] = {ctx.name: ServerSpec.from_bundle(ctx.name, run_dir)}
    for skill in skills:
        if skill == ctx.name:
            continue
        deployed = deployed_version(store, skill)
        if deployed is None:
            raise UserError(f"{STACK_FILE}: step {skill}: the skill has no deployed version")
        servers[skill] = ServerSpec.from_bundle(
            skill, fetch_bundle(ctx, skill, deployed["skill_version"])
        )

    previous: StackRecord | None = None
    try:
        previous = cast(StackRecord, json.loads(store.get_bytes(stack_key(definition.name))))
    except ObjectNotFound:
        previous = None
    if launcher is None:
        launcher = _launcher(ctx, servers)
    record = run_stack_test(
        definition,
        servers,
        _cases(ctx, definition),
        launcher=launcher,
        previous=previous,
        run_dir=run_dir,
        say=ctx.say,
    )
    store.upload(run_dir / STACK, run_key(ctx.name, run.skill_version, STACK))
    store.upload(run_dir / STACK, stack_key(definition.name))
    return record
