"""Hostile and careless clients on loopback: slow heads, slow bodies, too many, gone away."""

from __future__ import annotations

import contextlib
import re
import selectors
import time
from pathlib import Path

import httpx
import psutil
import pytest

from skillmaker.serving.app import create_app
from skillmaker.serving.bundle import read_bundle
from skillmaker.serving.limits import ServingLimits
from tests.serving import bundles
from tests.serving.conftest import serve_in_thread
from tests.serving.processes import (
    PARTIAL_HEAD,
    partial_body_head,
    read_until_closed,
    serve_process,
    slow_client,
)
from tests.serving.test_metrics import samples, value, wait_ready

PNG = bundles.png_bytes(bundles.digits().images[0])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_past_the_concurrency_limit_the_server_answers_503_with_retry_after(
    digits_bundle: Path,
) -> None:
    limits = ServingLimits(max_concurrency=2)
    app = create_app(read_bundle(digits_bundle), limits)
    with (
        serve_in_thread(app, limits) as url,
        httpx.Client(base_url=url, timeout=30) as client,
        contextlib.ExitStack() as stack,
    ):
        wait_ready(client)
        # Two requests whose bodies never finish hold both places.
        for _ in range(2):
            stack.enter_context(slow_client(port_of(url), partial_body_head()))
        deadline = time.monotonic() + 10
        while value(samples(client.get("/metrics").text), "skillmaker_http_requests_in_flight") < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        busy = client.post("/predict", content=PNG)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert "server busy" in busy.json()["error"]
        assert busy.headers["x-skill-version"] == "3"
        assert client.get("/v2/health/live").status_code == 200  # probes are always answered
        assert client.get("/health").status_code == 200
        stack.close()  # the slow clients leave; their places free up
        deadline = time.monotonic() + 10
        while (answer := client.post("/predict", content=PNG)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert answer.status_code == 200


def test_slow_headers_and_slow_bodies_are_cut_off_with_408(digits_bundle: Path) -> None:
    limits = ServingLimits(header_timeout_s=1, body_timeout_s=1)
    app = create_app(read_bundle(digits_bundle), limits)
    with serve_in_thread(app, limits) as url, httpx.Client(base_url=url, timeout=30) as client:
        wait_ready(client)
        head = slow_client(port_of(url), PARTIAL_HEAD)
        body = slow_client(port_of(url), partial_body_head())
        with head, body:
            head_answer = read_until_closed(head, timeout=10)
            body_answer = read_until_closed(body, timeout=10)
        assert head_answer is not None  # closed by the server, not left open
        assert head_answer.startswith(b"HTTP/1.1 408 ")
        assert body_answer is not None
        assert body_answer.startswith(b"HTTP/1.1 408 ")
        assert b"request body did not arrive within 1 s" in body_answer
        # A client that keeps to time is served on the same server.
        assert client.post("/predict", content=PNG).status_code == 200
        found = samples(client.get("/metrics").text)
    assert value(found, "skillmaker_connections_timed_out_total", phase="headers") == 1
    assert value(found, "skillmaker_connections_timed_out_total", phase="body") == 1


@pytest.mark.slow
def test_600_slow_clients_with_1024_files_neither_lock_out_others_nor_stay(
    digits_bundle: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    args = ("--header-timeout", "4", "--body-timeout", "60")
    with serve_process(digits_bundle, log, args, open_files=1024) as server:
        limit = psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE)
        assert limit == (1024, 1024)
        slow = [slow_client(server.port, PARTIAL_HEAD) for _ in range(600)]
        try:
            # Others are still answered while the 600 hold their connections.
            live = httpx.get(f"{server.url}/v2/health/live", timeout=5)
            assert live.status_code == 200
            assert httpx.post(f"{server.url}/predict", content=PNG, timeout=5).status_code == 200
            # The server closes every slow connection once its head is overdue.
            selector = selectors.DefaultSelector()
            for sock in slow:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, data=sock)
            open_count, deadline = len(slow), time.monotonic() + 30
            while open_count and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1):
                    sock = key.data
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        selector.unregister(sock)
                        open_count -= 1
            assert open_count == 0
        finally:
            for sock in slow:
                sock.close()
        # Clients that leave in the middle of their request cost one log line each.
        for _ in range(20):
            slow_client(server.port, partial_body_head()).close()
        deadline = time.monotonic() + 20
        while len(re.findall("went away", log.read_text())) < 20:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        found = samples(httpx.get(f"{server.url}/metrics", timeout=5).text)
    text = log.read_text()
    assert len(re.findall(r"went away during POST /predict", text)) == 20
    assert "Traceback" not in text
    assert value(found, "skillmaker_connections_timed_out_total", phase="headers") == 600
