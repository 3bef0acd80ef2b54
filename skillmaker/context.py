"""The world a stage acts on: the skill repo, its config, its stores, the environment, the output."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from skillmaker.adapters.store import ObjectNotFound, Store, open_store
from skillmaker.config import SkillConfig, load_config
from skillmaker.domain.layout import Workspace, run_key
from skillmaker.domain.records import RunPointerRecord
from skillmaker.errors import UserError
from skillmaker.records import read_record, write_record


@dataclass(frozen=True)
class RunPointer:
    """The run the stages act on: its skill version and the commit of the skill repo (code version)."""

    skill_version: int
    code_version: str


@dataclass(frozen=True)
class SkillContext:
    """A skill repo with its validated config, its stores and the environment, passed to each stage."""

    repo: Path
    config: SkillConfig
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: TextIO = field(default=sys.stdout)
    _opened: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Adapters and records opened once per context and reused (stores, the run pointer)."""

    @property
    def workspace(self) -> Workspace:
        """Give the local working folders of the repo."""
        return Workspace(self.repo)

    @property
    def name(self) -> str:
        """Give the skill's name."""
        return self.config.name

    def store(self, uri: str) -> Store:
        """Give the store at ``uri``, opened once with this context's endpoint and region."""
        key = f"store:{uri}"
        if key not in self._opened:
            self._opened[key] = open_store(
                uri,
                endpoint_url=self.env.get("AWS_ENDPOINT_URL_S3")
                or self.env.get("AWS_ENDPOINT_URL"),
                region=self.env.get("AWS_DEFAULT_REGION") or self.env.get("AWS_REGION"),
            )
        store: Store = self._opened[key]
        return store

    def artifacts(self) -> Store:
        """Give the artifact store (registry, split ledger, runs)."""
        return self.store(self.config.deploy.artifacts)

    def data_store(self) -> Store:
        """Give the store the raw images are pulled from."""
        return self.store(self.config.data.source)

    def current_run(self) -> RunPointer:
        """Give the run the stages act on, or a user error when the version stage has not run."""
        path = self.workspace.current
        try:
            seen = path.stat()
        except FileNotFoundError:
            raise UserError(f"{path}: no current run (run `skillmaker version` first)") from None
        # Read once, and again only when another process (a stage, the runner) changed it.
        stamp = (seen.st_mtime_ns, seen.st_size, seen.st_ino)
        cached = self._opened.get("current")
        if cached is None or cached[0] != stamp:
            raw = read_record(path, RunPointerRecord)
            cached = (stamp, RunPointer(raw["skill_version"], raw["code_version"]))
            self._opened["current"] = cached
        pointer: RunPointer = cached[1]
        return pointer

    def set_current_run(self, pointer: RunPointer) -> None:
        """Record the run the next stages act on."""
        record: RunPointerRecord = {
            "skill_version": pointer.skill_version,
            "code_version": pointer.code_version,
        }
        write_record(self.workspace.current, record, RunPointerRecord)

    def run_dir(self) -> Path:
        """Give the local folder of the current run, made if needed."""
        path = self.workspace.run_dir(self.current_run().skill_version)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def record(self, name: str) -> Any:
        """Give a record of the current run: the local copy, else the store's (another agent's)."""
        path = self.run_dir() / name
        if not path.is_file():
            key = run_key(self.name, self.current_run().skill_version, name)
            try:
                self.artifacts().download(key, path)
            except ObjectNotFound:
                raise UserError(
                    f"{path}: missing here and in the store ({key}); run the stage that writes it"
                ) from None
        return read_record(path)

    def say(self, message: str) -> None:
        """Print one line of progress."""
        print(message, file=self.out, flush=True)


def load_skill(
    repo: Path, env: Mapping[str, str] | None = None, out: TextIO | None = None
) -> SkillContext:
    """Give the context of the skill repo at ``repo`` (its ``skill.json`` validated)."""
    repo = repo.absolute()
    config_path = repo / "skill.json"
    if not config_path.is_file():
        raise UserError(f"{repo}: not a skill repo (no skill.json); use --repo or cd into one")
    config = load_config(config_path).config
    return SkillContext(
        repo=repo,
        config=config,
        env=dict(os.environ) if env is None else env,
        out=out if out is not None else sys.stdout,
    )
