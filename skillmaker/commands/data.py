"""``skillmaker data pull``: pull, audit and split the skill's images."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1 (got {text!r})")
    return value


def _cmd_pull(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here so `skillmaker --help` does not load the image libraries.
    from skillmaker.data.dataset import prepare, summary

    def body(ctx: SkillContext) -> None:
        for line in summary(prepare(ctx, workers=args.workers)):
            ctx.say(line)

    return run_stage(args, out, "data", body).exit_code


def register(sub: Any) -> None:
    """Add ``data pull`` to the ``skillmaker`` command."""
    data = sub.add_parser("data", help="pull, audit and split the skill's images")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    pull = actions.add_parser(
        "pull",
        help="sync the images into the cache, check them, assign splits, write the audit",
    )
    add_repo_flag(pull)
    pull.add_argument(
        "--workers", type=_positive, default=8, help="parallel downloads and decodes (default: 8)"
    )
    pull.set_defaults(handler=_cmd_pull)
