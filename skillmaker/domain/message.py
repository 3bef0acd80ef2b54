"""What a run's notifications say, built from its records: pure functions, no I/O.

``summarise`` reads whatever records a run has (a run that failed early has few) into a
``RunSummary``; ``slack_message`` and ``email_message`` turn that summary into a Slack payload with
blocks and an e-mail with the report attached.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

from skillmaker.domain.gate_text import rule_line
from skillmaker.domain.records import GateRecord, MetricsRecord, RunRecord
from skillmaker.domain.stages import STAGE_NAMES
from skillmaker.domain.verdict import RuleResult

Status = Literal["deployed", "passed", "rejected", "inconclusive", "failed", "incomplete"]

# Slack refuses a section text over 3000 characters and a header over 150.
_SECTION_LIMIT = 3000
_HEADER_LIMIT = 150
_SHORT_SHA = 7

_STATUS_WORDS: dict[Status, str] = {
    "deployed": "passed the gate and deployed",
    "passed": "passed the gate",
    "rejected": "rejected by the gate",
    "inconclusive": "inconclusive at the gate, not deployed",
    "failed": "failed",
    "incomplete": "no gate decision yet",
}


@dataclass(frozen=True)
class Comparison:
    """A candidate's figure beside the deployed baseline's (none when nothing is deployed)."""

    candidate: float
    baseline: float | None


@dataclass(frozen=True)
class RunSummary:
    """What a notification says about one run."""

    skill: str
    title: str
    ticket: str
    skill_version: int
    code_version: str
    status: Status
    gate_passed: bool | None = None
    gate_verdict: str | None = None
    """``passed``, ``rejected`` or ``inconclusive`` by the rules (before any override)."""
    baseline_version: int | None = None
    rules: tuple[RuleResult, ...] = ()
    override: Mapping[str, str] | None = None
    accuracy: Comparison | None = None
    latency_p95_ms: Comparison | None = None
    failed_stage: str | None = None
    failure: str | None = None
    warnings: tuple[str, ...] = ()
    report_name: str | None = None
    stages: tuple[tuple[str, str], ...] = field(default=())
    """(stage, outcome) in pipeline order, for the stages the run recorded."""

    @property
    def short_sha(self) -> str:
        """Give the code version as a short commit sha."""
        return self.code_version[:_SHORT_SHA]

    @property
    def headline(self) -> str:
        """Give the one-line summary: skill, version and outcome."""
        words = _STATUS_WORDS[self.status]
        if self.status == "failed" and self.failed_stage:
            words = f"failed at {self.failed_stage}"
        # Version 0: the run failed before the registry gave it a version.
        version = f"v{self.skill_version}" if self.skill_version else "no version"
        return f"{self.title} ({self.skill}) {version}: {words}"


@dataclass(frozen=True)
class SlackMessage:
    """A Slack message: the channel, the fallback text and the blocks."""

    channel: str
    text: str
    blocks: tuple[Mapping[str, Any], ...]

    def payload(self) -> dict[str, Any]:
        """Give the arguments of ``chat.postMessage``."""
        return {
            "channel": self.channel,
            "text": self.text,
            "blocks": [dict(b) for b in self.blocks],
        }


def report_file_name(skill: str, skill_version: int) -> str:
    """Give the name the report PDF is sent under."""
    return f"{skill}-v{skill_version}-report.pdf"


def _first_failed(run: RunRecord | None) -> tuple[str, str] | None:
    if not run:
        return None
    stages = run.get("stages") or {}
    ordered = [n for n in STAGE_NAMES if n in stages] + sorted(set(stages) - set(STAGE_NAMES))
    for name in ordered:
        if stages[name].get("outcome") == "failed":
            return name, str(stages[name].get("message") or "")
    return None


def _status(run: RunRecord | None, gate: GateRecord | None, failed: bool) -> Status:
    if failed:
        return "failed"
    if gate is None:
        return "incomplete"
    if not gate["passed"]:
        return "inconclusive" if gate.get("verdict") == "inconclusive" else "rejected"
    deploy = (run or {}).get("stages", {}).get("deploy") if run else None
    if deploy is not None and deploy.get("outcome") == "passed":
        return "deployed"
    return "passed"


@dataclass(frozen=True)
class RunIdentity:
    """Which run a notification is about: the skill and the run's two version numbers."""

    skill: str
    title: str
    ticket: str
    skill_version: int
    code_version: str


