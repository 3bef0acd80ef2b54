"""E-mail: SMTP with STARTTLS and login (``SMTP_*`` variables) or Amazon SES through boto3.

Every failure becomes ``DeliveryError``, marked transient (refused connection, timeout, a 4xx
SMTP reply, throttling) or permanent (bad login, refused sender or recipients, bad settings).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from skillmaker.retry import DeliveryError

IMPLICIT_TLS_PORT = 465
_TRANSIENT_SES_CODES = {
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "RequestTimeout",
}


class Mailer(Protocol):
    """Something that sends an e-mail and says where it went."""

    def describe(self) -> str:
        """Give where mail goes, for messages to the user."""
        ...

    def send(self, message: EmailMessage) -> str:
        """Give a receipt (server reply or message id) for a sent message."""
        ...


def _recipients(message: EmailMessage) -> list[str]:
    return [addr for _, addr in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]


@dataclass(frozen=True)
class SmtpMailer:
    """Sends through an SMTP server: STARTTLS whenever the server offers it, then login if set.

    A password is never sent over a connection that is not encrypted: a server without STARTTLS
    is refused when a login is configured. Port 465 speaks TLS from the first byte.
    """

    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    timeout_s: float = 15.0
    ca_file: str | None = None
    """CA bundle that checks the server's certificate (``SSL_CERT_FILE``; default: the system's)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpMailer | None:
        """Give the mailer of the ``SMTP_*`` variables, or none without ``SMTP_HOST``.

        Reads ``SMTP_HOST``, ``SMTP_PORT`` (587), ``SMTP_USER``, ``SMTP_PASSWORD``, ``SMTP_FROM``;
        raises a permanent ``DeliveryError`` when they are unusable.
        """
        host = env.get("SMTP_HOST", "").strip()
        if not host:
            return None
        raw_port = env.get("SMTP_PORT", "").strip() or "587"
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise DeliveryError(
                f"SMTP_PORT must be a port number (got {raw_port!r})", transient=False
            )
        user = env.get("SMTP_USER", "").strip() or None
        sender = env.get("SMTP_FROM", "").strip() or (user if user and "@" in user else "")
        if not sender:
            raise DeliveryError("SMTP_FROM is not set (the sender address)", transient=False)
        return cls(
            host=host,
            port=int(raw_port),
            sender=sender,
            user=user,
            password=env.get("SMTP_PASSWORD") or None,
            ca_file=env.get("SSL_CERT_FILE") or None,
        )

    def describe(self) -> str:
        """Give ``smtp://host:port``."""
        return f"smtp://{self.host}:{self.port}"

    def _connect(self, context: ssl.SSLContext) -> smtplib.SMTP:
        if self.port == IMPLICIT_TLS_PORT:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        elif self.user:
            smtp.close()
            raise DeliveryError(
                f"{self.describe()} offers no STARTTLS; the password is not sent unencrypted",
                transient=False,
            )
        return smtp

    def send(self, message: EmailMessage) -> str:
        """Give the recipients the message was accepted for."""
        context = ssl.create_default_context(cafile=self.ca_file)
        recipients = _recipients(message)
        try:
            with self._connect(context) as smtp:
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(message, from_addr=self.sender, to_addrs=recipients)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{self.describe()} refused the login of {self.user!r}: {exc.smtp_code}",
                transient=False,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"{self.describe()} refused every recipient: {', '.join(exc.recipients)}",
                transient=False,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            detail = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
            )
            raise DeliveryError(
                f"{self.describe()} answered {exc.smtp_code} {detail}".strip(),
                transient=400 <= exc.smtp_code < 500,
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"{self.describe()}: certificate not trusted ({exc.verify_message})",
                transient=False,
            ) from exc
        except TimeoutError as exc:
            raise DeliveryError(
                f"{self.describe()} did not answer in time", transient=True
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a read that timed out as a disconnection; say what happened.
            if isinstance(exc.__context__, TimeoutError):
                raise DeliveryError(
                    f"{self.describe()} did not answer in time", transient=True
                ) from exc
            raise DeliveryError(f"{self.describe()}: {exc}", transient=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"cannot reach {self.describe()} ({exc.strerror or exc})"
                if isinstance(exc, OSError)
                else f"{self.describe()}: {exc}",
                transient=True,
            ) from exc
        if refused:
            raise DeliveryError(
                f"{self.describe()} delivered to {len(recipients) - len(refused)} of "
                f"{len(recipients)} recipients; refused {', '.join(sorted(refused))}",
                transient=False,
            )
        return ", ".join(recipients)


@dataclass(frozen=True)
class SesMailer:
    """Sends through Amazon SES (``SendRawEmail``); boto3 reads credentials from the env."""

    sender: str
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], default_region: str | None) -> SesMailer | None:
        """Give the mailer of ``SES_FROM`` (and ``SES_REGION``), or none without ``SES_FROM``."""
        sender = env.get("SES_FROM", "").strip()
        if not sender:
            return None
        region = env.get("SES_REGION") or env.get("AWS_DEFAULT_REGION") or default_region
        return cls(sender=sender, region=region)

    def describe(self) -> str:
        """Give ``ses://region``."""
        return f"ses://{self.region or 'default-region'}"

    def send(self, message: EmailMessage) -> str:
        """Give the SES message id."""
        # One attempt per call: retries are the caller's, bounded and recorded.
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5)
        try:
            client = boto3.client("ses", region_name=self.region, config=config)
            response = client.send_raw_email(
                Source=self.sender,
                Destinations=_recipients(message),
                RawMessage={"Data": message.as_bytes()},
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            raise DeliveryError(
                f"{self.describe()} refused the message: {code} {exc}",
                transient=code in _TRANSIENT_SES_CODES or status >= 500,
            ) from exc
        except NoCredentialsError as exc:
            raise DeliveryError(f"{self.describe()}: no AWS credentials", transient=False) from exc
        except BotoCoreError as exc:
            raise DeliveryError(f"cannot reach {self.describe()} ({exc})", transient=True) from exc
        return str(response["MessageId"])


def mailer_from_env(env: Mapping[str, str], default_region: str | None) -> Mailer | None:
    """Give the configured mailer: SMTP when ``SMTP_HOST`` is set, else SES with ``SES_FROM``."""
    smtp = SmtpMailer.from_env(env)
    if smtp is not None:
        return smtp
    return SesMailer.from_env(env, default_region)
