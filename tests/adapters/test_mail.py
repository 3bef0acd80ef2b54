"""The mail adapter: SMTP with STARTTLS and login against aiosmtpd, SES against moto's server."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.backends import get_backend

from skillmaker.adapters.mail import SesMailer, SmtpMailer, mailer_from_env
from skillmaker.retry import DeliveryError
from tests.helpers import MotoServer, free_port
from tests.notify.servers import SmtpServer, silent_server, smtp_server

MOTO_ACCOUNT = "123456789012"  # the account moto serves when none is given
REPORT = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


def _message(sender: str = "skillmaker@example.com") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "digits v3"
    message["From"] = sender
    message["To"] = "reviewer@example.com, lead@example.com"
    message.set_content("digits v3 passed the gate\n")
    message.add_attachment(REPORT, maintype="application", subtype="pdf", filename="r.pdf")
    return message


def _attachment(message: Any) -> bytes:
    [part] = list(message.iter_attachments())
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


def _mailer(server: SmtpServer, **changes: Any) -> SmtpMailer:
    mailer = SmtpMailer.from_env(server.env())
    assert mailer is not None
    return SmtpMailer(**{**mailer.__dict__, "timeout_s": 5.0, **changes})


def test_sends_over_starttls_with_login_and_keeps_the_attachment_byte_identical(
    tls_smtp: SmtpServer,
) -> None:
    receipt = _mailer(tls_smtp).send(_message())

    [mail] = tls_smtp.received
    assert mail.tls and mail.login == "mailer"
    assert mail.mail_from == "skillmaker@example.com"
    assert mail.rcpt_tos == ["reviewer@example.com", "lead@example.com"]
    assert _attachment(message_from_bytes(mail.data, policy=policy.default)) == REPORT
    assert receipt == "reviewer@example.com, lead@example.com"


def test_a_wrong_password_is_permanent(tls_smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        _mailer(tls_smtp, password="wrong").send(_message())

    assert not caught.value.transient
    assert "refused the login of 'mailer'" in str(caught.value)
    assert tls_smtp.received == []


def test_an_untrusted_certificate_is_permanent(tls_smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        _mailer(tls_smtp, ca_file=None).send(_message())

    assert not caught.value.transient
    assert "certificate not trusted" in str(caught.value)


def test_a_password_is_never_sent_to_a_server_without_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, tls=False, user=None) as plain:
        mailer = SmtpMailer(plain.host, plain.port, "a@example.com", user="u", password="p")
        with pytest.raises(DeliveryError) as caught:
            mailer.send(_message())
        assert not caught.value.transient
        assert "offers no STARTTLS" in str(caught.value)
        assert plain.received == []

        # Without a login, a plain local relay is fine.
        SmtpMailer(plain.host, plain.port, "a@example.com").send(_message())
        [mail] = plain.received
        assert not mail.tls
        assert _attachment(message_from_bytes(mail.data, policy=policy.default)) == REPORT


def test_a_refused_connection_is_transient() -> None:
    port = free_port()
    with pytest.raises(DeliveryError) as caught:
        SmtpMailer("127.0.0.1", port, "a@example.com", timeout_s=5).send(_message())

    assert caught.value.transient
    assert f"cannot reach smtp://127.0.0.1:{port}" in str(caught.value)


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with silent_server() as port, pytest.raises(DeliveryError) as caught:
        SmtpMailer("127.0.0.1", port, "a@example.com", timeout_s=1).send(_message())

    assert caught.value.transient
    assert "did not answer in time" in str(caught.value)


def test_smtp_settings_come_from_the_environment() -> None:
    assert mailer_from_env({}, "eu-west-1") is None
    mailer = mailer_from_env({"SMTP_HOST": "mail.example.com", "SMTP_USER": "me@example.com"}, None)
    assert mailer == SmtpMailer("mail.example.com", 587, "me@example.com", user="me@example.com")
    with pytest.raises(DeliveryError, match="SMTP_PORT must be a port number"):
        SmtpMailer.from_env({"SMTP_HOST": "h", "SMTP_PORT": "smtp", "SMTP_FROM": "a@b.c"})
    with pytest.raises(DeliveryError, match="SMTP_FROM is not set"):
        SmtpMailer.from_env({"SMTP_HOST": "h", "SMTP_USER": "apikey"})
    ses = mailer_from_env({"SES_FROM": "a@example.com"}, "eu-west-1")
    assert ses == SesMailer("a@example.com", "eu-west-1")


def test_sends_through_ses(aws_env: MotoServer) -> None:
    boto3.client("ses", region_name="eu-west-1").verify_email_identity(
        EmailAddress="skillmaker@example.com"
    )
    mailer = SesMailer("skillmaker@example.com", "eu-west-1")

    message_id = mailer.send(_message())

    backend = get_backend("ses")[MOTO_ACCOUNT]["eu-west-1"]
    [sent] = [m for m in backend.sent_messages if m.id == message_id]
    assert set(sent.destinations) == {"lead@example.com", "reviewer@example.com"}
    assert _attachment(message_from_string(sent.raw_data, policy=policy.default)) == REPORT


def test_an_unverified_ses_sender_is_permanent(aws_env: MotoServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        SesMailer("nobody@example.com", "eu-west-1").send(_message("nobody@example.com"))

    assert not caught.value.transient
    assert "MessageRejected" in str(caught.value)
