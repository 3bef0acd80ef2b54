"""What notifications say: summaries from whatever records a run has, Slack blocks, e-mails."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes, policy

from skillmaker.config.model import GateConfig
from skillmaker.domain.gate import decide
from skillmaker.domain.message import (
    Comparison,
    RunIdentity,
    email_message,
    format_accuracy,
    format_latency,
    slack_message,
    summarise,
    text_lines,
)
from skillmaker.records import GateRecord
from tests.notify.conftest import PASSED_STAGES, gate_record, metrics_record, run_record
from tests.skill_repos import balanced_truth, model_result, predict
from tests.skill_repos import metrics_record as repo_metrics

SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
WHO = RunIdentity(
    skill="digits", title="Handwritten digits", ticket="DEMO-1", skill_version=3, code_version=SHA
)


def test_a_deployed_run_reads_as_deployed_with_its_figures_against_the_baseline() -> None:
    summary = summarise(
        WHO,
        run=run_record(SHA, PASSED_STAGES),
        gate=gate_record(passed=True),
        metrics=metrics_record(SHA),
        has_report=True,
    )

    assert summary.status == "deployed"
    assert summary.headline == "Handwritten digits (digits) v3: passed the gate and deployed"
    assert summary.short_sha == "1a2b3c4"
    assert summary.accuracy == Comparison(0.9533, 0.9480)
    assert summary.latency_p95_ms == Comparison(12.5, 12.0)
    assert summary.baseline_version == 2
    assert [r.name for r in summary.rules] == ["accuracy", "latency_p95"]
    assert summary.report_name == "digits-v3-report.pdf"


def test_outcomes_follow_the_records() -> None:
    gate_only = {k: v for k, v in PASSED_STAGES.items() if k != "deploy"}
    rejected = summarise(WHO, gate=gate_record(passed=False))
    passed = summarise(WHO, run=run_record(SHA, gate_only), gate=gate_record(passed=True))
    failed = summarise(WHO, run=run_record(SHA, {"version": "passed", "train": "failed"}))
    nothing = summarise(WHO)

    assert rejected.headline.endswith("v3: rejected by the gate")
    assert passed.status == "passed"
    assert (failed.status, failed.failed_stage, failed.failure) == (
        "failed",
        "train",
        "out of memory",
    )
    assert failed.headline.endswith("v3: failed at train")
    assert (nothing.status, nothing.accuracy, nothing.report_name) == ("incomplete", None, None)


def test_a_first_model_has_no_baseline() -> None:
    summary = summarise(WHO, metrics=metrics_record(SHA, baseline=False))

    assert summary.accuracy == Comparison(0.9533, None)
    assert format_accuracy(summary.accuracy) == "0.9533 (no baseline deployed)"
    assert format_latency(Comparison(12.5, None)) == "p95 12.5 ms (no baseline deployed)"


def test_figures_are_compared_in_points_and_percent() -> None:
    assert format_accuracy(Comparison(0.9, 0.925)) == "0.9000 (baseline 0.9250, -2.50 points)"
    assert format_latency(Comparison(9.0, 12.0)) == "p95 9.0 ms (baseline 12.0 ms, -25.0%)"


def test_slack_blocks_carry_skill_versions_gate_reasons_and_figures() -> None:
    summary = summarise(
        WHO,
        run=run_record(SHA, PASSED_STAGES),
        gate=gate_record(passed=False),
        metrics=metrics_record(SHA),
        has_report=True,
    )

    message = slack_message(summary, "#skills")

    assert message.channel == "#skills"
    assert message.text == "Handwritten digits (digits) v3: rejected by the gate"
    header, facts, figures, rules, context = message.blocks
    assert header["text"]["text"] == message.text
    fields = [f["text"] for f in facts["fields"]]
    assert "*Skill version*\n3" in fields and "*Code version*\n`1a2b3c4`" in fields
    assert "*Gate*\n:no_entry: rejected (against v2)" in fields
    assert figures["text"]["text"] == (
        "*Accuracy* 0.9533 (baseline 0.9480, +0.53 points)\n"
        "*Latency* p95 12.5 ms (baseline 12.0 ms, +4.2%)"
    )
    assert ":x: *latency_p95*: 12.5 ms &gt; 12.2 ms (5% slower)" in rules["text"]["text"]
    assert SHA in context["elements"][0]["text"]
    json.dumps(message.payload())  # what chat.postMessage is sent


def test_slack_text_stays_within_slacks_limits() -> None:
    many: GateRecord = gate_record(passed=False)
    rule = many["rules"][0]
    many["rules"] = [{**rule, "name": f"class_{i}", "reason": "x" * 80} for i in range(200)]
    long_title = RunIdentity("digits", "T" * 300, "DEMO-1", 3, SHA)

    message = slack_message(summarise(long_title, gate=many), "#skills")

    assert len(message.blocks[0]["text"]["text"]) <= 150
    for block in message.blocks:
        if "text" in block and block["text"]["type"] == "mrkdwn":
            assert len(block["text"]["text"]) <= 3000


def test_the_email_attaches_the_report_and_says_what_slack_says() -> None:
    report = b"%PDF-1.4\n" + bytes(range(256)) * 10
    summary = summarise(
        WHO, gate=gate_record(passed=True), metrics=metrics_record(SHA), has_report=True
    )
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    message = email_message(
        summary,
        sender="skillmaker@example.com",
        recipients=["a@example.com", "b@example.com"],
        report=report,
        date=when,
        message_id="<run-3@skillmaker>",
    )

    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["To"] == "a@example.com, b@example.com"
    assert parsed["X-Skill-Version"] == "3" and parsed["X-Code-Version"] == SHA
    assert parsed["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "digits-v3-report.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_payload(decode=True) == report
    plain = parsed.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert body == "\n".join(text_lines(summary)) + "\n"
    assert "Accuracy:      0.9533 (baseline 0.9480, +0.53 points)" in body
    assert "  [rejected]" not in body and "  [passed] latency_p95: 12.5 ms <= 12.6 ms" in body


def test_an_email_without_a_report_says_so_and_attaches_nothing() -> None:
    summary = summarise(WHO, run=run_record(SHA, {"data": "failed"}))

    message = email_message(
        summary,
        sender="s@example.com",
        recipients=["a@example.com"],
        report=None,
        date=datetime(2026, 1, 1, tzinfo=UTC),
        message_id="<x@y>",
    )

    assert list(message.iter_attachments()) == []
    assert "Report: none (the report stage did not produce one)" in message.get_content()


def _inconclusive_gate() -> GateRecord:
    truth = balanced_truth()
    base_wrong = {c + 100 * k for c in range(10) for k in range(5)}
    cand_wrong = base_wrong | {11, 12, 13}  # three more errors: -0.3 points
    baseline = model_result(2, truth, predict(truth, base_wrong))
    candidate = model_result(3, truth, predict(truth, cand_wrong))
    gate = GateConfig(accuracy_tolerance=0.005)
    return decide(repo_metrics(truth, candidate, baseline), gate).to_record()


def test_an_inconclusive_verdict_explains_itself_in_slack_and_the_email() -> None:
    summary = summarise(WHO, gate=_inconclusive_gate())
    assert summary.status == "inconclusive"
    assert summary.headline.endswith("v3: inconclusive at the gate, not deployed")

    body = "\n".join(text_lines(summary))
    assert "Gate:          inconclusive (against v2)" in body
    assert (
        "  [inconclusive] accuracy: inconclusive; estimate -0.30 pt (95% CI -0.84 pt .. +0.20 pt), "
        "n=1000, b=0, c=3, p=0.25, margin -0.34 pt"
    ) in body
    assert "about 1,560 test images at this disagreement rate (0.30%) could show it" in body
    assert "  [passed] class_recall: passed; estimate -1.00 pt" in body

    header, _facts, rules, _context = slack_message(summary, "#skills").blocks
    assert header["text"]["text"].endswith("inconclusive at the gate, not deployed")
    text = rules["text"]["text"]
    assert text.startswith(
        "*Gate rules*\n:grey_question: *accuracy* inconclusive; estimate -0.30 pt "
        "(95% CI -0.84 pt .. +0.20 pt), n=1000, b=0, c=3, p=0.25, margin -0.34 pt\n"
        "> accuracy 94.70% vs 95.00%"
    )
    assert ":white_check_mark: *latency_p95* passed; estimate 1.000x" in text
