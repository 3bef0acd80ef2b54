"""The deploy stage: set the run's image tag in the infra template, push it, update the stack.

Order matters: the branch, the gate, the registry and the built image are checked before anything
is touched; the template is validated (and its size checked) before it is pushed; deploys to one
stack take turns under its lease; the registry learns of the deploy only after the stack took it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn, cast

from skillmaker.adapters.cloudformation import (
    CloudFormationStack,
    StackDeployer,
    cloudformation_configured,
)
from skillmaker.adapters.git import PushCutOffError
from skillmaker.adapters.infra_repo import InfraCheckout, init_infra_repo, is_url, resolve_location
from skillmaker.context import RunPointer, SkillContext
from skillmaker.deploy.checks import built_image_note, require_release_branch, template_url
from skillmaker.deploy.lease import LeaseKeeper, LeaseLostError, StackLease
from skillmaker.deploy.lint import validate_template
from skillmaker.deploy.transaction import (
    DeployFailedError,
    DeployRecord,
    commit_message,
    failed,
    revert_push,
    update_stack,
)
from skillmaker.domain.cfn_template import add_skill, set_tag, skill_entry
from skillmaker.domain.gate import GateDecision
from skillmaker.domain.redact import redact, secrets_in
from skillmaker.domain.release import Lease, stack_call_limit
from skillmaker.domain.versions import Flavor, ImageTag
from skillmaker.errors import ExitCode, SkillmakerError, UserError
from skillmaker.records import GATE, GateRecord
from skillmaker.registry import (
    Clock,
    mark_deployed,
    read_registry,
    record_deploy_failure,
    utc_now,
)
from skillmaker.runs import save_run_file

DEPLOY = "deploy.json"
"""The deploy stage's record in the run folder (``DeployRecord``)."""

StackChoice = Literal["auto", "on", "off"]

__all__ = ["DEPLOY", "DeployFailedError", "DeployRecord", "StackChoice", "deploy_stage"]


def passed_gate(ctx: SkillContext, pointer: RunPointer) -> GateDecision:
    """Give the run's gate decision, or a user error when there is none or it rejected the run."""
    path = ctx.run_dir() / GATE
    try:
        record = cast(GateRecord, ctx.record(GATE))
    except UserError:
        raise UserError(
            f"{path}: no gate decision for skill version {pointer.skill_version}; "
            "run `skillmaker gate` first (deploy ships only a candidate the gate passed)"
        ) from None
    decision = GateDecision.from_record(record)
    if not decision.passed:
        failed = "; ".join(rule.reason for rule in decision.failed_rules)
        raise UserError(
            f"{path}: the gate's verdict on skill version {pointer.skill_version} is "
            f"{decision.verdict} ({failed}); "
            "nothing deployed (to accept it knowingly: "
            'skillmaker gate --accept-regression --reason "...")'
        )
    return decision


def _check_baseline(ctx: SkillContext, pointer: RunPointer, decision: GateDecision) -> int | None:
    """Give the deployed version, refusing when it is not the baseline the gate compared with."""
    deployed = read_registry(ctx.artifacts(), ctx.name)["deployed"]
    version = deployed["skill_version"] if deployed else None
    if version not in (decision.baseline_version, pointer.skill_version):
        raise UserError(
            f"{ctx.name}: the gate compared with deployed version {decision.baseline_version}, "
            f"but version {version} is deployed now; run evaluate and gate again"
        )
    return version


def stack_deployer(ctx: SkillContext, stack: StackChoice | StackDeployer) -> StackDeployer | None:
    """Give what updates the stack, or None when the stack step is off or nothing is configured."""
    if not isinstance(stack, str):
        return stack
    if stack == "off" or (stack == "auto" and not cloudformation_configured(ctx.env)):
        return None
    limit = stack_call_limit(ctx.config.deploy.lease_seconds)  # each call ends within the lease
    return CloudFormationStack.from_env(ctx.config.deploy.region, ctx.env, call_limit=limit)


@dataclass
class _Plan:
    """What this deploy will write: where, which tag, replacing which."""

    source: str
    where: str
    tag: ImageTag
    flavor: Flavor
    previous: str | None
    is_new: bool


def _open_infra(ctx: SkillContext) -> tuple[str, InfraCheckout]:
    settings = ctx.config.deploy
    source = resolve_location(settings.infra_repo, ctx.repo)
    if not is_url(source) and not Path(source).exists():
        init_infra_repo(Path(source), template_path=settings.template_path)
        ctx.say(f"created the local infra repo {source} from skillmaker's skill stack template")
    return source, InfraCheckout.clone(source, ctx.workspace.root / "infra")


