"""Commands ``version``, ``gate`` and ``deploy``: flags in, library calls, exit codes out."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from skillmaker.commands.common import add_repo_flag, own_run_from, skill_from
from skillmaker.errors import ExitCode, GateRejected

if TYPE_CHECKING:
    from skillmaker.deploy.stage import StackChoice

# Stage modules are imported when their command runs, so `skillmaker --help` stays fast.


def _cmd_version(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.version.stage import version_stage

    version_stage(skill_from(args, out))
    return ExitCode.OK


def _cmd_gate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.gate.stage import gate_stage

    ctx = own_run_from(args, out)
    decision = gate_stage(ctx, accept_regression=args.accept_regression, reason=args.reason)
    if not decision.passed:
        failed = ", ".join(rule.name for rule in decision.failed_rules)
        raise GateRejected(
            f"gate rejected skill version {ctx.current_run().skill_version} ({failed}); "
            'to ship it anyway: skillmaker gate --accept-regression --reason "..."'
        )
    return ExitCode.OK


def _cmd_deploy(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.deploy.stage import deploy_stage

    stack: StackChoice = "auto" if args.stack is None else ("on" if args.stack else "off")
    deploy_stage(own_run_from(args, out), stack=stack, flavor=args.flavor)
    return ExitCode.OK


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
