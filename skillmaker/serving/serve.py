"""``skillmaker serve``: find the bundle to serve, check it, and run the inference server."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from skillmaker.context import load_skill
from skillmaker.errors import UserError
from skillmaker.serving.app import create_app, run_server
from skillmaker.serving.bundle import BundleInfo, StampDefaults, read_bundle
from skillmaker.serving.limits import ServingLimits


def bundle_to_serve(
    repo: Path, model: Path | None, env: Mapping[str, str]
) -> tuple[BundleInfo, int | None]:
    """Give the bundle to serve and the pixel limit of the skill's config (None without a repo).

    With ``model`` that folder is the bundle (as in the Docker image); otherwise the current run
    folder of the skill repo, whose stamp defaults to the repo's skill name and current run.
    """
    if model is not None:
        return read_bundle(model, env), None
    skill = load_skill(repo, env=env)
    run = skill.current_run()
    folder = skill.workspace.run_dir(run.skill_version)
    defaults = StampDefaults(skill.name, run.skill_version, run.code_version)
    return read_bundle(folder, env, defaults), skill.config.data.max_pixels


def check_listen(host: str, port: int) -> None:
    """Raise a user error when the server could not listen on ``host:port``."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: must be between 1 and 65535")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None


def serve(
    repo: Path,
    model: Path | None,
    host: str,
    port: int,
    *,
    max_body_bytes: int | None = None,
    max_pixels: int | None = None,
    max_batch: int | None = None,
    top_k: int | None = None,
    max_concurrency: int | None = None,
    header_timeout_s: float | None = None,
    body_timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve a bundle over HTTP until interrupted (the model loads in the background).

    A limit left out takes its default; the pixel limit follows the model's input size, capped
    by the skill config's ``data.max_pixels`` when serving a repo's current run.
    """
    env = dict(os.environ) if env is None else env
    info, config_pixels = bundle_to_serve(repo, model, env)
    default = ServingLimits()
    try:
        limits = ServingLimits(
            max_body_bytes=max_body_bytes or default.max_body_bytes,
            max_pixels=max_pixels,
            pixel_cap=config_pixels or default.pixel_cap,
            max_batch=max_batch or default.max_batch,
            top_k=top_k or default.top_k,
            max_concurrency=max_concurrency or default.max_concurrency,
            header_timeout_s=header_timeout_s or default.header_timeout_s,
            body_timeout_s=body_timeout_s or default.body_timeout_s,
        )
    except ValueError as exc:
        raise UserError(f"serving limits: {exc}") from None
    check_listen(host, port)
    if say is not None:
        stamp = info.stamp
        say(
            f"serving {stamp.skill} v{stamp.skill_version} ({stamp.code_version}, model "
            f"{stamp.model_hash[:12]}) on http://{host}:{port}; GET /health is 200 once ready"
        )
    run_server(create_app(info, limits), host, port, limits)
