"""Concurrent deploys of a fleet of skills into one stack (moto over HTTP), one JSON line.

Each skill deploys in its own ``skillmaker deploy`` process, all started at once; deploys to the
stack take turns under its lease, held in the fleet's S3 artifacts store (moto's, like the stack).
Baseline, measured in the same run: one skill deploying alone. Figures: wall time of the fleet,
the baseline, the ratio fleet / (skills x baseline) (1.0: the fleet takes as long as deploying
them one after another), and whether every skill landed in the infra repo's history and template,
the stack and its registry, with no rerun.

    PYTHONPATH=. python benchmarks/deploy_fleet.py [--skills 35]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skillmaker.adapters.infra_repo import init_infra_repo
from tests.fleet import (
    deploy_all,
    deploy_commits,
    environment,
    make_fleet,
    missing,
    s3_artifacts,
)
from tests.helpers import start_moto


def main() -> None:
    """Print one JSON line: the fleet's and one skill's deploy times and what landed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skills", type=int, default=35)
    skills_wanted = parser.parse_args().skills
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one JSON line, not moto's access log
    moto = start_moto()
    os.environ.update(moto.env())
    os.environ.update({"GIT_CONFIG_NOSYSTEM": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    try:
        with tempfile.TemporaryDirectory(prefix="deploy-fleet-") as folder:
            root = Path(folder)
            os.environ["HOME"] = str(root / "home")
            alone_remote = init_infra_repo(root / "alone.git", bare=True)
            [alone] = make_fleet(root / "alone", 1, alone_remote, s3_artifacts("alone"))
            baseline = deploy_all([alone], environment())
            boto3.client("cloudformation", region_name="eu-west-1").delete_stack(StackName="skills")
            remote = init_infra_repo(root / "infra.git", bare=True)
            skills = make_fleet(root / "skills", skills_wanted, remote, s3_artifacts("fleet"))
            fleet = deploy_all(skills, environment())
            problems = missing(skills, remote)
            commits = deploy_commits(remote)
    finally:
        moto.stop()
    for failure in fleet.failed[:3]:  # the JSON line stays the only line on stdout
        print(failure[:1500], "...", failure[-800:], file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "deploy_fleet",
                "skills": skills_wanted,
                "fleet_s": round(fleet.seconds, 2),
                "one_skill_s": round(baseline.seconds, 2),
                "ratio_vs_sequential": round(fleet.seconds / (skills_wanted * baseline.seconds), 3),
                "failed": len(fleet.failed) + len(baseline.failed),
                "deploy_commits": commits,
                "not_landed": len(problems),
                "all_landed": not problems and not fleet.failed and commits == skills_wanted,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
