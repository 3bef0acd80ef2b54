"""Deploys of different skills into one stack at once, each its own process: every one lands.

The full 35 are measured by ``benchmarks/deploy_fleet.py``; eight here keep CI time short.
"""

from __future__ import annotations

from pathlib import Path

from skillmaker.adapters.infra_repo import init_infra_repo
from tests.fleet import (
    deploy_all,
    deploy_commits,
    environment,
    make_fleet,
    missing,
    s3_artifacts,
)
from tests.helpers import MotoServer


def test_eight_concurrent_deploys_all_land_with_no_rerun(
    aws_env: MotoServer, tmp_path: Path
) -> None:
    remote = init_infra_repo(tmp_path / "infra.git", bare=True)
    skills = make_fleet(tmp_path / "skills", 8, remote, s3_artifacts("fleet"))
    result = deploy_all(skills, environment())
    assert result.failed == []
    assert missing(skills, remote) == []
    assert deploy_commits(remote) == 8
