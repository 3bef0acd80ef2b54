"""Flags and helpers shared by the commands that act inside a skill repo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from skillmaker.context import SkillContext, load_skill


def add_repo_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--repo DIR`` (default: the current folder)."""
    parser.add_argument("--repo", type=Path, default=Path(), help="the skill repo (default: .)")


def skill_from(args: argparse.Namespace, out: TextIO) -> SkillContext:
    """Give the skill context named by ``--repo``."""
    return load_skill(args.repo, out=out)


def own_run_from(args: argparse.Namespace, out: TextIO) -> SkillContext:
    """Give the skill context named by ``--repo``, refusing a current run of another commit/config."""
    from skillmaker.runs import require_own_run

    ctx = load_skill(args.repo, out=out)
    require_own_run(ctx)
    return ctx
