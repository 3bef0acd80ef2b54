"""A tiny S3-compatible proxy in front of moto that misbehaves on purpose.

It forwards every request to the moto server over HTTP and can (a) drop the conditional-write
headers, as S3-compatible servers that ignore ``If-None-Match``/``If-Match`` do, and (b) lose the
answer of a write it forwarded (the write happened; the client never hears so).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CONDITIONAL = ("if-match", "if-none-match")
_HOP = ("host", "connection", "content-length", "transfer-encoding", "expect")


@dataclass
class ProxyFaults:
    """What the proxy does wrong, and what it did."""

    ignore_conditions: bool = False
    lose_answers_to: str | None = None
    """Key fragment of PUTs whose first answer is lost."""
    answers_to_lose: int = 0
    lost: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(upstream: str, faults: ProxyFaults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP
                and not (faults.ignore_conditions and k.lower() in _CONDITIONAL)
            }
            if body is not None and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "binary/octet-stream"  # urllib would say a form
            request = urllib.request.Request(
                upstream + self.path, data=body, headers=headers, method=self.command
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, reply, answer = response.status, response.read(), response.headers
            except urllib.error.HTTPError as exc:
                status, reply, answer = exc.code, exc.read(), exc.headers
            if self._lose(body):
                self.close_connection = True  # the write happened; its answer never arrives
                return
            self.send_response(status)
            for key, value in answer.items():
                if key.lower() not in _HOP and key.lower() not in ("server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)

        def _lose(self, body: bytes | None) -> bool:
            if self.command != "PUT" or faults.lose_answers_to is None:
                return False
            if faults.lose_answers_to not in self.path:
                return False
            with faults.lock:
                if faults.answers_to_lose <= 0:
                    return False
                faults.answers_to_lose -= 1
                faults.lost += 1
            return True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server names)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def s3_proxy(upstream: str, faults: ProxyFaults) -> Iterator[str]:
    """Give the URL of a proxy to ``upstream`` that misbehaves as ``faults`` say."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream, faults))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