def summarise(
    identity: RunIdentity,
    *,
    run: RunRecord | None = None,
    gate: GateRecord | None = None,
    metrics: MetricsRecord | None = None,
    has_report: bool = False,
    extra_warnings: Sequence[str] = (),
) -> RunSummary:
    """Give the summary of a run from the records it has; any of them may be missing."""
    failed = _first_failed(run)
    accuracy = latency = None
    if metrics is not None:
        candidate = metrics["candidate"]
        baseline = metrics.get("baseline")
        accuracy = Comparison(
            float(candidate["accuracy"]), float(baseline["accuracy"]) if baseline else None
        )
        latency = Comparison(
            float(candidate["latency"]["p95"]),
            float(baseline["latency"]["p95"]) if baseline else None,
        )
    stages: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    if run is not None:
        recorded = run.get("stages") or {}
        stages = tuple((n, str(recorded[n].get("outcome"))) for n in STAGE_NAMES if n in recorded)
        warnings = tuple(run.get("warnings") or ())
    rules: tuple[RuleResult, ...] = ()
    if gate is not None:
        rules = tuple(RuleResult.from_record(r) for r in gate["rules"])
    return RunSummary(
        skill=identity.skill,
        title=identity.title,
        ticket=identity.ticket,
        skill_version=identity.skill_version,
        code_version=identity.code_version,
        status=_status(run, gate, failed is not None),
        gate_passed=None if gate is None else bool(gate["passed"]),
        gate_verdict=None
        if gate is None
        else gate.get("verdict") or ("passed" if gate["passed"] else "rejected"),
        baseline_version=None if gate is None else gate.get("baseline_version"),
        rules=rules,
        override=(gate.get("override") or None) if gate is not None else None,
        accuracy=accuracy,
        latency_p95_ms=latency,
        failed_stage=failed[0] if failed else None,
        failure=failed[1] if failed and failed[1] else None,
        warnings=warnings + tuple(extra_warnings),
        report_name=report_file_name(identity.skill, identity.skill_version)
        if has_report
        else None,
        stages=stages,
    )


def format_accuracy(value: Comparison) -> str:
    """Give accuracy against the baseline, e.g. ``0.9533 (baseline 0.9480, +0.53 points)``."""
    if value.baseline is None:
        return f"{value.candidate:.4f} (no baseline deployed)"
    points = (value.candidate - value.baseline) * 100.0
    return f"{value.candidate:.4f} (baseline {value.baseline:.4f}, {points:+.2f} points)"


def format_latency(value: Comparison) -> str:
    """Give p95 latency against the baseline, e.g. ``p95 12.3 ms (baseline 11.9 ms, +3.4%)``."""
    if value.baseline is None:
        return f"p95 {value.candidate:.1f} ms (no baseline deployed)"
    if value.baseline > 0:
        change = f"{(value.candidate / value.baseline - 1.0) * 100.0:+.1f}%"
    else:
        change = "baseline 0 ms"
    return f"p95 {value.candidate:.1f} ms (baseline {value.baseline:.1f} ms, {change})"


def _gate_text(summary: RunSummary) -> str:
    if summary.gate_passed is None:
        return "no decision"
    word = summary.gate_verdict or ("passed" if summary.gate_passed else "rejected")
    if summary.override and word != "passed":
        word = f"{word}, overridden"
    against = (
        f"against v{summary.baseline_version}"
        if summary.baseline_version is not None
        else "first model"
    )
    return f"{word} ({against})"


def text_lines(summary: RunSummary) -> list[str]:
    """Give the plain-text body shared by the e-mail and Slack's fallback, line by line."""
    lines = [
        summary.headline,
        "",
        f"Skill:         {summary.title} ({summary.skill})",
        f"Ticket:        {summary.ticket}",
        f"Skill version: {summary.skill_version}",
        f"Code version:  {summary.code_version}",
        f"Gate:          {_gate_text(summary)}",
    ]
    if summary.accuracy is not None:
        lines.append(f"Accuracy:      {format_accuracy(summary.accuracy)}")
    if summary.latency_p95_ms is not None:
        lines.append(f"Latency:       {format_latency(summary.latency_p95_ms)}")
    if summary.failed_stage:
        lines.append(f"Failed stage:  {summary.failed_stage}: {summary.failure or 'no message'}")
    if summary.rules:
        lines += ["", "Gate rules:"]
        for rule in summary.rules:
            if rule.estimate is None:  # a gate.json of an older version: the reason only
                lines.append(f"  [{rule.verdict}] {rule.name}: {rule.reason}")
            else:
                lines += [f"  [{rule.verdict}] {rule_line(rule)}", f"      {rule.reason}"]
    if summary.override:
        lines += [
            "",
            "Gate override: " + ", ".join(f"{k}={v}" for k, v in summary.override.items()),
        ]
    if summary.stages:
        lines += ["", "Stages: " + ", ".join(f"{n} {o}" for n, o in summary.stages)]
    if summary.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in summary.warnings]
    lines += [
        "",
        f"Report: {summary.report_name} (attached)"
        if summary.report_name
        else "Report: none (the report stage did not produce one)",
    ]
    return lines


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, _SECTION_LIMIT)}


