"""Flags and helpers shared by the commands that act inside a skill repo."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from skillmaker.context import SkillContext, load_skill
from skillmaker.domain.outcome import Outcome


def add_repo_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo DIR`` (default: the current folder)."""
    parser.add_argument("--repo", type=Path, default=Path(), help="the skill repo (default: .)")


def skill_from(args: argparse.Namespace, out: TextIO) -> SkillContext:
    """Give the skill context named by ``--repo``."""
    return load_skill(args.repo, out=out)


UNBOUND_STAGES = ("version", "notify", "cleanup")
"""Stages that may act whatever commit the current run is of: they start, report or tidy a run."""


def run_stage(
    args: argparse.Namespace,
    out: TextIO,
    stage: str,
    body: Callable[[SkillContext], Outcome | None],
) -> Outcome:
    """Give the outcome of a stage command, run and recorded by the one stage runner."""
    from skillmaker.pipeline.execute import execute_stage
    from skillmaker.runs import require_own_run

    ctx = skill_from(args, out)
    if stage not in UNBOUND_STAGES:
        require_own_run(ctx)  # never act on (nor record into) a run of another commit/config
    outcome = execute_stage(ctx, stage, lambda: body(ctx))
    if outcome.kind == "skipped":
        ctx.say(f"{stage}: skipped: {outcome.message}")
    return outcome
