"""Git through its command line: the one place skillmaker runs git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from skillmaker.errors import UserError

_FALLBACK_IDENTITY = ("skillmaker", "skillmaker@localhost")


class GitError(UserError):
    """A git command failed; the message carries git's own words."""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    except FileNotFoundError:
        raise UserError("git is not installed: skillmaker needs git on PATH") from None
    if result.returncode != 0:
        raise GitError(f"{cwd}: git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _identity_env() -> dict[str, str]:
    """Give an environment with a commit identity, keeping the user's own where one is set."""
    env = dict(os.environ)
    probe = subprocess.run(
        ["git", "config", "--get", "user.email"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0 and "GIT_AUTHOR_EMAIL" not in env:
        name, email = _FALLBACK_IDENTITY
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", name)
            env.setdefault(f"GIT_{role}_EMAIL", email)
    return env


def init_and_commit(repo: Path, message: str) -> str:
    """Give the commit made by ``git init`` of a folder and one commit of everything in it."""
    env = _identity_env()
    _run(["init", "--quiet", "--initial-branch=main"], repo, env)
    _run(["add", "--all"], repo, env)
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()


def head_commit(repo: Path) -> str:
    """Give the full sha of HEAD in a repository."""
    return _run(["rev-parse", "HEAD"], repo).strip()


def init_bare(path: Path) -> None:
    """Make a bare repository (default branch ``main``) at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    _run(["init", "--quiet", "--bare", "--initial-branch=main"], path)


def add_remote(repo: Path, name: str, url: str) -> None:
    """Add a remote to a repository."""
    _run(["remote", "add", name, url], repo)


def push(repo: Path, remote: str, branch: str) -> None:
    """Push a branch to a remote, setting it as upstream."""
    _run(["push", "--quiet", "--set-upstream", remote, branch], repo, _identity_env())


def clone(url: str, destination: Path) -> None:
    """Clone a repository into ``destination``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    _run(["clone", "--quiet", url, str(destination)], destination.parent)


def checkout_commit(repo: Path, commit: str) -> None:
    """Fetch from origin and check out one commit (detached), discarding local edits."""
    _run(["fetch", "--quiet", "origin"], repo)
    _run(["checkout", "--quiet", "--force", "--detach", commit], repo)


def commit_all(repo: Path, message: str) -> str:
    """Give the commit made of every change in a repository."""
    env = _identity_env()
    _run(["add", "--all"], repo, env)
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()