def _rule_icon(verdict: str) -> str:
    return {"passed": ":white_check_mark:", "inconclusive": ":grey_question:"}.get(verdict, ":x:")


def _slack_rule(rule: RuleResult) -> str:
    head = f"{_rule_icon(rule.verdict)} *{_escape(rule.name)}*"
    if rule.estimate is None:  # a gate.json of an older version: the reason only
        return f"{head}: {_escape(rule.reason)}"
    return f"{head} {_escape(rule_line(rule).split(': ', 1)[1])}\n> {_escape(rule.reason)}"


def slack_message(summary: RunSummary, channel: str) -> SlackMessage:
    """Give the Slack message of a run: versions, gate with reasons, accuracy and latency."""
    icon = {
        "deployed": ":rocket:",
        "passed": ":white_check_mark:",
        "rejected": ":no_entry:",
        "inconclusive": ":grey_question:",
        "failed": ":x:",
        "incomplete": ":hourglass:",
    }[summary.status]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(summary.headline, _HEADER_LIMIT)},
        },
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Skill*\n{_escape(summary.title)} (`{summary.skill}`)"),
                _mrkdwn(f"*Ticket*\n{_escape(summary.ticket)}"),
                _mrkdwn(f"*Skill version*\n{summary.skill_version}"),
                _mrkdwn(f"*Code version*\n`{summary.short_sha}`"),
                _mrkdwn(f"*Gate*\n{icon} {_gate_text(summary)}"),
                _mrkdwn(f"*Outcome*\n{_STATUS_WORDS[summary.status]}"),
            ],
        },
    ]
    figures = []
    if summary.accuracy is not None:
        figures.append(f"*Accuracy* {format_accuracy(summary.accuracy)}")
    if summary.latency_p95_ms is not None:
        figures.append(f"*Latency* {format_latency(summary.latency_p95_ms)}")
    if figures:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(figures))})
    if summary.failed_stage:
        failure = _escape(summary.failure or "no message")
        blocks.append(
            {"type": "section", "text": _mrkdwn(f"*Failed at* `{summary.failed_stage}`: {failure}")}
        )
    if summary.rules:
        rules = "\n".join(_slack_rule(r) for r in summary.rules)
        blocks.append({"type": "section", "text": _mrkdwn(f"*Gate rules*\n{rules}")})
    context = [f"full commit `{summary.code_version}`"]
    context.append(
        f"report `{summary.report_name}` in the thread" if summary.report_name else "no report"
    )
    if summary.warnings:
        context.append(
            f"{len(summary.warnings)} warning(s): " + _escape("; ".join(summary.warnings))
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), _SECTION_LIMIT)}],
        }
    )
    return SlackMessage(channel=channel, text=summary.headline, blocks=tuple(blocks))


def header_text(value: str) -> str:
    """Give a value fit for one e-mail header line: line breaks and control characters become
    single spaces, so no value can end a header or start another (a title with a newline)."""
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in value)
    return " ".join(cleaned.split())


def email_subject(summary: RunSummary) -> str:
    """Give the e-mail subject of a run (one header line, whatever the title holds)."""
    return header_text(f"[skillmaker] {summary.headline}")


def email_message(
    summary: RunSummary,
    *,
    sender: str,
    recipients: Sequence[str],
    report: bytes | None,
    date: datetime,
    message_id: str,
) -> EmailMessage:
    """Give the e-mail of a run to the reviewers, with the report PDF attached when there is one."""
    message = EmailMessage()
    message["Subject"] = email_subject(summary)
    message["From"] = header_text(sender)
    message["To"] = ", ".join(header_text(r) for r in recipients)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = header_text(message_id)
    message["X-Skill"] = header_text(summary.skill)
    message["X-Skill-Version"] = str(summary.skill_version)
    message["X-Code-Version"] = header_text(summary.code_version)
    message.set_content("\n".join(text_lines(summary)) + "\n")
    if report is not None and summary.report_name:
        message.add_attachment(
            report, maintype="application", subtype="pdf", filename=header_text(summary.report_name)
        )
    return message
