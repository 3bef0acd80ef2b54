"""Commands ``version``, ``gate`` and ``deploy``: flags in, library calls, exit codes out."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome
from skillmaker.errors import GateRejected

if TYPE_CHECKING:
    from skillmaker.deploy.stage import StackChoice

# Stage modules are imported when their command runs, so `skillmaker --help` stays fast.


def _cmd_version(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.version.stage import version_stage

    def body(ctx: SkillContext) -> Outcome:
        result = version_stage(ctx)
        return Outcome.passed(
            f"skill version {result.pointer.skill_version}, "
            f"code version {result.pointer.code_version}"
        )

    return run_stage(args, out, "version", body).exit_code


def _cmd_gate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.gate.stage import gate_stage

    def body(ctx: SkillContext) -> Outcome:
        decision = gate_stage(ctx, accept_regression=args.accept_regression, reason=args.reason)
        if decision.passed:
            return Outcome.passed(f"gate {decision.summary()}")
        failed = ", ".join(rule.name for rule in decision.failed_rules)
        return Outcome.rejected(
            f"gate rejected skill version {ctx.current_run().skill_version} ({failed}); "
            'to ship it anyway: skillmaker gate --accept-regression --reason "..."'
        )

    outcome = run_stage(args, out, "gate", body)
    if outcome.kind == "rejected":
        raise GateRejected(outcome.message)
    return outcome.exit_code


def _cmd_deploy(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.deploy.stage import deploy_stage

    stack: StackChoice = "auto" if args.stack is None else ("on" if args.stack else "off")

    def body(ctx: SkillContext) -> Outcome:
        return Outcome.passed(deploy_stage(ctx, stack=stack, flavor=args.flavor)["message"])

    return run_stage(args, out, "deploy", body).exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``version``, ``gate`` and ``deploy`` commands."""
    p = sub.add_parser(
        "version", help="allocate the next skill version and record the commit of the skill repo"
    )
    add_repo_flag(p)
    p.set_defaults(handler=_cmd_version)

    p = sub.add_parser(
        "gate", help="compare the candidate with the deployed model; exit 3 on a rejection"
    )
    add_repo_flag(p)
    p.add_argument(
        "--accept-regression",
        action="store_true",
        help="accept a rejected candidate knowingly (needs --reason; recorded with who)",
    )
    p.add_argument("--reason", help="why the regression is acceptable")
    p.set_defaults(handler=_cmd_gate)

    p = sub.add_parser(
        "deploy", help="set the image tag in the infra template, push it, update the stack"
    )
    add_repo_flag(p)
    p.add_argument(
        "--stack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update the CloudFormation stack (default: only when AWS_ENDPOINT_URL or AWS "
        "credentials are set)",
    )
    p.add_argument(
        "--flavor",
        choices=("cpu", "gpu"),
        help="capacity of a skill the template does not have yet (default: cpu)",
    )
    p.set_defaults(handler=_cmd_deploy)
