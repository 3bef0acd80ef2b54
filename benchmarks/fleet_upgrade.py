"""Time ``skillmaker fleet upgrade`` over N skills against a shell loop of ``skillmaker upgrade``.

Stamps N skills, marks each as stamped by an older skillmaker (committed), copies the fleet, then
upgrades one copy with one ``fleet upgrade`` process and the other with one ``upgrade`` process
per skill (the loop a team writes without ``fleet``). Prints one JSON line:
{"skills": n, "fleet_s": s, "loop_s": s, "ratio": fleet_s / loop_s, "upgraded": n, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skillmaker.resources import examples_dir
from skillmaker.scaffold import new_skill


def _age(repo: Path) -> None:
    path = repo / ".skillmaker" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["skillmaker_version"] = "0.0.1"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", *identity, "commit", "-qam", "older stamp"], cwd=repo, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skills", type=int, default=35)
    args = parser.parse_args()
    raw = json.loads((examples_dir() / "digits.json").read_text())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for index in range(args.skills):
            raw["name"] = f"skill-{index:03d}"
            config = root / f"{raw['name']}.json"
            config.write_text(json.dumps(raw))
            _age(new_skill(config, root / "fleet" / raw["name"]))
        shutil.copytree(root / "fleet", root / "loop", symlinks=True)

        start = time.perf_counter()
        fleet = subprocess.run(
            [sys.executable, "-m", "skillmaker", "fleet", "upgrade", str(root / "fleet")],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        fleet_s = time.perf_counter() - start

        start = time.perf_counter()
        loop_codes = [
            subprocess.run(
                [sys.executable, "-m", "skillmaker", "upgrade", "--repo", str(repo)],
                capture_output=True,
                env=env,
                check=False,
            ).returncode
            for repo in sorted((root / "loop").iterdir())
        ]
        loop_s = time.perf_counter() - start
    upgraded = fleet.stdout.count(": upgraded (")
    print(
        json.dumps(
            {
                "skills": args.skills,
                "fleet_s": round(fleet_s, 3),
                "loop_s": round(loop_s, 3),
                "ratio": round(fleet_s / loop_s, 3),
                "upgraded": upgraded,
                "fleet_exit": fleet.returncode,
                "loop_failures": sum(code != 0 for code in loop_codes),
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
