"""The notify stage: tell Slack and the reviewers how a run ended; a failed notifier is a warning.

It reads what the run folder holds (``run.json``, ``gate.json``, ``metrics.json``, ``report.pdf``;
any may be missing when the run failed early), delivers through Slack and SMTP/SES when they are
configured, writes to the outbox folder when they are not, and appends each delivery failure to
``run.json``'s ``warnings`` (locally and in the store). The stage itself succeeds either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from skillmaker.adapters import outbox
from skillmaker.adapters.mail import Mailer, mailer_from_env
from skillmaker.adapters.slack import SlackNotifier, SlackSettings
from skillmaker.context import RunPointer, SkillContext
from skillmaker.domain.message import (
    RunIdentity,
    RunSummary,
    email_message,
    slack_message,
    summarise,
)
from skillmaker.errors import UserError
from skillmaker.records import GATE, METRICS, REPORT, RUN, read_record
from skillmaker.retry import DeliveryError, RetryPolicy, deliver

OUTBOX_SENDER = "skillmaker@localhost"


@dataclass(frozen=True)
class NotifyResult:
    """What the notify stage did: deliveries, the outbox folder if used, the warnings recorded."""

    delivered: tuple[str, ...] = ()
    outbox: Path | None = None
    warnings: tuple[str, ...] = ()


def outbox_dir(ctx: SkillContext, skill_version: int) -> Path:
    """Give the outbox folder of one run: ``<repo>/.skillmaker/outbox/<version>/``."""
    return ctx.workspace.root / "outbox" / str(skill_version)


def _optional_record(path: Path, problems: list[str]) -> Any | None:
    if not path.is_file():
        return None
    try:
        return read_record(path)
    except UserError as exc:
        problems.append(f"notify: {exc}; sent without it")
        return None


def _summary(
    ctx: SkillContext, pointer: RunPointer, run_dir: Path, problems: list[str]
) -> RunSummary:
    identity = RunIdentity(
        skill=ctx.name,
        title=ctx.config.title,
        ticket=ctx.config.ticket,
        skill_version=pointer.skill_version,
        code_version=pointer.code_version,
    )
    run = _optional_record(run_dir / RUN, problems)
    gate = _optional_record(run_dir / GATE, problems)
    metrics = _optional_record(run_dir / METRICS, problems)
    # A record with unexpected content is left out (and said so) rather than silencing the run.
    checks: list[tuple[str, Callable[[], RunSummary]]] = [
        (RUN, lambda: summarise(identity, run=run)),
        (GATE, lambda: summarise(identity, gate=gate)),
        (METRICS, lambda: summarise(identity, metrics=metrics)),
    ]
    usable: dict[str, bool] = {}
    for name, check in checks:
        try:
            check()
            usable[name] = True
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problems.append(
                f"notify: {run_dir / name}: unexpected content ({exc!r}); sent without it"
            )
            usable[name] = False
    return summarise(
        identity,
        run=run if usable[RUN] else None,
        gate=gate if usable[GATE] else None,
        metrics=metrics if usable[METRICS] else None,
        has_report=(run_dir / REPORT).is_file(),
        extra_warnings=tuple(problems),
    )


def _send_slack(
    ctx: SkillContext,
    summary: RunSummary,
    *,
    report: Path | None,
    folder: Path,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> tuple[str | None, Path | None, list[str]]:
    channel = ctx.config.notify.slack_channel
    if not channel:
        ctx.say("notify: slack: no notify.slack_channel in skill.json; nothing to post")
        return None, None, []
    message = slack_message(summary, channel)
    settings = SlackSettings.from_env(ctx.env)
    if settings is None:
        data = report.read_bytes() if report else None
        path = outbox.write_slack(folder, message, data, summary.report_name)
        ctx.say(f"notify: slack: SLACK_BOT_TOKEN is not set; message written to {path}")
        return None, path, []
    notifier = SlackNotifier(settings)
    posted, warning = deliver(f"slack {channel}", lambda: notifier.post(message), policy, sleep)
    if posted is None:
        return None, None, [warning or f"slack {channel}: not delivered"]
    ctx.say(f"notify: slack: posted to {channel} (message {posted.ts})")
    if report is None or summary.report_name is None:
        return f"slack {channel}", None, []
    name = summary.report_name
    file_id, warning = deliver(
        f"slack {channel} report upload",
        lambda: notifier.upload(
            report,
            filename=name,
            title=summary.headline,
            channel_id=posted.channel_id,
            thread_ts=posted.ts,
        ),
        policy,
        sleep,
    )
    if file_id is None:
        return f"slack {channel}", None, [warning or f"slack {channel}: report not uploaded"]
    ctx.say(f"notify: slack: uploaded {name} (file {file_id})")
    return f"slack {channel}", None, []


def _send_email(
    ctx: SkillContext,
    summary: RunSummary,
    *,
    report: Path | None,
    folder: Path,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    now: datetime,
) -> tuple[str | None, Path | None, list[str]]:
    recipients = list(ctx.config.notify.email)
    if not recipients:
        ctx.say("notify: e-mail: no notify.email reviewers in skill.json; nothing to send")
        return None, None, []
    try:
        mailer: Mailer | None = mailer_from_env(ctx.env, ctx.config.deploy.region)
    except DeliveryError as exc:
        return None, None, [f"e-mail: {exc}"]
    sender = (
        getattr(mailer, "sender", None)
        or ctx.env.get("SMTP_FROM")
        or ctx.env.get("SES_FROM")
        or OUTBOX_SENDER
    )
    message = email_message(
        summary,
        sender=sender,
        recipients=recipients,
        report=report.read_bytes() if report else None,
        date=now,
        message_id=make_msgid(idstring=f"{summary.skill}.v{summary.skill_version}"),
    )
    if mailer is None:
        path = outbox.write_email(folder, message)
        ctx.say(f"notify: e-mail: neither SMTP_HOST nor SES_FROM is set; written to {path}")
        return None, path, []
    receipt, warning = deliver(
        f"e-mail via {mailer.describe()}", lambda: mailer.send(message), policy, sleep
    )
    if receipt is None:
        return None, None, [warning or f"e-mail via {mailer.describe()}: not delivered"]
    ctx.say(f"notify: e-mail: sent via {mailer.describe()} to {', '.join(recipients)}")
    return f"e-mail {', '.join(recipients)}", None, []


def notify_run(
    ctx: SkillContext,
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> NotifyResult:
    """Give what the notify stage delivered, wrote to the outbox and recorded as warnings."""
    policy = policy or RetryPolicy()
    try:
        pointer = ctx.current_run()
    except UserError as exc:
        ctx.say(f"notify: nothing to notify: {exc}")
        return NotifyResult()
    run_dir = ctx.workspace.run_dir(pointer.skill_version)
    problems: list[str] = []
    summary = _summary(ctx, pointer, run_dir, problems)
    report = run_dir / REPORT if (run_dir / REPORT).is_file() else None
    folder = outbox_dir(ctx, pointer.skill_version)

    delivered: list[str] = []
    written: list[Path] = []
    warnings = list(problems)
    for channel in (
        _send_slack(ctx, summary, report=report, folder=folder, policy=policy, sleep=sleep),
        _send_email(
            ctx, summary, report=report, folder=folder, policy=policy, sleep=sleep, now=now()
        ),
    ):
        done, path, failed = channel
        delivered += [done] if done else []
        written += [path] if path else []
        warnings += failed

    for warning in warnings:
        ctx.say(f"notify: warning: {warning}")
    if written:
        ctx.say(f"notify: outbox: {folder}")
    return NotifyResult(
        delivered=tuple(delivered),
        outbox=folder if written else None,
        warnings=tuple(warnings),
    )
