"""Shared fixtures: an isolated HOME, a real S3-compatible server, real digits images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MotoServer, start_moto, write_digits
from tests.skill_repos import Skill, SkillFactory, make_skill_repo, skill_config


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tools that write under HOME (cookiecutter, matplotlib, IPython, Keras) in a temp folder."""
    home = tmp_path_factory.mktemp("home")
    for name in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "KERAS_HOME"):
        monkeypatch.setenv(name, str(home / name.lower()) if name != "HOME" else str(home))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("SLACK_BOT_TOKEN", "SMTP_HOST", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """Give a moto server (S3, CloudFormation, SES) listening over HTTP on 127.0.0.1."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Point boto3 at the moto server through the usual AWS environment variables."""
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="session")
def digits_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give a folder of scikit-learn's digits as PNGs in the folders layout (<class>/<group>/<file>)."""
    root = tmp_path_factory.mktemp("digits")
    write_digits(root)
    return root


@pytest.fixture
def make_skill(tmp_path: Path) -> SkillFactory:
    """Give a factory of skill repos sharing ``tmp_path/artifacts`` and an infra repo."""

    def factory(
        name: str = "digits",
        *,
        artifacts: str | None = None,
        infra: Path | None = None,
        **config: Any,
    ) -> Skill:
        settings = skill_config(
            name,
            artifacts or (tmp_path / "artifacts").as_uri(),
            str(infra or tmp_path / "infra"),
        )
        settings.update(config)
        return Skill(name, make_skill_repo(tmp_path / "skills" / name, settings))

    return factory
