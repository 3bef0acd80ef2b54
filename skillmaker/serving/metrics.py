"""Prometheus metrics of one inference app: requests, latency, requests in flight, model load.

Each app owns its ``CollectorRegistry`` (no global state: two apps in one process, as in the
tests, count apart). Every series carries the stamp's skill, skill version and code version, so
a dashboard tells a new model's figures from the old one's during a rollout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillmaker.serving.bundle import Stamp

STAMP_LABELS = ("skill", "skill_version", "code_version")
UNMATCHED = "unmatched"  # requests that no route took: one series, whatever the path
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    """The metrics of one app and the text ``/metrics`` answers."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, stamp: Stamp) -> None:
        self.registry = CollectorRegistry()
        self._stamp = (stamp.skill, str(stamp.skill_version), stamp.code_version)
        self.requests = Counter(
            "skillmaker_http_requests",
            "HTTP requests answered, by route, method and status.",
            [*STAMP_LABELS, "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "skillmaker_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by route and method.",
            [*STAMP_LABELS, "route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "skillmaker_http_requests_in_flight",
            "HTTP requests being answered now.",
            STAMP_LABELS,
            registry=self.registry,
        ).labels(*self._stamp)
        self.images = Counter(
            "skillmaker_images_predicted",
            "Images classified, by protocol (predict or v2).",
            [*STAMP_LABELS, "protocol"],
            registry=self.registry,
        )
        self.connections_closed = Counter(
            "skillmaker_connections_timed_out",
            "Connections closed because a client was too slow, by what it was sending.",
            [*STAMP_LABELS, "phase"],
            registry=self.registry,
        )
        self._model = Gauge(
            "skillmaker_model_load_seconds",
            "Seconds the model took to load (NaN until it has loaded).",
            STAMP_LABELS,
            registry=self.registry,
        )
        self._warmup = Gauge(
            "skillmaker_model_warmup_seconds",
            "Seconds the model's warm-up took (NaN until it is done).",
            STAMP_LABELS,
            registry=self.registry,
        )

    def watch_model(
        self, load_seconds: Callable[[], float | None], warmup_ms: Callable[[], float | None]
    ) -> None:
        """Read the model's load and warm-up times from these functions at each scrape."""

        def value(read: Callable[[], float | None], scale: float) -> Callable[[], float]:
            return lambda: math.nan if (v := read()) is None else v * scale

        self._model.labels(*self._stamp).set_function(value(load_seconds, 1.0))
        self._warmup.labels(*self._stamp).set_function(value(warmup_ms, 0.001))

    def count_images(self, protocol: str, count: int) -> None:
        """Add ``count`` classified images to the counter of a protocol."""
        self.images.labels(*self._stamp, protocol).inc(count)

    def count_timeout(self, phase: str) -> None:
        """Count one connection closed for being too slow while sending ``phase``."""
        self.connections_closed.labels(*self._stamp, phase).inc()

    def exposition(self) -> bytes:
        """Give the metrics in Prometheus text format."""
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Give an ASGI app that counts and times each HTTP request ``app`` answers."""
        metrics = self

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500  # what the client gets if the app raises before answering
            started = time.perf_counter()

            async def send_and_see(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            metrics.in_flight.inc()
            try:
                await app(scope, receive, send_and_see)
            finally:
                metrics.in_flight.dec()
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                method = str(scope.get("method", ""))
                metrics.requests.labels(*metrics._stamp, route, method, str(status)).inc()
                metrics.latency.labels(*metrics._stamp, route, method).observe(
                    time.perf_counter() - started
                )

        return measured
