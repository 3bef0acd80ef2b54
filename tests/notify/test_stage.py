"""The notify stage against real Slack and SMTP servers on 127.0.0.1, the outbox, and failures."""

from __future__ import annotations

import io
import json
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from skillmaker.cli import main
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome
from skillmaker.notify.stage import NotifyResult, notify_run
from skillmaker.pipeline.execute import execute_stage
from skillmaker.records import GATE, METRICS, REPORT, RUN, write_record
from skillmaker.retry import RetryPolicy
from tests.helpers import free_port
from tests.notify.conftest import VERSION, SkillRun, run_record
from tests.notify.servers import CHANNEL_ID, MESSAGE_TS, SlackServer, SmtpServer

FAST = RetryPolicy(attempts=3, backoff_s=(0.0,))


def _notify(ctx: SkillContext, **options: Any) -> NotifyResult:
    """Run the notify stage as its command does: through the stage runner, which records."""
    result: list[NotifyResult] = []

    def body() -> Outcome:
        result.append(notify_run(ctx, **options))
        return Outcome.passed(warnings=result[0].warnings)

    execute_stage(ctx, "notify", body)
    return result[0]


def _attachment(message: EmailMessage) -> tuple[str | None, bytes]:
    parts = list(message.iter_attachments())
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return parts[0].get_filename(), payload


def _env(slack: SlackServer, smtp: SmtpServer) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": slack.state.token, "SLACK_API_URL": slack.url, **smtp.env()}


