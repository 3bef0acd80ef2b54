"""Real servers on 127.0.0.1 for notification tests: a Slack Web API server and SMTP (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import free_port

CHANNEL_ID = "C0SKILLS"
MESSAGE_TS = "1700000000.000100"


@dataclass
class SlackCall:
    """One request the Slack server received."""

    path: str
    token: str | None
    args: dict[str, Any]
    body: bytes


@dataclass
class SlackState:
    """What the Slack server knows and has received."""

    token: str
    calls: list[SlackCall] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)
    """HTTP statuses to answer the next requests with, one per request, before behaving."""
    failures_for: dict[str, list[int]] = field(default_factory=dict)
    """The same, for the requests of one method only (e.g. ``files.getUploadURLExternal``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, method: str) -> list[SlackCall]:
        """Give the calls of one Web API method (or upload path prefix)."""
        return [c for c in self.calls if c.path.rstrip("/").endswith(method)]


class _SlackHandler(BaseHTTPRequestHandler):
    server: _SlackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "")
        args: dict[str, Any] = {}
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/upload/"):
            pass  # the file's raw bytes, whatever the content type says
        elif kind.startswith("application/json"):
            args = json.loads(body or b"{}")
        elif kind.startswith("application/x-www-form-urlencoded"):
            args = dict(urllib.parse.parse_qsl(body.decode()))
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        with state.lock:
            state.calls.append(SlackCall(path, token, args, body))
            queue = state.failures_for.get(path.rsplit("/", 1)[-1]) or state.failures
            failure = queue.pop(0) if queue else None
        if failure is not None:
            self._reply(failure, b"<html>upstream unavailable</html>", "text/html")
            return
        if path.startswith("/upload/"):
            with state.lock:
                state.uploads[path.rsplit("/", 1)[-1]] = body
            self._reply(200, b"OK - %d" % len(body), "text/plain")
            return
        if token != state.token:
            self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        method = path.rsplit("/", 1)[-1]
        self._reply(200, self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        port = self.server.server_address[1]
        if method == "auth.test":
            return {"ok": True, "user_id": "U0BOT", "team": "skills"}
        if method == "chat.postMessage":
            return {
                "ok": True,
                "channel": CHANNEL_ID,
                "ts": MESSAGE_TS,
                "message": {"text": args.get("text")},
            }
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.server.state.uploads) + 1:04d}"
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": f"http://127.0.0.1:{port}/upload/{file_id}",
            }
        if method == "files.completeUploadExternal":
            files = (
                json.loads(args["files"]) if isinstance(args.get("files"), str) else args["files"]
            )
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        return {"ok": False, "error": "unknown_method"}


class _SlackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SlackState) -> None:
        super().__init__(address, _SlackHandler)
        self.state = state


@dataclass
class SlackServer:
    """A running Slack Web API server: its base URL and what it received."""

    url: str
    state: SlackState


@contextmanager
def slack_server(token: str = "xoxb-test-token") -> Iterator[SlackServer]:
    """Give a Slack Web API server on 127.0.0.1: chat.postMessage, the v2 upload, auth.test."""
    state = SlackState(token=token)
    httpd = _SlackHTTPServer(("127.0.0.1", 0), state)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SlackServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/api/", state=state)
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Received:
    """One e-mail an SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        """Give the parsed message."""
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Mailbox:
    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content,
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 OK"


class _Login:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        # handled=False: aiosmtpd itself answers 535 to a failed login.
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@dataclass
class SmtpServer:
    """A running SMTP server and what it accepted."""

    host: str
    port: int
    received: list[Received]
    cert: Path | None = None
    user: str | None = None
    password: str | None = None

    def env(self, sender: str = "skillmaker@example.com") -> dict[str, str]:
        """Give the ``SMTP_*`` variables (and the CA file) that point skillmaker at this server."""
        env = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_FROM": sender}
        if self.user:
            env |= {"SMTP_USER": self.user, "SMTP_PASSWORD": self.password or ""}
        if self.cert:
            env["SSL_CERT_FILE"] = str(self.cert)
        return env


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """Give a certificate and key for 127.0.0.1 and localhost, valid for a day (made here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def smtp_server(
    folder: Path, *, tls: bool = True, user: str | None = "mailer", password: str = "s3cret"
) -> Iterator[SmtpServer]:
    """Give an aiosmtpd server on 127.0.0.1: with ``tls``, STARTTLS required and login required."""
    mailbox = _Mailbox()
    kwargs: dict[str, Any] = {}
    cert = None
    if tls:
        cert, key = self_signed_cert(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs |= {"tls_context": context, "require_starttls": True}
    if user:
        kwargs |= {"authenticator": _Login(user, password), "auth_required": True}
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(
            "127.0.0.1", port, mailbox.received, cert, user, password if user else None
        )
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """Give the port of a server that accepts connections and never says a word (timeouts)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
