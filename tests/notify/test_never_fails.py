"""Notify never fails a run: hostile text in headers, and a message that cannot be built."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from skillmaker.cli import main
from skillmaker.domain.message import RunIdentity, email_message, summarise
from skillmaker.notify.stage import notify_run
from skillmaker.retry import RetryPolicy
from tests.notify.conftest import SkillRun
from tests.notify.servers import SlackServer, SmtpServer

FAST = RetryPolicy(attempts=3, backoff_s=(0.0,))
HOSTILE = "Handwritten\r\ndigits\nBcc: attacker@example.com"


def test_a_title_with_line_breaks_stays_inside_one_subject_line() -> None:
    who = RunIdentity("digits", HOSTILE, "DEMO-1", 3, "c0ffee\nX-Evil: 1")
    message = email_message(
        summarise(who),
        sender="skillmaker@example.com",
        recipients=["reviewer@example.com"],
        report=None,
        date=datetime(2026, 1, 1, tzinfo=UTC),
        message_id="<1@example.com>",
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed.get_all("Subject") == [
        "[skillmaker] Handwritten digits Bcc: attacker@example.com (digits) v3: no gate decision yet"
    ]
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert parsed["X-Code-Version"] == "c0ffee X-Evil: 1"


def test_a_title_with_a_newline_is_mailed_on_one_line_to_the_reviewers_only(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer
) -> None:
    context = skill_run.context(
        {"SLACK_BOT_TOKEN": slack.state.token, "SLACK_API_URL": slack.url, **smtp.env()}
    )
    # As if it got past validation (an older skill.json): the stage must still deliver.
    hostile = context.config.model_copy(update={"title": HOSTILE})
    context = dataclasses.replace(context, config=hostile)

    result = notify_run(context, policy=FAST)

    assert result.warnings == ()
    assert len(result.delivered) == 2
    [mail] = smtp.received
    assert mail.rcpt_tos == ["reviewer@example.com"]
    message = mail.message()
    assert message.get_all("Subject") == [
        "[skillmaker] Handwritten digits Bcc: attacker@example.com (digits) v3: passed the gate and deployed"
    ]
    assert message["Bcc"] is None


def test_a_message_that_cannot_be_built_is_a_warning_and_the_stage_succeeds(
    skill_run: SkillRun,
    slack: SlackServer,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_broken_email_message(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot build this e-mail")

    monkeypatch.setattr("skillmaker.notify.stage.email_message", fake_broken_email_message)
    for name, value in {
        "SLACK_BOT_TOKEN": slack.state.token,
        "SLACK_API_URL": slack.url,
        **smtp.env(),
    }.items():
        monkeypatch.setenv(name, value)

    code = main(["notify", "--repo", str(skill_run.repo)])

    assert code == 0
    assert smtp.received == []
    assert len(slack.state.calls_to("chat.postMessage")) == 1  # the other notifier still ran
    assert skill_run.run_json()["warnings"] == [
        "e-mail: not sent (ValueError: cannot build this e-mail)"
    ]


def test_run_json_that_cannot_be_written_does_not_fail_the_stage(
    skill_run: SkillRun, tmp_path: Path
) -> None:
    # run.json replaced by a folder: the outcome cannot be recorded, the stage still ends well.
    run_json = skill_run.run_dir / "run.json"
    run_json.unlink()
    run_json.mkdir()
    out, err = io.StringIO(), io.StringIO()

    code = main(["notify", "--repo", str(skill_run.repo)], out=out, err=err)

    assert code == 0, err.getvalue()
    assert "run.json not updated with the outcome of notify" in out.getvalue()
