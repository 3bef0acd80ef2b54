"""The infra repository: where it is, a fresh clone of it, and publishing one edit of the template.

Several skills deploy into one template, so pushes race. A push that lost (the remote moved on) is
followed by ``git pull --rebase`` and another push; the rebased template is validated again before
it leaves. When the rebase conflicts, the clone is reset to the remote and the edit is applied
afresh. Attempts are bounded.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skillmaker.adapters import git
from skillmaker.errors import UserError
from skillmaker.resources import infra_dir

REMOTE = "origin"
BUNDLED_TEMPLATE = "skills.yaml"

# URLs git understands: scheme://..., and the scp-like user@host:path form.
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/@:\s]+@[^/:\s]+:)", re.IGNORECASE)

Edit = Callable[[str], str]
Validate = Callable[[str], None]


class InfraBusyError(UserError):
    """Other deploys kept pushing to the infra repo; this one gave up, nothing was pushed."""


def is_url(location: str) -> bool:
    """Give whether an infra repo location is a URL (not a local path)."""
    return bool(_URL.match(location))


def resolve_location(location: str, base: Path) -> str:
    """Give the infra repo as git should see it: a URL as is, a local path made absolute."""
    if is_url(location):
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def init_infra_repo(
    path: Path, *, bare: bool = False, template_path: str = BUNDLED_TEMPLATE
) -> Path:
    """Give a new infra git repo at ``path`` holding the bundled skill stack template, committed.

    ``bare`` makes a bare repository, the shape of a shared remote.
    """
    if path.exists() and any(path.iterdir()):
        raise UserError(f"{path}: exists and is not empty; not creating an infra repo there")
    source = infra_dir() / BUNDLED_TEMPLATE
    if not bare:
        path.mkdir(parents=True, exist_ok=True)
        target = path / template_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        git.init_and_commit(path, "Skill stack template from skillmaker")
        return path
    with tempfile.TemporaryDirectory(prefix="infra-seed-") as seed:
        work = Path(seed) / "work"
        init_infra_repo(work, template_path=template_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        git.clone_bare(work, path)
    return path


@dataclass
class Published:
    """What publishing an edit did: the commit that carries it (None: nothing to change)."""

    commit: str | None
    head: str
    attempts: int


class InfraCheckout:
    """A private clone of the infra repo in the skill's workspace."""

    def __init__(self, path: Path, source: str, branch: str) -> None:
        self.path = path
        self.source = source
        self.branch = branch

    @classmethod
    def clone(cls, source: str, destination: Path) -> InfraCheckout:
        """Give a fresh clone of ``source`` at ``destination`` (replacing an earlier clone)."""
        if destination.exists():
            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        git.clone(source, destination)
        if not git.has_commit(destination):
            raise UserError(f"{source}: the infra repo has no commit; commit the template first")
        if not is_url(source) and not _is_bare(Path(source)):
            # A local working repo has its branch checked out: update its files on push too,
            # which git allows only when its work tree is clean.
            git.set_config(
                destination,
                f"remote.{REMOTE}.receivepack",
                "git -c receive.denyCurrentBranch=updateInstead receive-pack",
            )
        return cls(destination, source, git.current_branch(destination))

    def read(self, relative: str) -> str:
        """Give a file's text in the clone."""
        path = self.path / relative
        if not path.is_file():
            raise UserError(
                f"{self.source}: no {relative} in the infra repo (deploy.template_path)"
            )
        return path.read_text(encoding="utf-8")

    def _write(self, relative: str, text: str) -> None:
        (self.path / relative).write_text(text, encoding="utf-8")

    def head(self) -> str:
        """Give the sha of the clone's HEAD."""
        return git.head_commit(self.path)

    def refresh(self) -> str:
        """Give the remote branch's sha after resetting the clone to it."""
        sha = git.fetch(self.path, REMOTE, self.branch)
        git.reset_hard(self.path, f"{REMOTE}/{self.branch}")
        return sha

    def remote_text(self, relative: str) -> tuple[str, str]:
        """Give the remote branch's sha and the file's text there, freshly fetched."""
        sha = git.fetch(self.path, REMOTE, self.branch)
        return sha, git.show_file(self.path, f"{REMOTE}/{self.branch}", relative)

    def _apply(self, relative: str, edit: Edit, validate: Validate, message: str) -> str | None:
        before = self.read(relative)
        after = edit(before)
        if after == before:
            return None
        validate(after)
        self._write(relative, after)
        return git.commit_all(self.path, message)

    def publish(
        self,
        relative: str,
        edit: Edit,
        validate: Validate,
        message: str,
        *,
        attempts: int = 6,
        on_retry: Callable[[str], None] | None = None,
        before_push: Callable[[str], float | None] | None = None,
    ) -> Published:
        """Give what was pushed after applying ``edit`` to a file, validating and committing it.

        ``validate`` raises to refuse a text; a refused template is never pushed. ``before_push``
        is told the sha of each commit about to be pushed, and raises to stop before it is; it
        gives how many seconds the push may take (None: no bound). A push cut off at that bound
        raises ``git.PushCutOffError``, naming the commit: it may have landed.
        """
        commit = self._apply(relative, edit, validate, message)
        if commit is None:
            return Published(commit=None, head=self.head(), attempts=0)
        for attempt in range(1, attempts + 1):
            timeout = None if before_push is None else before_push(self.head())
            if git.push(self.path, REMOTE, self.branch, timeout=timeout):
                return Published(commit=self.head(), head=self.head(), attempts=attempt)
            if on_retry is not None:
                on_retry(f"infra repo moved on while pushing (attempt {attempt}); rebasing")
            if git.pull_rebase(self.path, REMOTE, self.branch):
                validate(self.read(relative))
            else:
                git.reset_hard(self.path, f"{REMOTE}/{self.branch}")
                if self._apply(relative, edit, validate, message) is None:
                    return Published(commit=None, head=self.head(), attempts=attempt)
            # Spread out deploys that keep colliding.
            time.sleep(random.uniform(0.05, 0.3) * attempt)  # noqa: S311
        raise InfraBusyError(
            f"{self.source}: gave up pushing after {attempts} attempts; other deploys kept "
            "pushing first. Nothing was pushed; run the deploy again"
        )

    def revert(self, commit: str, message: str, *, attempts: int = 6) -> Published:
        """Give what was pushed after undoing ``commit`` (rebasing over later pushes).

        Idempotent: a commit that is not in the branch's history (its push never landed) or was
        reverted already is left alone (``commit`` None in the answer), so that a deployer whose
        lease was taken over and the deployer that took it may both undo the same push.
        """
        git.fetch(self.path, REMOTE, self.branch)
        git.reset_hard(self.path, f"{REMOTE}/{self.branch}")
        if git.revert_line(commit) not in message:
            message = f"{message.rstrip()}\n\n{git.revert_line(commit)}\n"
        remote = f"{REMOTE}/{self.branch}"
        for attempt in range(1, attempts + 1):
            if not git.contains(self.path, commit, remote) or git.reverted(
                self.path, commit, remote
            ):
                return Published(commit=None, head=self.head(), attempts=attempt - 1)
            git.revert(self.path, commit, message)
            if git.push(self.path, REMOTE, self.branch):
                return Published(commit=self.head(), head=self.head(), attempts=attempt)
            git.fetch(self.path, REMOTE, self.branch)
            git.reset_hard(self.path, f"{REMOTE}/{self.branch}")
            time.sleep(random.uniform(0.05, 0.3) * attempt)  # noqa: S311
        raise InfraBusyError(f"{self.source}: gave up pushing the revert of {commit[:7]}")


def _is_bare(path: Path) -> bool:
    return (
        (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / ".git").exists()
    )
