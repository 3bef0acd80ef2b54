"""Render the owned files of a skill repo from its config; config values travel as data only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from skillmaker import __version__
from skillmaker.config import SkillConfig
from skillmaker.domain.ci import jenkins_context
from skillmaker.domain.stages import STAGES
from skillmaker.fileio import sha256_file
from skillmaker.resources import template_dir


def template_context(config: SkillConfig) -> dict[str, Any]:
    """Give the cookiecutter context that renders a skill repo from its config.

    Everything from the config sits under ``_skill``: cookiecutter copies ``_``-prefixed values
    verbatim instead of rendering them, so config text is never template source; the template
    inserts each value through an escaping filter (``skillmaker.scaffold.escape``).
    """
    agents: dict[str, str] = {str(k): v for k, v in config.ci.agents.items()}
    stages = [
        {"name": s.name, "agent": agents.get(s.name, s.agent), "summary": s.summary} for s in STAGES
    ]
    return {
        "name": config.name,
        "_skill": {
            "config": config.model_dump(mode="json"),
            "stages": stages,
            "jenkins": jenkins_context(config),
        },
        "__skillmaker_version": __version__,
    }


def render_owned_files(config: SkillConfig, workdir: Path) -> Path:
    """Give the folder into which the template was rendered for this config (under ``workdir``)."""
    out = workdir / "render"
    cookiecutter(
        str(template_dir()),
        no_input=True,
        extra_context=template_context(config),
        output_dir=str(out),
        # Keep cookiecutter's replay and clone folders inside our scratch space, not under HOME.
        default_config={
            "replay_dir": str(workdir / "replay"),
            "cookiecutters_dir": str(workdir / "cc"),
        },
        accept_hooks=False,
    )
    return out / config.name


def owned_hashes(root: Path) -> dict[str, str]:
    """Give the SHA-256 of every file of a rendered tree, by path relative to it."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@contextmanager
def scratch(near: Path) -> Iterator[Path]:
    """Give a scratch folder on the same file system as ``near``, removed afterwards."""
    near.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".skillmaker-", dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
