"""``skillmaker report``: render the PDF model report of the current run and store it."""

from __future__ import annotations

import argparse
from typing import TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome
from skillmaker.report.stage import report_stage


def _cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    def body(context: SkillContext) -> Outcome:
        stored = report_stage(context)
        return Outcome.passed(
            f"report: {stored.pdf} (stored as {stored.pdf_key}; confusion matrix {stored.csv_key})"
        )

    outcome = run_stage(args, out, "report", body)
    print(outcome.message, file=out)
    return outcome.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` command."""
    parser = sub.add_parser(
        "report", help="render the PDF model report of the current run and store it with the model"
    )
    add_repo_flag(parser)
    parser.set_defaults(handler=_cmd_report)
