"""The build context of an image: a wheelhouse of skillmaker and its dependencies, the model bundle,
and the folder handed to the Docker engine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from skillmaker import __version__
from skillmaker.build.plan import BUNDLE_FILES
from skillmaker.domain.versions import Flavor
from skillmaker.errors import UserError
from skillmaker.records import MODEL


def _source_checkout() -> Path | None:
    root = Path(__file__).resolve().parents[2]  # skillmaker/build/context.py -> the checkout
    return root if (root / "pyproject.toml").is_file() and (root / "template").is_dir() else None


def has_skillmaker_wheel(folder: Path) -> bool:
    """Give whether a wheelhouse holds this skillmaker version's wheel."""
    return any(folder.glob(f"skillmaker-{__version__}-*.whl"))


def _pip(command: list[str], dest: Path, flavor: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(
            f"cannot make the {flavor} wheelhouse in {dest}: pip failed:\n"
            + result.stderr.strip()[-2000:]
        )


def _dependencies_fingerprint(source: Path | None, flavor: Flavor) -> str:
    if source is None:
        return f"skillmaker {__version__} [{flavor}]"
    digest = hashlib.sha256((source / "pyproject.toml").read_bytes()).hexdigest()
    return f"pyproject.toml {digest} [{flavor}]"


def make_wheelhouse(dest: Path, flavor: Flavor) -> Path:
    """Give a folder of wheels: skillmaker's own and its dependencies (``[cpu]`` for the CPU image).

    skillmaker's wheel is rebuilt from its source checkout when it runs from one (so an image
    always holds the code being tested), otherwise downloaded once from the package index. The
    dependencies are fetched through pip (its cache, then the index) only when they changed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    source = _source_checkout()
    if source is not None or not has_skillmaker_wheel(dest):
        for old in dest.glob("skillmaker-*.whl"):
            old.unlink()
        own = [*pip, "wheel", "--no-deps", "--wheel-dir", str(dest)]
        _pip([*own, str(source) if source else f"skillmaker=={__version__}"], dest, flavor)
    marker = dest / ".dependencies"
    fingerprint = _dependencies_fingerprint(source, flavor)
    if not marker.is_file() or marker.read_text(encoding="utf-8") != fingerprint:
        # Start from an empty folder so that no wheel of an older dependency set stays behind.
        for stale in dest.glob("*.whl"):
            if not stale.name.startswith("skillmaker-"):
                stale.unlink()
        [wheel] = sorted(dest.glob("skillmaker-*.whl"))
        deps = [*pip, "wheel", "--wheel-dir", str(dest), "--find-links", str(dest)]
        # The GPU image takes TensorFlow and CUDA from its base image: no second copy here.
        extra = "[cpu]" if flavor == "cpu" else ""
        _pip([*deps, f"{wheel}{extra}"], dest, flavor)
        marker.write_text(fingerprint, encoding="utf-8")
    return dest


def find_wheelhouse(root: Path | None, flavor: Flavor, cache: Path) -> Path:
    """Give the wheelhouse of a flavour: ``<root>/<flavor>`` or ``<root>``, made when there is none.

    ``root`` comes from ``--wheelhouse`` or ``SKILLMAKER_WHEELHOUSE``; without one the wheelhouse
    is made once under ``cache`` and reused by later builds of the same skillmaker version.
    """
    if root is not None:
        for candidate in (root / flavor, root):
            if candidate.is_dir() and has_skillmaker_wheel(candidate):
                return candidate
        raise UserError(
            f"{root}: no skillmaker {__version__} wheel in {root / flavor} or {root}; "
            f"make one with `bash ci/wheelhouse.sh --flavor {flavor} {root}`"
        )
    folder = cache / __version__ / flavor
    if not has_skillmaker_wheel(folder):
        make_wheelhouse(folder, flavor)
    return folder


# -- model bundle and build context


def find_model_bundle(run_dir: Path, model: Path | None) -> Path | list[Path] | None:
    """Give the trained model bundle: a folder, the bundle files of the run folder, or none.

    An explicit ``model`` must be a folder holding ``model.keras``.
    """
    if model is not None:
        if not (model / MODEL).is_file():
            raise UserError(f"{model}: not a model bundle (no {MODEL} in it)")
        return model
    if (run_dir / "model" / MODEL).is_file():
        return run_dir / "model"
    if (run_dir / MODEL).is_file():
        return [run_dir / name for name in BUNDLE_FILES if (run_dir / name).is_file()]
    return None


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copy2(source, dest)


def wheel_pins(names: Iterable[str]) -> list[str]:
    """Give ``name==version`` for each wheel file name, or a user error when a name repeats."""
    pins: dict[str, str] = {}
    for name in sorted(names):
        dist, version = name.split("-")[:2]
        key = dist.lower().replace("_", "-")
        if key in pins:
            raise UserError(
                f"the wheelhouse holds two versions of {dist} ({pins[key]} and {version}); "
                "remake it with ci/wheelhouse.sh"
            )
        pins[key] = version
    return [f"{dist}=={version}" for dist, version in pins.items()]


def assemble_context(
    repo: Path, dockerfile: str, wheelhouse: Path, model: Path | list[Path] | None, dest: Path
) -> Path:
    """Give a build context folder: Dockerfile, skill.json, wheels and the model bundle.

    The wheels are split as the Dockerfiles install them: ``.skillmaker/wheelhouse/deps`` (the
    dependencies, pinned in its ``requirements.txt``) and ``.skillmaker/wheelhouse/skillmaker``.
    """
    if not (repo / dockerfile).is_file():
        raise UserError(f"{repo / dockerfile}: missing (run `skillmaker upgrade` to restore it)")
    if dest.exists():
        shutil.rmtree(dest)
    deps = dest / ".skillmaker" / "wheelhouse" / "deps"
    own = dest / ".skillmaker" / "wheelhouse" / "skillmaker"
    for folder in (deps, own, dest / ".skillmaker" / "model"):
        folder.mkdir(parents=True)
    for name in (dockerfile, ".dockerignore", "skill.json"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, dest / name)
    wheels = sorted(wheelhouse.glob("*.whl"))
    for wheel in wheels:
        mine = wheel.name.startswith("skillmaker-")
        _link_or_copy(wheel, (own if mine else deps) / wheel.name)
    pins = wheel_pins(w.name for w in wheels if not w.name.startswith("skillmaker-"))
    (deps / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    if isinstance(model, Path):
        shutil.copytree(model, dest / ".skillmaker" / "model", dirs_exist_ok=True)
    elif model:
        for item in model:
            shutil.copy2(item, dest / ".skillmaker" / "model" / item.name)
    return dest
