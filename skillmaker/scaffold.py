"""Stamp a skill repository from the template (``new``) and keep its owned files current (``upgrade``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from skillmaker import __version__
from skillmaker.adapters import git
from skillmaker.config import LoadedConfig, SkillConfig, load_config, normalised_json
from skillmaker.errors import ProblemsError, UserError
from skillmaker.fileio import sha256_file, write_atomic
from skillmaker.pipeline.jenkins import jenkins_context
from skillmaker.resources import template_dir
from skillmaker.stages import STAGES

MANIFEST = Path(".skillmaker") / "manifest.json"
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
            return cls(skillmaker_version=str(raw["skillmaker_version"]), files=files)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path}: is not a valid skillmaker manifest") from None


@dataclass(frozen=True)
class UpgradeResult:
    """What ``upgrade`` changed: files rewritten, added and removed, and any hand-edited ones."""

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    edited: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


def template_context(config: SkillConfig) -> dict[str, Any]:
    """Give the cookiecutter context that renders a skill repo from its config."""
    stages = [
        {
            "name": s.name,
            "agent": s.agent,
            "command": s.command,
            "summary": s.summary,
            "always": s.always,
        }
        for s in STAGES
    ]
    return {
        "name": config.name,
        "skill": {
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


def _owned_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@contextmanager
def _scratch(near: Path) -> Iterator[Path]:
    """Give a scratch folder on the same file system as ``near``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=".skillmaker-", dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _missing_parents(path: Path) -> list[Path]:
    missing: list[Path] = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def new_skill(config_path: Path, output: Path | None = None, force: bool = False) -> Path:
    """Give the folder of a new skill repo stamped from a config, with one git commit.

    Everything is made in a scratch folder beside the target and moved into place at the end, so
    after any failure nothing is left behind.
    """
    loaded = load_config(config_path)
    config = loaded.config
    target = (output if output is not None else Path.cwd() / config.name).absolute()
    if target.exists() and not target.is_dir():
        raise UserError(f"--output: {target} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(f"--output: {target} exists and is not empty (use --force to replace it)")

    created = _missing_parents(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _scratch(target.parent) as scratch:
            repo = _stamp(loaded, scratch)
            _swap_into_place(repo, target, scratch)
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def _stamp(loaded: LoadedConfig, scratch: Path) -> Path:
    config = loaded.config
    repo = render_owned_files(config, scratch)
    manifest = Manifest(__version__, _owned_hashes(repo))
    (repo / CONFIG_FILE).write_text(normalised_json(config), encoding="utf-8")
    class_file = loaded.class_file
    if class_file is not None and config.data.class_file is not None:
        destination = repo / config.data.class_file
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(class_file, destination)
    (repo / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (repo / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    git.init_and_commit(
        repo, f"Stamp skill {config.name} ({config.ticket}) with skillmaker {__version__}"
    )
    return repo


def _swap_into_place(repo: Path, target: Path, scratch: Path) -> None:
    if not target.exists():
        repo.rename(target)
        return
    old = scratch / "replaced"
    target.rename(old)
    try:
        repo.rename(target)
    except BaseException:
        old.rename(target)
        raise


def _edited(repo: Path, manifest: Manifest) -> list[str]:
    return sorted(
        name
        for name, digest in manifest.files.items()
        if (repo / name).is_file() and sha256_file(repo / name) != digest
    )


def upgrade_skill(repo: Path, force: bool = False, check: bool = False) -> UpgradeResult:
    """Give what changed after regenerating the skillmaker-owned files of a skill repo.

    A hand-edited owned file stops the upgrade (naming it) unless ``force``; user files (the
    config, the class file, anything not in the manifest) are never touched. With ``check``
    nothing is written.
    """
    repo = repo.absolute()
    manifest = Manifest.read(repo)
    loaded = load_config(repo / CONFIG_FILE)
    edited = _edited(repo, manifest)
    if edited and not force:
        raise ProblemsError.from_lines(
            str(repo),
            [
                f"{name}: owned by skillmaker but edited by hand (use --force to overwrite)"
                for name in edited
            ],
        )
    with _scratch(repo / ".skillmaker") as scratch:
        rendered = render_owned_files(loaded.config, scratch)
        fresh = _owned_hashes(rendered)
        changed = tuple(n for n in fresh if n in manifest.files and _differs(repo / n, fresh[n]))
        added = tuple(n for n in fresh if n not in manifest.files)
        removed = tuple(n for n in manifest.files if n not in fresh and (repo / n).exists())
        clash = [n for n in added if (repo / n).exists() and sha256_file(repo / n) != fresh[n]]
        if clash and not force:
            raise ProblemsError.from_lines(
                str(repo),
                [
                    f"{n}: a file of yours is in the way of a new owned file (use --force)"
                    for n in clash
                ],
            )
        result = UpgradeResult(changed, added, removed, tuple(edited))
        if check:
            return result
        for name in (*changed, *added):
            _replace_file(rendered / name, repo / name)
        for name in removed:
            (repo / name).unlink()
        write_atomic(repo / MANIFEST, Manifest(__version__, fresh).to_json())
    return result


def _differs(path: Path, digest: str) -> bool:
    return not path.is_file() or sha256_file(path) != digest


def _replace_file(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(destination, source.read_bytes())
    shutil.copymode(source, destination)
