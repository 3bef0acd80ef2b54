"""Command ``skillmaker notify``: flags here, the work in the library."""

from __future__ import annotations

import argparse
from typing import TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome


def _cmd_notify(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here so that every other command starts without Slack, mail and Docker clients.
    from skillmaker.notify.stage import notify_run

    def body(ctx: SkillContext) -> Outcome:
        return Outcome.passed(warnings=notify_run(ctx).warnings)

    return run_stage(args, out, "notify", body).exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``notify`` command."""
    p = sub.add_parser(
        "notify",
        help="tell Slack and the reviewers how the current run ended (never fails the run)",
        description=(
            "Post the run summary and the report to Slack (SLACK_BOT_TOKEN, SLACK_API_URL) and "
            "e-mail it to the reviewers (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, "
            "SMTP_FROM; or SES_FROM for Amazon SES). Without them, messages go to "
            ".skillmaker/outbox/<version>/. Failed deliveries become warnings in run.json."
        ),
    )
    add_repo_flag(p)
    p.set_defaults(handler=_cmd_notify)
