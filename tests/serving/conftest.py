"""Fixtures of the serving tests: a trained digits bundle and a real `skillmaker serve` process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from skillmaker.evaluation.launch import LocalProcessLauncher, RunningServer, ServerSpec
from skillmaker.serving.connections import server_config
from skillmaker.serving.limits import ServingLimits
from tests.helpers import free_port
from tests.serving import bundles

MAX_BATCH = 8
MAX_BODY_MB = 1
MAX_CONCURRENCY = 256  # above the 200 requests sent at once by the batching test


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give a bundle of a CNN trained for a few epochs on the digits (skill digits, v3, abc123)."""
    model = bundles.trained_digits_model()
    folder = tmp_path_factory.mktemp("bundle") / "digits"
    return bundles.save_bundle(folder, model, bundles.DIGIT_LABELS, "digits", 3, "abc123")


@pytest.fixture(scope="module")
def served(
    digits_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """Give the digits bundle served by ``python -m skillmaker serve`` with small request limits."""
    launcher = LocalProcessLauncher(
        log_dir=tmp_path_factory.mktemp("logs"),
        extra_args=(
            *("--max-batch", str(MAX_BATCH), "--max-body-mb", str(MAX_BODY_MB)),
            *("--max-concurrency", str(MAX_CONCURRENCY)),
        ),
    )
    with launcher.start([ServerSpec.from_bundle("digits", digits_bundle)]) as servers:
        yield servers[0]


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, limits: ServingLimits | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free port of 127.0.0.1 in a thread; give its URL.

    With ``limits`` the server runs as ``skillmaker serve`` runs it, connection guards included.
    """
    port = free_port()
    if limits is None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    else:
        config = server_config(app, "127.0.0.1", port, limits, app.state.metrics.count_timeout)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
