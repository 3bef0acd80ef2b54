"""The manifest of a skill repo: the files skillmaker owns, their base render, its version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from skillmaker.errors import UserError
from skillmaker.fileio import sha256_file, write_atomic

MANIFEST = Path(".skillmaker") / "manifest.json"
BASE_DIR = Path(".skillmaker") / "base"
"""Content-addressed copies of the last render of each owned file (the base of 3-way merges)."""
CONFIG_FILE = "skill.json"


@dataclass(frozen=True)
class Manifest:
    """The files skillmaker owns in a skill repo, with their content hashes, and its version."""

    skillmaker_version: str
    files: Mapping[str, str]

    def to_json(self) -> str:
        """Give the manifest as the JSON text stored in the repo."""
        body = {
            "skillmaker_version": self.skillmaker_version,
            "files": dict(sorted(self.files.items())),
            "base": BASE_DIR.as_posix(),
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def read(cls, repo: Path) -> Manifest:
        """Give the manifest of a skill repo, or a user error saying the folder is not one."""
        path = repo / MANIFEST
        if not path.is_file():
            raise UserError(f"{repo}: not a skill repo (no {MANIFEST.as_posix()})")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            files = {str(k): str(v) for k, v in raw["files"].items()}
            manifest = cls(skillmaker_version=str(raw["skillmaker_version"]), files=files)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path}: is not a valid skillmaker manifest") from None
        for name in files:
            if name.startswith("/") or ".." in Path(name).parts or ".git" in Path(name).parts:
                raise UserError(f"{path}: files: {name!r} is not a path inside the repo")
        return manifest

    def version(self) -> Version:
        """Give the skillmaker version that stamped the repo."""
        try:
            return Version(self.skillmaker_version)
        except InvalidVersion:
            raise UserError(
                f"{MANIFEST.as_posix()}: skillmaker_version: not a version "
                f"(got {self.skillmaker_version!r})"
            ) from None


def base_copy(repo: Path, digest: str) -> Path:
    """Give where the base render with this SHA-256 is kept."""
    return repo / BASE_DIR / digest


def read_base(repo: Path, digest: str | None) -> bytes | None:
    """Give the base render with this hash, or None when none is kept (or it is damaged)."""
    if digest is None:
        return None
    path = base_copy(repo, digest)
    if not path.is_file() or sha256_file(path) != digest:
        return None
    return path.read_bytes()


def write_bases(repo: Path, rendered: Path, files: Mapping[str, str]) -> list[str]:
    """Keep exactly the base copies of ``files`` (rendered under ``rendered``); give paths touched."""
    folder = repo / BASE_DIR
    wanted = set(files.values())
    touched: list[str] = []
    for name, digest in files.items():
        target = base_copy(repo, digest)
        if not target.is_file():
            write_atomic(target, (rendered / name).read_bytes())
            touched.append(target.relative_to(repo).as_posix())
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.name not in wanted and stale.is_file():
                stale.unlink()
                touched.append(stale.relative_to(repo).as_posix())
    return touched