def test_a_run_posts_to_slack_uploads_the_report_and_mails_the_reviewers(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(slack, smtp).items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()

    code = main(["notify", "--repo", str(skill_run.repo)], out=out)

    assert code == 0
    [post] = slack.state.calls_to("chat.postMessage")
    assert post.token == "xoxb-test-token"
    assert post.args["channel"] == "#skills-demo"
    blocks = json.dumps(post.args["blocks"])
    for fact in ("digits", "Skill version*\\n3", skill_run.commit[:7], "passed (against v2)"):
        assert fact in blocks
    assert "0.9533 (baseline 0.9480, +0.53 points)" in blocks
    assert "p95 12.5 ms (baseline 12.0 ms, +4.2%)" in blocks
    assert "12.5 ms &lt;= 12.6 ms" in blocks  # Slack mrkdwn escapes <, > and &
    [uploaded] = slack.state.uploads.values()
    assert uploaded == skill_run.report
    [ticket] = slack.state.calls_to("files.getUploadURLExternal")
    assert ticket.args["filename"] == "digits-v3-report.pdf"
    [complete] = slack.state.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == CHANNEL_ID
    assert complete.args["thread_ts"] == MESSAGE_TS

    [mail] = smtp.received
    assert mail.tls and mail.login == "mailer"
    assert mail.rcpt_tos == ["reviewer@example.com"]
    message = mail.message()
    assert str(message["Subject"]).strip().startswith("[skillmaker] Handwritten digits (digits) v3")
    assert _attachment(message) == ("digits-v3-report.pdf", skill_run.report)
    assert skill_run.commit in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    assert skill_run.run_json()["warnings"] == []
    assert not (skill_run.repo / ".skillmaker" / "outbox").exists()
    assert "posted to #skills-demo" in out.getvalue()


def test_with_both_servers_down_the_stage_succeeds_and_run_json_holds_the_warnings(
    skill_run: SkillRun, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_slack, dead_smtp = free_port(), free_port()
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{dead_slack}/api/")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(dead_smtp))
    monkeypatch.setenv("SMTP_FROM", "skillmaker@example.com")

    code = main(["notify", "--repo", str(skill_run.repo)])

    assert code == 0
    warnings = skill_run.run_json()["warnings"]
    assert len(warnings) == 2
    slack_warning, mail_warning = warnings
    assert slack_warning.startswith("slack #skills-demo: ")
    assert "cannot reach Slack" in slack_warning and "after 3 attempts" in slack_warning
    assert mail_warning.startswith(f"e-mail via smtp://127.0.0.1:{dead_smtp}: cannot reach")
    assert "after 3 attempts" in mail_warning
    # The rest of run.json is untouched.
    assert skill_run.run_json()["stages"]["deploy"]["outcome"] == "passed"
    assert "notify: warning: slack #skills-demo" in capsys.readouterr().out


def test_a_transient_slack_error_is_retried_and_then_delivered(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer
) -> None:
    slack.state.failures += [503, 502]
    sleeps: list[float] = []

    result = _notify(
        skill_run.context(_env(slack, smtp)),
        policy=RetryPolicy(attempts=3, backoff_s=(0.25, 0.5)),
        sleep=sleeps.append,
    )

    assert result.warnings == ()
    assert len(slack.state.calls_to("chat.postMessage")) == 3
    assert sleeps == [0.25, 0.5]
    assert list(slack.state.uploads.values()) == [skill_run.report]
    assert len(smtp.received) == 1


def test_a_bad_token_is_a_warning_and_is_not_retried(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer
) -> None:
    env = _env(slack, smtp) | {"SLACK_BOT_TOKEN": "xoxb-revoked"}

    result = _notify(skill_run.context(env), policy=FAST, sleep=lambda _: None)

    assert len(slack.state.calls_to("chat.postMessage")) == 1
    assert slack.state.uploads == {}
    [warning] = result.warnings
    assert "Slack refused the token (invalid_auth)" in warning
    assert skill_run.run_json()["warnings"] == [warning]
    assert len(smtp.received) == 1  # the e-mail still goes out


def test_a_failed_upload_keeps_the_message_and_records_a_warning(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer
) -> None:
    slack.state.failures_for["files.getUploadURLExternal"] = [500, 500, 500]

    result = _notify(skill_run.context(_env(slack, smtp)), policy=FAST)

    assert len(slack.state.calls_to("chat.postMessage")) == 1  # the message is not repeated
    assert len(slack.state.calls_to("files.getUploadURLExternal")) == 3
    [warning] = result.warnings
    assert warning.startswith("slack #skills-demo report upload: uploading digits-v3-report.pdf")
    assert "HTTP 500" in warning and "after 3 attempts" in warning
    assert skill_run.run_json()["warnings"] == [warning]


def test_without_slack_or_mail_configured_messages_go_to_the_outbox(
    skill_run: SkillRun,
) -> None:
    context = skill_run.context({})

    result = _notify(context, policy=FAST)

    folder = skill_run.repo / ".skillmaker" / "outbox" / str(VERSION)
    assert result.outbox == folder
    assert result.delivered == () and result.warnings == ()
    payload = json.loads((folder / "slack.json").read_text())
    assert payload["channel"] == "#skills-demo"
    assert payload["blocks"][0]["type"] == "header"
    assert payload["files"][0]["filename"] == "digits-v3-report.pdf"
    assert (folder / "digits-v3-report.pdf").read_bytes() == skill_run.report
    message = message_from_bytes((folder / "email.eml").read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "reviewer@example.com"
    assert message["From"] == "skillmaker@localhost"
    assert _attachment(message) == ("digits-v3-report.pdf", skill_run.report)
    printed = context.out.getvalue()  # type: ignore[attr-defined]
    assert f"notify: outbox: {folder}" in printed


def test_a_run_that_failed_early_still_notifies_with_what_it_has(
    skill_run: SkillRun, slack: SlackServer, smtp: SmtpServer
) -> None:
    for name in (GATE, METRICS, REPORT):
        (skill_run.run_dir / name).unlink()
    stages = {"version": "passed", "build": "skipped", "data": "passed", "train": "failed"}
    write_record(skill_run.run_dir / RUN, run_record(skill_run.commit, stages))

    result = _notify(skill_run.context(_env(slack, smtp)), policy=FAST)

    assert result.warnings == ()
    [post] = slack.state.calls_to("chat.postMessage")
    assert post.args["text"] == "Handwritten digits (digits) v3: failed at train"
    assert "out of memory" in json.dumps(post.args["blocks"])
    assert slack.state.uploads == {}
    message = smtp.received[0].message()
    assert list(message.iter_attachments()) == []
    assert "Failed stage:  train: out of memory" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_broken_record_is_left_out_and_said_so(skill_run: SkillRun) -> None:
    (skill_run.run_dir / GATE).write_text("{not json")
    # A hand edit: valid JSON, but not a metrics record.
    (skill_run.run_dir / METRICS).write_text('{"candidate": {}}')

    result = _notify(skill_run.context({}), policy=FAST)

    gate_problem, metrics_problem = result.warnings
    assert "gate.json: line 1, column 2: invalid JSON" in gate_problem
    assert "metrics.json: candidate.skill_version: missing" in metrics_problem
    payload = json.loads((skill_run.repo / ".skillmaker/outbox/3/slack.json").read_text())
    assert payload["text"] == "Handwritten digits (digits) v3: no gate decision yet"
    assert skill_run.run_json()["warnings"] == list(result.warnings)


def test_warnings_reach_a_run_json_that_did_not_exist(skill_run: SkillRun) -> None:
    (skill_run.run_dir / RUN).unlink()
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_FROM": "a@example.com"}

    result = _notify(skill_run.context(env), policy=RetryPolicy(attempts=1))

    record = skill_run.run_json()
    assert record["skill_version"] == VERSION and record["code_version"] == skill_run.commit
    assert record["warnings"] == list(result.warnings) and len(result.warnings) == 1


def test_warnings_are_appended_to_the_stores_run_json(skill_run: SkillRun) -> None:
    context = skill_run.context({"SLACK_BOT_TOKEN": "x", "SLACK_API_URL": "http://127.0.0.1:9/"})
    store = context.artifacts()
    key = f"skills/digits/runs/{VERSION}/run.json"
    store.put_bytes(key, json.dumps(run_record(skill_run.commit, {"version": "passed"})).encode())

    result = _notify(context, policy=RetryPolicy(attempts=1))

    assert json.loads(store.get_bytes(key))["warnings"] == list(result.warnings)


def test_without_a_current_run_there_is_nothing_to_notify(
    tmp_path: Path, skill_run: SkillRun
) -> None:
    (skill_run.repo / ".skillmaker" / "current.json").unlink()
    out = io.StringIO()

    assert main(["notify", "--repo", str(skill_run.repo)], out=out) == 0

    assert "nothing to notify" in out.getvalue()
