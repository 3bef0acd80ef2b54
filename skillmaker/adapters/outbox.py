"""The outbox: notifications written to a folder when no Slack or mail server is configured.

``slack.json`` holds the ``chat.postMessage`` payload and the file it would upload, ``email.eml``
the whole e-mail with its attachment (open it in any mail client), ``<report name>`` the PDF.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from skillmaker.domain.message import SlackMessage
from skillmaker.domain.records import dumps_record
from skillmaker.fileio import write_atomic

SLACK_FILE = "slack.json"
EMAIL_FILE = "email.eml"


def write_slack(
    folder: Path, message: SlackMessage, report: bytes | None, report_name: str | None
) -> Path:
    """Give the path of the Slack payload written to the outbox, with the report beside it."""
    payload = message.payload()
    if report is not None and report_name:
        write_atomic(folder / report_name, report)
        payload["files"] = [
            {
                "filename": report_name,
                "path": report_name,
                "bytes": len(report),
                "sha256": hashlib.sha256(report).hexdigest(),
                "thread": "the message above",
            }
        ]
    path = folder / SLACK_FILE
    text = dumps_record(payload)
    write_atomic(path, text.encode("utf-8"))
    return path


def write_email(folder: Path, message: EmailMessage) -> Path:
    """Give the path of the e-mail written to the outbox as an ``.eml`` file."""
    path = folder / EMAIL_FILE
    write_atomic(path, message.as_bytes(policy=SMTP))
    return path
