"""Guards of the server's connections: slow clients time out, a busy server says so, and a client
that went away costs one log line.

- Headers: a connection must send a whole request head within ``header_timeout_s`` of opening,
  or of the first byte of its next request; otherwise it gets a bare 408 and is closed. uvicorn alone waits
  forever, so 600 slow clients could hold every file descriptor.
- Bodies: a request's body must arrive within ``body_timeout_s`` of its start; otherwise 408.
- Keep-alive: an idle connection is closed after ``keep_alive_timeout_s`` (uvicorn's timer).
- Concurrency: past ``max_concurrency`` requests in flight, a request gets 503 with Retry-After.
  Health, metrics and version requests are always answered, so probes see a busy server as alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from skillmaker.serving.limits import ServingLimits

log = logging.getLogger("uvicorn.error")

# Cheap requests a load balancer or Prometheus must always get an answer to.
ALWAYS_ANSWERED = frozenset(
    {"/health", "/version", "/metrics", "/v2/health/live", "/v2/health/ready"}
)

_HEADER_TIMEOUT_BODY = b'{"error": "request headers came too slowly"}'
_HEADER_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_HEADER_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _HEADER_TIMEOUT_BODY
)


class BodyTimeout(Exception):
    """A request's body did not arrive in time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request body did not arrive within {seconds:g} s")


def guarded_protocol(
    header_timeout_s: float, on_timeout: Callable[[str], None] | None = None
) -> type[H11Protocol]:
    """Give uvicorn's h11 protocol with a deadline on each request's head."""

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            self.transport.write(_HEADER_TIMEOUT_ANSWER)
            self.transport.close()
            if on_timeout is not None:
                on_timeout("headers")

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            between_requests = self.cycle is None or self.cycle.response_complete
            if between_requests and self._header_timer is None:
                self._arm()  # the first bytes of the next request's head start its clock
            super().data_received(data)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a whole request head arrived
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Between requests an idle connection is closed by uvicorn's keep-alive timer.
            self._disarm()

    return HeaderDeadlineProtocol


def body_deadline(app: ASGIApp, seconds: float) -> ASGIApp:
    """Give an ASGI app whose requests raise ``BodyTimeout`` when their body comes too slowly."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        deadline = time.monotonic() + seconds
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise BodyTimeout(seconds) from None
            body_done = not message.get("more_body", False)
            return message

        await app(scope, receive_in_time, send)

    return guarded


def concurrency_limit(
    app: ASGIApp, limit: int, extra: Callable[[], dict[str, Any]] | None = None
) -> ASGIApp:
    """Give an ASGI app that answers 503 with Retry-After past ``limit`` requests in flight."""
    in_flight = 0

    async def limited(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal in_flight
        if scope["type"] != "http" or scope.get("path") in ALWAYS_ANSWERED:
            await app(scope, receive, send)
            return
        if in_flight >= limit:
            body = {
                **(extra() if extra else {}),
                "error": f"server busy: {in_flight} requests in flight (limit {limit}); retry",
            }
            data = json.dumps(body).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
            return
        in_flight += 1
        try:
            await app(scope, receive, send)
        finally:
            in_flight -= 1

    return limited


def client_went_away(scope: Scope) -> None:
    """Log one line (no traceback) for a client that left before its answer."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "a client"
    log.warning("%s went away during %s %s", who, scope.get("method"), scope.get("path"))


def server_config(
    app: ASGIApp,
    host: str,
    port: int,
    limits: ServingLimits,
    on_timeout: Callable[[str], None] | None = None,
) -> uvicorn.Config:
    """Give the uvicorn config of the inference server, with its connection guards."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits.header_timeout_s, on_timeout),
        timeout_keep_alive=limits.keep_alive_timeout_s,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
    )
