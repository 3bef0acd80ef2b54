"""``skillmaker new`` works from a wheel installed in a fresh virtual environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_new_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("skillmaker-*.whl")
    venv = tmp_path / "venv"
    # The dependencies come from this interpreter's site-packages; skillmaker itself only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import skillmaker; print(skillmaker.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(str(venv)), where

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = tmp_path / "car.json"
    config.write_bytes((ROOT / "examples/car.json").read_bytes())
    (tmp_path / "classes.json").write_bytes((ROOT / "examples/classes.json").read_bytes())
    skillmaker = venv / "bin" / "skillmaker"
    result = subprocess.run(
        [str(skillmaker), "new", "--config", str(config), "--output", str(tmp_path / "car")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "car"), "log", "--oneline"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(log.splitlines()) == 1
    check = subprocess.run(
        [str(skillmaker), "validate", "--config", str(tmp_path / "car" / "skill.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    manifest = json.loads((tmp_path / "car/.skillmaker/manifest.json").read_text())
    assert "Jenkinsfile" in manifest["files"]
    # The bundled examples ship in the wheel too.
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "from skillmaker.resources import examples_dir; print(sorted(p.name for p in examples_dir().iterdir()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=elsewhere,
    ).stdout
    assert "digits.json" in listing
