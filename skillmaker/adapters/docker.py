"""Docker through the docker SDK: find an engine, build, tag, push, inspect and run images.

The engine is the one ``DOCKER_HOST`` names (or the default socket). ``connect`` gives none when
no engine answers, so callers can skip their Docker work with a notice instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from skillmaker.errors import UserError

LineSink = Callable[[str], None]
_BUILD_TIMEOUT_S = 3600
_CALL_TIMEOUT_S = 300


class DockerError(UserError):
    """The engine refused or a build, push or run failed; the message carries Docker's words."""


@dataclass(frozen=True)
class ImageFacts:
    """What an image says about itself: id, tags, labels and environment."""

    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    env: Mapping[str, str]
    healthcheck: Sequence[str]
    size_bytes: int = 0


class Container:
    """A container started from an image; stop it with ``remove``."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def id(self) -> str:
        """Give the container's id."""
        return str(self._raw.id)

    def exec(self, command: Sequence[str], user: str | None = None) -> tuple[int, str]:
        """Give the exit code and the output of a command run inside the container."""
        result = self._raw.exec_run(list(command), user=user or "", demux=False)
        output = result.output.decode("utf-8", errors="replace") if result.output else ""
        return int(result.exit_code), output

    def logs(self) -> str:
        """Give what the container has printed so far."""
        return bytes(self._raw.logs()).decode("utf-8", errors="replace")

    def status(self) -> str:
        """Give the container's state (``running``, ``exited``, ...)."""
        self._raw.reload()
        return str(self._raw.status)

    def wait(self, timeout_s: float) -> int:
        """Give the exit code once the container stops."""
        result = self._raw.wait(timeout=timeout_s)
        return int(result.get("StatusCode", -1))

    def remove(self) -> None:
        """Stop and remove the container."""
        with suppress(NotFound):
            self._raw.remove(force=True)


def _env_map(pairs: Sequence[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in pairs or ():
        name, _, value = item.partition("=")
        result[name] = value
    return result


class DockerEngine:
    """A Docker engine that answered a ping."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, env: Mapping[str, str], timeout_s: int = 10) -> DockerEngine | None:
        """Give the engine at ``DOCKER_HOST`` (or the default socket), or none if it is silent."""
        try:
            client = docker.from_env(environment=dict(env), timeout=timeout_s)
            client.ping()
        except (DockerException, OSError):
            return None
        # A short wait to find the engine; then removing a large image may take a while.
        client.api.timeout = _CALL_TIMEOUT_S
        return cls(client)

    @staticmethod
    def address(env: Mapping[str, str]) -> str:
        """Give the address an engine is looked for at, for messages."""
        return env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def version(self) -> str:
        """Give the engine's version."""
        return str(self._client.version().get("Version", "unknown"))

    def build(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        labels: Mapping[str, str],
        buildargs: Mapping[str, str],
        target: str | None = None,
        network: str = "none",
        on_line: LineSink | None = None,
    ) -> str:
        """Give the id of the image built from a context folder (legacy builder, streamed)."""
        lines: list[str] = []
        image_id = ""
        try:
            stream = self._client.api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                labels=dict(labels),
                buildargs=dict(buildargs),
                target=target,
                network_mode=network,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                timeout=_BUILD_TIMEOUT_S,
            )
            for chunk in stream:
                if "error" in chunk:
                    tail = "".join(lines[-15:]).rstrip()
                    raise DockerError(
                        f"docker build of {tag} failed: {chunk['error'].strip()}\n{tail}"
                    )
                text = chunk.get("stream")
                if text:
                    lines.append(text)
                    if on_line is not None:
                        on_line(text.rstrip("\n"))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
        except APIError as exc:
            raise DockerError(f"docker build of {tag} failed: {exc.explanation or exc}") from exc
        if not image_id:
            image_id = self.inspect(tag).id
        return image_id

    def tag(self, image: str, ref: str) -> None:
        """Give an image one more name."""
        repository, _, tag = ref.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = ref, "latest"
        self._client.api.tag(image, repository, tag)

    def push(self, ref: str, on_line: LineSink | None = None) -> str:
        """Give the digest of an image pushed to its registry."""
        repository, _, tag = ref.rpartition(":")
        digest = ""
        try:
            for chunk in self._client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise DockerError(f"docker push {ref} failed: {chunk['error']}")
                if on_line is not None and chunk.get("status"):
                    on_line(str(chunk["status"]))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "Digest" in aux:
                    digest = str(aux["Digest"])
        except APIError as exc:
            raise DockerError(f"docker push {ref} failed: {exc.explanation or exc}") from exc
        return digest

    def has_image(self, ref: str) -> bool:
        """Give whether the engine holds an image of that name or id."""
        try:
            self._client.images.get(ref)
        except ImageNotFound:
            return False
        return True

    def inspect(self, ref: str) -> ImageFacts:
        """Give an image's id, tags, labels and environment."""
        try:
            image = self._client.images.get(ref)
        except ImageNotFound:
            raise DockerError(f"no image {ref!r} in the Docker engine") from None
        config = image.attrs.get("Config") or {}
        health = (config.get("Healthcheck") or {}).get("Test") or []
        return ImageFacts(
            id=str(image.id),
            tags=tuple(image.tags),
            labels=dict(config.get("Labels") or {}),
            env=_env_map(config.get("Env")),
            healthcheck=tuple(health),
            size_bytes=int(image.attrs.get("Size") or 0),
        )

    def start(
        self,
        ref: str,
        *,
        command: Sequence[str] | None = None,
        network: str = "none",
        environment: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> Container:
        """Give a container started (detached) from an image."""
        try:
            raw = self._client.containers.run(
                ref,
                command=list(command) if command is not None else None,
                network_mode=network,
                environment=dict(environment or {}),
                name=name,
                detach=True,
            )
        except (APIError, ImageNotFound) as exc:
            raise DockerError(f"cannot start {ref}: {exc}") from exc
        return Container(raw)

    @contextmanager
    def running(
        self,
        ref: str,
        *,
        command: Sequence[str] | None = None,
        network: str = "none",
        environment: Mapping[str, str] | None = None,
    ) -> Iterator[Container]:
        """Give a started container for the length of a ``with`` block, removed after it."""
        container = self.start(ref, command=command, network=network, environment=environment)
        try:
            yield container
        finally:
            container.remove()

    def run_once(
        self, ref: str, command: Sequence[str], *, network: str = "none", timeout_s: float = 300
    ) -> tuple[int, str]:
        """Give the exit code and output of a command run in a fresh container of an image."""
        with self.running(ref, command=command, network=network) as container:
            started = time.monotonic()
            code = container.wait(timeout_s=max(1.0, timeout_s - (time.monotonic() - started)))
            return code, container.logs()

    def remove_image(self, ref: str) -> None:
        """Remove an image name (the layers stay while another name uses them)."""
        with suppress(ImageNotFound):
            self._client.images.remove(ref, noprune=False)