def _plan(
    ctx: SkillContext,
    checkout: InfraCheckout,
    source: str,
    pointer: RunPointer,
    flavor: Flavor | None,
) -> _Plan:
    settings = ctx.config.deploy
    where = f"{redact(source)}:{settings.template_path}"
    text = checkout.read(settings.template_path)
    entry = skill_entry(text, where, settings.mapping_name, ctx.name)
    if entry is not None and flavor is not None and flavor != entry.flavor:
        raise UserError(
            f"{where}: {ctx.name} runs on {entry.flavor} capacity there; --flavor {flavor} "
            "applies only to a skill the template does not have yet"
        )
    chosen: Flavor = entry.flavor if entry is not None else (flavor or "cpu")
    return _Plan(
        source=source,
        where=where,
        tag=ImageTag.of(pointer.skill_version, pointer.code_version, chosen),
        flavor=chosen,
        previous=entry.tag if entry is not None else None,
        is_new=entry is None,
    )


def _edit(ctx: SkillContext, plan: _Plan) -> Callable[[str], str]:
    settings = ctx.config.deploy

    def edit(text: str) -> str:
        if skill_entry(text, plan.where, settings.mapping_name, ctx.name) is None:
            return add_skill(
                text,
                plan.where,
                settings.mapping_name,
                ctx.name,
                tag=str(plan.tag),
                flavor=plan.flavor,
            )
        return set_tag(text, plan.where, settings.mapping_name, ctx.name, str(plan.tag))

    return edit


@dataclass(frozen=True)
class _Step:
    """What the transaction acts on, once the lease is held."""

    checkout: InfraCheckout
    lease: StackLease
    held: Lease
    plan: _Plan
    pointer: RunPointer
    decision: GateDecision
    note: str | None
    deployed: int | None
    unsure: list[str] = field(default_factory=list)
    """A commit whose push was cut off: it may land yet, so the released lease notes it."""


def _transaction(ctx: SkillContext, step: _Step, deployer: StackDeployer | None) -> DeployRecord:
    """Give the record of push, stack update and verify; or revert, record and raise."""
    settings = ctx.config.deploy
    plan, pointer = step.plan, step.pointer
    image_check = step.note or "built and pushed"
    message = commit_message(
        ctx.name, pointer, plan.tag, plan.previous, step.decision, image_check=image_check
    )

    def validate(text: str) -> None:
        for warning in validate_template(text, plan.where, settings.region):
            ctx.say(f"cfn-lint warning: {plan.where}: {warning}")

    keeper = LeaseKeeper(step.lease, step.held, settings.lease_seconds)

    def before_push(commit: str) -> float:  # a successor knows what to undo should this stall
        return keeper.pushing(commit)  # and the push is cut off before the lease could expire

    if plan.is_new:
        ctx.say(f"{plan.where}: adding {ctx.name} ({plan.flavor} capacity) to the template")
    record = _started(ctx, step, image_check)
    try:
        published = step.checkout.publish(
            settings.template_path,
            _edit(ctx, plan),
            validate,
            message,
            on_retry=ctx.say,
            before_push=before_push,
        )
    except LeaseLostError as exc:
        raise LeaseLostError(f"{exc}; nothing was pushed, run the deploy again") from None
    except PushCutOffError as exc:  # it may have landed: undone like any failure after a push
        step.unsure.append(exc.commit)
        cause = f"{exc} (a push may take the time left on the deploy lease, less a tenth of it)"
        _fail(ctx, step, record, exc.commit, PushCutOffError(cause, exc.commit))
    if published.commit is None:
        ctx.say(f"{plan.where}: {ctx.name} is already at {plan.tag}; nothing to commit")
    else:
        ctx.say(f"{plan.where}: {ctx.name} -> {plan.tag}, pushed {published.commit[:7]}")
    record["infra_commit"] = published.head
    try:
        # Still the stack's only deployer? (If not, the one that took over undoes the push.)
        keeper.confirm()
        if deployer is None:
            ctx.say(
                "no CloudFormation endpoint or AWS credentials configured: stack update skipped "
                "(the infra repo holds the new tag; use --stack to update the stack anyway)"
            )
            return record
        result, url = update_stack(
            step.checkout,
            deployer,
            ctx.artifacts(),
            stack_name=settings.stack_name,
            template_path=settings.template_path,
            region=settings.region,
            say=ctx.say,
            heartbeat=keeper.heartbeat,  # renewed while the update waits, or the wait stops
        )
        keeper.confirm()  # before success is recorded
    except Exception as exc:
        _fail(ctx, step, record, published.commit, exc)
    record["template_url"] = url
    record["stack"] = {
        "name": result.stack,
        "action": result.action,
        "status": result.status,
        "outputs": dict(result.outputs),
    }
    record["message"] = f"stack {result.stack} {result.action} ({result.status})" + (
        f"; {step.note}" if step.note else ""
    )
    ctx.say(f"stack {result.stack!r}: {result.action} ({result.status})")
    return record


