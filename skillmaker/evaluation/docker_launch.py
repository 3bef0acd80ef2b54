"""Start model servers as containers of their serving images: the Docker side of the launcher seam.

Each spec with an ``image`` runs as a container on the host's network (no bridge exists here, see
DESIGN.md), serving the model the image holds on a free loopback port; specs without an image go
to a fallback launcher (local processes), so a candidate in its image and a baseline whose image
is gone can be measured side by side.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from skillmaker.adapters.docker import Container, DockerEngine
from skillmaker.errors import UserError
from skillmaker.evaluation.launch import (
    RunningServer,
    ServerLauncher,
    ServerSpec,
    ServerStartError,
    free_port,
    wait_ready,
)

# Where the serving image holds its model (template Dockerfile.cpu/gpu: WORKDIR /opt/skill, model/).
IMAGE_MODEL = "/opt/skill/model"
LOG_TAIL_LINES = 15


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """Give the last ``lines`` lines of a log."""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Started:
    spec: ServerSpec
    url: str
    container: Container


@dataclass
class DockerLauncher:
    """Starts each spec's image as a container serving on ``host:<free port>``, network host.

    Specs without an image are started by ``fallback`` (none: they are refused). Container logs
    are written to ``log_dir/<name>.log`` when the containers are removed.
    """

    engine: DockerEngine
    fallback: ServerLauncher | None = None
    host: str = "127.0.0.1"
    startup_timeout: float = 180.0
    log_dir: Path | None = None

    def command(self, port: int) -> list[str]:
        """Give the command a container runs to serve its image's model on a port."""
        return [
            "skillmaker", "serve", "--model", IMAGE_MODEL,
            "--host", self.host, "--port", str(port),
        ]  # fmt: skip

    @contextlib.contextmanager
    def start(self, specs: Sequence[ServerSpec]) -> Iterator[list[RunningServer]]:
        """Start every server at once, wait until all are ready, and remove them all at the end."""
        local = [spec for spec in specs if spec.image is None]
        if local and self.fallback is None:
            names = ", ".join(spec.name for spec in local)
            raise UserError(f"model server(s) {names}: a container needs an image")
        with contextlib.ExitStack() as stack:
            containers: list[_Started] = []
            for spec in specs:
                if spec.image is None:
                    continue
                port = free_port(self.host)
                container = self.engine.start(
                    spec.image, command=self.command(port), network="host", environment=spec.env
                )
                started = _Started(spec, f"http://{self.host}:{port}", container)
                stack.callback(self._remove, started)
                containers.append(started)
            servers: dict[str, RunningServer] = {
                c.spec.name: RunningServer(c.spec, c.url) for c in containers
            }
            if local and self.fallback is not None:
                for server in stack.enter_context(self.fallback.start(local)):
                    servers[server.spec.name] = server
            self._wait(containers)
            yield [servers[spec.name] for spec in specs]

    def _wait(self, containers: Sequence[_Started]) -> None:
        by_name = {c.spec.name: c for c in containers}

        def gone(name: str) -> str | None:
            started = by_name[name]
            state = started.container.status()
            if state in ("created", "running", "restarting"):
                return None
            return (
                f"model server {name!r} (container of {started.spec.image}) stopped ({state}) "
                f"before it was ready:\n{log_tail(started.container.logs())}"
            )

        try:
            wait_ready(
                [(c.spec.name, c.url) for c in containers],
                time.monotonic() + self.startup_timeout,
                gone=gone,
            )
        except ServerStartError as error:
            if "before it was ready" in str(error):
                raise
            tails = "\n".join(
                f"--- {c.spec.name} ({c.spec.image}):\n{log_tail(c.container.logs())}"
                for c in containers
            )
            raise ServerStartError(f"{error}\n{tails}") from None

    def _remove(self, started: _Started) -> None:
        if self.log_dir is not None:
            # The log is a courtesy: whatever goes wrong writing it, the container must go.
            with contextlib.suppress(Exception):
                self.log_dir.mkdir(parents=True, exist_ok=True)
                (self.log_dir / f"{started.spec.name}.log").write_text(
                    started.container.logs(), encoding="utf-8"
                )
        started.container.remove()
