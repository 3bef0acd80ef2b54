"""``skillmaker new``: stamp a skill repo from a config, never destroying what it does not own."""

from __future__ import annotations

import shutil
from pathlib import Path

from skillmaker import __version__
from skillmaker.adapters import git
from skillmaker.config import LoadedConfig, load_config, user_json
from skillmaker.errors import UserError
from skillmaker.fileio import write_atomic
from skillmaker.scaffold.manifest import CONFIG_FILE, MANIFEST, Manifest, write_bases
from skillmaker.scaffold.render import owned_hashes, render_owned_files, scratch


def _missing_parents(path: Path) -> list[Path]:
    missing: list[Path] = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def new_skill(config_path: Path, output: Path | None = None, force: bool = False) -> Path:
    """Give the folder of a new skill repo stamped from a config, with one git commit.

    Everything is made in a scratch folder and moved into place at the end, so after any failure
    nothing is left behind. With ``force`` on an existing folder only the files skillmaker owns
    (and skill.json, the class file and the manifest) are written, on top of any git history;
    every other file stays as it was.
    """
    loaded = load_config(config_path)
    config = loaded.config
    target = (output if output is not None else Path.cwd() / config.name).absolute()
    if target.exists() and not target.is_dir():
        raise UserError(f"--output: {target} is a file, not a folder")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not force:
        raise UserError(
            f"--output: {target} exists and is not empty "
            "(use --force to write skillmaker's own files into it; nothing else is touched)"
        )

    created = _missing_parents(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with scratch(target.parent) as work:
            repo = _stamp(loaded, work)
            if occupied:
                _stamp_into(repo, target, work, f"{_message(loaded)} (new --force)")
            else:
                git.init_and_commit(repo, _message(loaded))
                if target.exists():
                    target.rmdir()
                repo.rename(target)
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


def _message(loaded: LoadedConfig) -> str:
    config = loaded.config
    return f"Stamp skill {config.name} ({config.ticket}) with skillmaker {__version__}"


def _stamp(loaded: LoadedConfig, work: Path) -> Path:
    config = loaded.config
    repo = render_owned_files(config, work)
    files = owned_hashes(repo)
    write_bases(repo, repo, files)
    (repo / CONFIG_FILE).write_text(user_json(loaded), encoding="utf-8")
    class_file = loaded.class_file
    if class_file is not None and config.data.class_file is not None:
        destination = repo / config.data.class_file
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(class_file, destination)
    write_atomic(repo / MANIFEST, Manifest(__version__, files).to_json())
    return repo


def _stamp_into(stamped: Path, target: Path, work: Path, message: str) -> None:
    """Copy the stamped files over ``target``, then commit them there; undo all on failure."""
    names = [
        p.relative_to(stamped).as_posix()
        for p in sorted(stamped.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(stamped).parts
    ]
    backup = work / "backup"
    saved: dict[str, bool] = {}
    try:
        for name in names:
            destination = target / name
            if destination.is_dir():
                raise UserError(f"--output: {destination} is a folder where {name} goes")
            saved[name] = destination.is_file()
            if saved[name]:
                (backup / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(destination, backup / name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(stamped / name, destination)
        if not (target / ".git").exists():
            git.init_and_commit_paths(target, names, message)
        else:
            git.commit_paths(target, names, message)
    except BaseException:
        for name, existed in saved.items():
            if existed:
                shutil.copy2(backup / name, target / name)
            else:
                (target / name).unlink(missing_ok=True)
        raise
