"""Commands of the model stages: ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome


def _none(_: object) -> None:
    """Drop a stage's return value: the stage passed when it returned."""


def _train(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.training.stage import train_stage

    def body(ctx: SkillContext) -> Outcome:
        result = train_stage(ctx, args.profile)
        return Outcome.passed(warnings=tuple(f"train: {w}" for w in result.warnings))

    return run_stage(args, out, "train", body).exit_code


def _evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.evaluation.stage import evaluate_stage

    return run_stage(
        args, out, "evaluate", lambda ctx: _none(evaluate_stage(ctx, concurrency=args.concurrency))
    ).exit_code


def register(sub: Any) -> None:
    """Add the ``train`` and ``evaluate`` commands."""
    p = sub.add_parser("train", help="train the candidate model of the current run")
    add_repo_flag(p)
    p.add_argument("--profile", help="hardware profile from skill.json (e.g. laptop, server)")
    p.set_defaults(handler=_train)

    p = sub.add_parser("evaluate", help="test candidate and deployed baseline on held-out data")
    add_repo_flag(p)
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight per model")
    p.set_defaults(handler=_evaluate)
    register_stack(sub)


def _stack_test(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.cascade.stage import stack_test_stage

    def body(ctx: SkillContext) -> Outcome | None:
        result = stack_test_stage(ctx)
        return result if isinstance(result, Outcome) else None

    return run_stage(args, out, "stack-test", body).exit_code


def register_stack(sub: Any) -> None:
    """Add the ``stack-test`` command."""
    p = sub.add_parser("stack-test", help="test the whole cascade of skills with this candidate")
    add_repo_flag(p)
    p.set_defaults(handler=_stack_test)