def _started(ctx: SkillContext, step: _Step, image_check: str) -> DeployRecord:
    """Give the record of a deploy about to push (as if the stack update were skipped)."""
    pointer, plan = step.pointer, step.plan
    record: DeployRecord = {
        "skill": ctx.name,
        "skill_version": pointer.skill_version,
        "code_version": pointer.code_version,
        "image_tag": str(plan.tag),
        "previous_tag": plan.previous,
        "gate": step.decision.summary(),
        "infra_repo": redact(plan.source),
        "template_path": ctx.config.deploy.template_path,
        "infra_commit": None,
        "stack": None,
        "outcome": "deployed",
        "message": "infra repo updated; stack update skipped (no CloudFormation configured)",
        "image_check": image_check,
    }
    if step.note is not None:
        record["message"] += f"; {step.note}"
    return record


def _fail(
    ctx: SkillContext, step: _Step, record: DeployRecord, commit: str | None, exc: Exception
) -> NoReturn:
    """Revert ``commit``, record the deploy failed with ``exc`` as its cause, and raise."""
    _record_failure(ctx, step, record, commit, exc)
    if isinstance(exc, SkillmakerError) and exc.exit_code != ExitCode.INTERNAL_ERROR:
        raise DeployFailedError(
            f"{exc}; skill version {step.pointer.skill_version} not deployed, the infra commit "
            f"is reverted and {ctx.name} stays at version {step.deployed or 'none'}"
        ) from None
    raise exc


def _save(ctx: SkillContext, record: DeployRecord) -> None:
    """Write ``deploy.json`` with no secret of the environment in its message."""
    record["message"] = redact(record["message"], secrets_in(ctx.env))
    save_run_file(ctx, DEPLOY, record)


def _record_failure(
    ctx: SkillContext, step: _Step, record: DeployRecord, commit: str | None, exc: BaseException
) -> None:
    settings = ctx.config.deploy
    failed(record, settings.stack_name, step.checkout, commit=commit, exc=exc, say=ctx.say)
    record_deploy_failure(
        ctx.artifacts(),
        ctx.name,
        skill_version=record["skill_version"],
        image_tag=record["image_tag"],
        message=record["message"],
    )
    _save(ctx, record)


def deploy_stage(
    ctx: SkillContext,
    *,
    stack: StackChoice | StackDeployer = "auto",
    flavor: Flavor | None = None,
    clock: Clock = utc_now,
) -> DeployRecord:
    """Give the record of shipping the current run: infra template, stack, then registry.

    Refuses (exit 2, nothing changed) unless the run is of the release branch, its ``gate.json``
    passed, the gate's baseline is still the deployed version and its serving image was built
    and pushed. Any failure after the push reverts the template commit, records the run as
    "deploy failed" with its cause and leaves the deployed version as it was.
    """
    pointer = ctx.current_run()
    require_release_branch(ctx)
    decision = passed_gate(ctx, pointer)
    deployed = _check_baseline(ctx, pointer, decision)
    settings = ctx.config.deploy
    source, checkout = _open_infra(ctx)
    plan = _plan(ctx, checkout, source, pointer, flavor)
    note = built_image_note(ctx, str(plan.tag), plan.flavor)
    if note is not None:
        ctx.say(f"warning: {note}")
    deployer = stack_deployer(ctx, stack)
    store = ctx.artifacts()
    edit = _edit(ctx, plan)
    if deployer is not None:  # a template CloudFormation cannot take is refused before the push
        template_url(
            store, settings.stack_name, settings.region, edit(checkout.read(settings.template_path))
        )
    lease = StackLease(store, settings.stack_name)
    taken = lease.take(
        ctx.name,
        pointer.skill_version,
        seconds=settings.lease_seconds,
        wait=settings.lease_seconds,
        say=ctx.say,
    )
    step = _Step(checkout, lease, taken.lease, plan, pointer, decision, note, deployed)
    try:
        checkout.refresh()
        if taken.orphan is not None:
            ctx.say(f"{taken.orphan_of} pushed {taken.orphan[:7]} and never verified it")
            revert_push(
                checkout,
                taken.orphan,
                f"Revert {taken.orphan[:7]}: its deployer ({taken.orphan_of}) stopped before "
                "verifying it\n",
                ctx.say,
            )
        record = _transaction(ctx, step, deployer)
    finally:
        lease.release(taken.lease, ctx.say, unsure=step.unsure[0] if step.unsure else None)
    mark_deployed(
        store,
        ctx.name,
        skill_version=pointer.skill_version,
        code_version=pointer.code_version,
        image_tag=str(plan.tag),
        gate=decision.summary(),
        infra_commit=record["infra_commit"],
        clock=clock,
    )
    _save(ctx, record)
    ctx.say(f"{ctx.name}: skill version {pointer.skill_version} deployed as {plan.tag}")
    return record
