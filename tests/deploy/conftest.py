"""Fixtures of the release tests: skill repos that share a store and an infra repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.builders import Skill, SkillFactory, make_skill_repo, skill_config


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
