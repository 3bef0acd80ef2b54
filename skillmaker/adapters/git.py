"""Git through its command line: the one place skillmaker runs git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from skillmaker.errors import UserError
from skillmaker.processes import end_group

_FALLBACK_IDENTITY = ("skillmaker", "skillmaker@localhost")


class GitError(UserError):
    """A git command failed; the message carries git's own words."""


class PushCutOffError(GitError):
    """A push ran past its time and was killed: it may have landed (the remote may have moved)."""

    def __init__(self, message: str, commit: str) -> None:
        self.commit = commit
        super().__init__(message)


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


def set_upstream(repo: Path, remote: str, branch: str) -> None:
    """Make ``remote/branch`` the upstream of the local ``branch``."""
    _run(["branch", "--quiet", f"--set-upstream-to={remote}/{branch}", branch], repo)


def checkout_commit(repo: Path, commit: str) -> None:
    """Fetch from origin and check out one commit (detached), discarding local edits."""
    _run(["fetch", "--quiet", "origin"], repo)
    _run(["checkout", "--quiet", "--force", "--detach", commit], repo)


def is_repo(path: Path) -> bool:
    """Give whether a folder is inside a git work tree."""
    probe = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "true"


def has_commit(repo: Path) -> bool:
    """Give whether a repository has at least one commit (HEAD resolves)."""
    probe = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0


def short_sha(repo: Path, length: int = 7) -> str:
    """Give the abbreviated sha of HEAD (at least ``length`` hex digits)."""
    return _run(["rev-parse", f"--short={length}", "HEAD"], repo).strip()


def is_dirty(repo: Path) -> bool:
    """Give whether tracked or untracked, not ignored, files differ from HEAD."""
    return bool(_run(["status", "--porcelain"], repo).strip())


def clone(source: str, destination: Path) -> None:
    """Clone a repository (local path or URL) into a folder that does not exist yet."""
    _run(["clone", "--quiet", "--no-hardlinks", source, str(destination)], destination.parent)


def current_branch(repo: Path) -> str:
    """Give the name of the checked-out branch."""
    return _run(["symbolic-ref", "--short", "HEAD"], repo).strip()


def set_config(repo: Path, key: str, value: str) -> None:
    """Set a repository-local git config value."""
    _run(["config", key, value], repo)


def commit_all(repo: Path, message: str) -> str | None:
    """Give the sha of a commit of every change in the work tree, or None when nothing changed."""
    env = _identity_env()
    _run(["add", "--all"], repo, env)
    if not _run(["status", "--porcelain"], repo, env).strip():
        return None
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()


def _retryable_push_refusal(stderr: str) -> bool:
    """Give whether a refused push lost a race (the remote moved) rather than being forbidden."""
    if "[rejected]" in stderr:
        return True
    races = ("failed to update ref", "cannot lock ref", "incorrect old value", "reference already")
    return "[remote rejected]" in stderr and any(race in stderr for race in races)


