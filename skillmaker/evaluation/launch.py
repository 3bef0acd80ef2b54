"""Start model servers for a test and stop them after: the seam between the harness and Docker.

The harness asks a ``ServerLauncher`` for running servers and talks to them over HTTP only, so the
same test runs against local processes (``LocalProcessLauncher``, here) or containers (a Docker
launcher plugs in with the same protocol, using ``ServerSpec.image``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import httpx

from skillmaker.errors import UserError
from skillmaker.serving.bundle import Stamp, read_bundle


class ServerStartError(UserError):
    """A model server did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class ServerSpec:
    """A model server to start: its name in the test, what it serves, the stamp it must answer with.

    ``bundle`` is the model folder a local process serves; ``image`` the container image a Docker
    launcher runs; ``env`` is added to the server's environment (e.g. ``SKILL_VERSION``).
    """

    name: str
    stamp: Stamp
    bundle: Path | None = None
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_bundle(
        cls, name: str, bundle: Path, env: Mapping[str, str] | None = None, image: str | None = None
    ) -> ServerSpec:
        """Give the spec of a bundle, expecting the stamp it has with ``env`` applied."""
        env = dict(env or {})
        return cls(name, read_bundle(bundle, env).stamp, bundle, image, env)


def as_spec(name: str, served: ServerSpec | Path) -> ServerSpec:
    """Give a spec named ``name``: a bundle folder becomes the spec of its own stamp."""
    if isinstance(served, Path):
        return ServerSpec.from_bundle(name, served)
    return ServerSpec(name, served.stamp, served.bundle, served.image, served.env)


@dataclass(frozen=True)
class RunningServer:
    """A started server: its spec and the base URL it answers on."""

    spec: ServerSpec
    url: str


class ServerLauncher(Protocol):
    """Starts model servers together and stops them when the context ends."""

    def start(self, specs: Sequence[ServerSpec]) -> AbstractContextManager[list[RunningServer]]:
        """Give a context whose value is the servers, each ready (``/health`` answered 200)."""
        ...


def free_port(host: str = "127.0.0.1") -> int:
    """Give a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Process:
    spec: ServerSpec
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


def wait_ready(
    servers: Sequence[tuple[str, str]],
    deadline: float,
    alive: Mapping[str, subprocess.Popen[bytes]] | None = None,
    logs: Mapping[str, Path] | None = None,
    gone: Callable[[str], str | None] | None = None,
) -> None:
    """Return once every ``(name, url)`` answers ``/health`` with 200; else ``ServerStartError``.

    ``alive`` and ``logs`` tell when a local process exited and what it printed; ``gone`` does
    the same for any other kind of server: given a name, it gives the message when it stopped.
    """
    waiting = dict(servers)
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for name, url in list(waiting.items()):
                stopped = gone(name) if gone is not None else None
                if stopped is not None:
                    raise ServerStartError(stopped)
                process = (alive or {}).get(name)
                log = (logs or {}).get(name)
                if process is not None and process.poll() is not None:
                    raise ServerStartError(
                        f"model server {name!r} exited with code {process.returncode} before it "
                        f"was ready:\n{_tail(log) if log else ''}"
                    )
                try:
                    response = client.get(f"{url}/health")
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    del waiting[name]
                    continue
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if isinstance(body, dict) and body.get("status") == "failed":
                    raise ServerStartError(
                        f"model server {name!r} could not load its model: {body.get('error')}"
                    )
            if waiting and time.monotonic() > deadline:
                names = ", ".join(sorted(waiting))
                raise ServerStartError(f"model server(s) {names} not ready in time")
            if waiting:
                time.sleep(0.2)


@dataclass
class LocalProcessLauncher:
    """Starts each server as ``python -m skillmaker serve --model ... --port ...`` on 127.0.0.1."""

    host: str = "127.0.0.1"
    startup_timeout: float = 180.0
    log_dir: Path | None = None
    python: str = sys.executable
    extra_args: tuple[str, ...] = ()

    def command(self, spec: ServerSpec, port: int) -> list[str]:
        """Give the command line that serves one spec on a port."""
        if spec.bundle is None:
            raise UserError(f"model server {spec.name!r}: a local process needs a model bundle")
        return [
            self.python, "-m", "skillmaker", "serve", "--model", str(spec.bundle),
            "--host", self.host, "--port", str(port), *self.extra_args,
        ]  # fmt: skip

    @contextlib.contextmanager
    def start(self, specs: Sequence[ServerSpec]) -> Iterator[list[RunningServer]]:
        """Start every server at once, wait until all are ready, and stop them all at the end."""
        with contextlib.ExitStack() as stack:
            log_dir = self.log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            log_dir.mkdir(parents=True, exist_ok=True)
            started: list[_Process] = []
            stack.callback(_stop_all, started)
            for spec in specs:
                port = free_port(self.host)
                log = log_dir / f"{spec.name}.log"
                handle = log.open("wb")
                env = {**os.environ, **spec.env}
                process = subprocess.Popen(
                    self.command(spec, port), stdout=handle, stderr=subprocess.STDOUT, env=env
                )
                started.append(_Process(spec, f"http://{self.host}:{port}", process, log, handle))
            wait_ready(
                [(p.spec.name, p.url) for p in started],
                time.monotonic() + self.startup_timeout,
                alive={p.spec.name: p.process for p in started},
                logs={p.spec.name: p.log for p in started},
            )
            yield [RunningServer(p.spec, p.url) for p in started]


def _stop_all(started: Sequence[_Process]) -> None:
    for item in started:
        if item.process.poll() is None:
            item.process.send_signal(signal.SIGTERM)
    for item in started:
        try:
            item.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait()
        item.handle.close()


@dataclass
class ExistingServers:
    """Uses servers started elsewhere (by hand, by compose, by an earlier step), found by name.

    ``urls`` maps the name a spec has in the test (``candidate``/``baseline`` in the harness, the
    skill in the full-stack test) to the base URL of its server. Nothing is started or stopped.
    """

    urls: Mapping[str, str]
    startup_timeout: float = 60.0

    @contextlib.contextmanager
    def start(self, specs: Sequence[ServerSpec]) -> Iterator[list[RunningServer]]:
        """Wait until each named server is ready and give them; leave them running after."""
        missing = [spec.name for spec in specs if spec.name not in self.urls]
        if missing:
            raise UserError(f"no server URL given for {', '.join(missing)}")
        servers = [RunningServer(spec, self.urls[spec.name].rstrip("/")) for spec in specs]
        wait_ready([(s.spec.name, s.url) for s in servers], time.monotonic() + self.startup_timeout)
        yield servers