def push(repo: Path, remote: str, branch: str, *, timeout: float | None = None) -> bool:
    """Give True after pushing ``branch``, or False when the remote moved on (fetch and retry).

    ``timeout`` bounds the push: past it, git and every process it started (transport, a local
    remote's receive-pack and hooks) are killed, and ``PushCutOffError`` says the push may have
    landed. With no time left the push is not started (``GitError``).
    """
    commit = head_commit(repo)
    if timeout is not None and timeout <= 0:
        raise GitError(f"{repo}: no time left to push {commit[:7]}; not pushed")
    try:
        process = subprocess.Popen(
            ["git", "push", "--porcelain", remote, f"HEAD:refs/heads/{branch}"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_identity_env(),
            start_new_session=True,  # its own process group, so all of it can be stopped
        )
    except FileNotFoundError:
        raise UserError("git is not installed: skillmaker needs git on PATH") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException as exc:
        end_group(process)
        process.communicate()  # close the pipes
        if isinstance(exc, subprocess.TimeoutExpired):
            raise PushCutOffError(
                f"{repo}: git push {remote} {branch} of {commit[:7]} was cut off after "
                f"{timeout:.1f} s; it may have landed",
                commit,
            ) from None
        raise
    if process.returncode == 0:
        return True
    output = stderr + stdout
    if _retryable_push_refusal(output):
        return False
    raise GitError(f"{repo}: git push {remote} {branch} failed: {output.strip()}")


def pull_rebase(repo: Path, remote: str, branch: str) -> bool:
    """Give True after rebasing commits onto the remote branch; False (aborted) on conflict."""
    env = _identity_env()
    _run(["fetch", "--quiet", remote, branch], repo, env)
    result = subprocess.run(
        ["git", "rebase", "--quiet", f"{remote}/{branch}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode == 0:
        return True
    subprocess.run(
        ["git", "rebase", "--abort"], cwd=repo, capture_output=True, check=False, env=env
    )
    return False


def fetch(repo: Path, remote: str, branch: str) -> str:
    """Give the sha of the remote branch after fetching it."""
    _run(["fetch", "--quiet", remote, branch], repo)
    return _run(["rev-parse", f"{remote}/{branch}"], repo).strip()


def reset_hard(repo: Path, ref: str) -> None:
    """Make the work tree and the branch exactly ``ref`` (local changes are dropped)."""
    _run(["reset", "--quiet", "--hard", ref], repo)


def show_file(repo: Path, ref: str, path: str) -> str:
    """Give a file's text as it is at ``ref``."""
    return _run(["show", f"{ref}:{path}"], repo)


def revert(repo: Path, commit: str, message: str) -> str:
    """Give the sha of a new commit that undoes ``commit``."""
    env = _identity_env()
    _run(["revert", "--no-edit", "--no-commit", commit], repo, env)
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()


def contains(repo: Path, commit: str, ref: str) -> bool:
    """Give whether ``commit`` is in the history of ``ref`` (False too when git never saw it)."""
    probe = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, ref],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def revert_line(commit: str) -> str:
    """Give the line git writes in the message of a revert of ``commit``."""
    return f"This reverts commit {commit}."


def reverted(repo: Path, commit: str, ref: str) -> bool:
    """Give whether the history of ``ref`` holds a revert of ``commit`` (by its message line)."""
    found = _run(
        ["log", "--format=%H", "--fixed-strings", f"--grep={revert_line(commit)}", ref], repo
    )
    return bool(found.strip())


def identity(repo: Path) -> str | None:
    """Give the commit identity git would use here (``name <email>``), or None when none is set."""
    values = []
    for key in ("user.name", "user.email"):
        probe = subprocess.run(
            ["git", "config", "--get", key], cwd=repo, capture_output=True, text=True, check=False
        )
        values.append(probe.stdout.strip() if probe.returncode == 0 else "")
    name, email = values
    if name and email:
        return f"{name} <{email}>"
    return name or email or None


def clone_bare(source: Path, destination: Path) -> None:
    """Make a bare copy of a repository (the shape of a shared remote)."""
    _run(["clone", "--quiet", "--bare", str(source), str(destination)], destination.parent)


def modified_tracked(repo: Path) -> list[str]:
    """Give the status lines of tracked files that differ from HEAD (untracked files left out)."""
    text = _run(["status", "--porcelain", "--untracked-files=no"], repo)
    return [line for line in text.splitlines() if line.strip()]


def commit_paths(repo: Path, paths: list[str], message: str) -> str | None:
    """Give the sha of a commit of these paths (added, changed or deleted), or None if unchanged."""
    env = _identity_env()
    if not paths:
        return None
    _run(["add", "--all", "--", *paths], repo, env)
    if not _run(["diff", "--cached", "--name-only"], repo, env).strip():
        return None
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()


def merge_file(
    current: Path, base: Path, other: Path, labels: tuple[str, str, str]
) -> tuple[bytes, int]:
    """Give the three-way merge of ``other``'s changes since ``base`` into ``current``.

    The second value counts the conflicts, which the text marks inline (``<<<<<<<``).
    """
    try:
        result = subprocess.run(
            [
                "git", "merge-file", "-p",
                "-L", labels[0], "-L", labels[1], "-L", labels[2],
                str(current), str(base), str(other),
            ],
            capture_output=True,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise UserError("git is not installed: skillmaker needs git on PATH") from None
    if result.returncode < 0 or result.returncode > 127:
        raise GitError(f"git merge-file {current} failed: {result.stderr.decode().strip()}")
    return result.stdout, result.returncode


def init_and_commit_paths(repo: Path, paths: list[str], message: str) -> str:
    """Give the commit made by ``git init`` of a folder and one commit of these paths only."""
    env = _identity_env()
    _run(["init", "--quiet", "--initial-branch=main"], repo, env)
    _run(["add", "--all", "--", *paths], repo, env)
    _run(["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message], repo, env)
    return _run(["rev-parse", "HEAD"], repo, env).strip()


def file_history(repo: Path, path: str, limit: int = 50) -> list[bytes]:
    """Give the committed contents of a file, newest first (at most ``limit`` versions)."""
    try:
        commits = _run(["log", f"--max-count={limit}", "--format=%H", "--", path], repo).split()
    except GitError:
        return []  # no commits yet
    versions: list[bytes] = []
    for commit in commits:
        shown = subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=repo, capture_output=True, check=False
        )
        if shown.returncode == 0:
            versions.append(shown.stdout)
    return versions


def archive(git_dir: Path, commit: str) -> bytes:
    """Give the tree of a commit as a tar archive (works on bare repos and in their hooks)."""
    result = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(f"{git_dir}: git archive {commit} failed: {message}")
    return result.stdout


def remote_url(repo: Path, name: str = "origin") -> str | None:
    """Give the URL of a remote of a repository, or None when it has none of that name."""
    probe = subprocess.run(
        ["git", "remote", "get-url", name], cwd=repo, capture_output=True, text=True, check=False
    )
    return probe.stdout.strip() or None if probe.returncode == 0 else None
