"""Where things live: keys in the artifact store and folders in a skill repo's workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def join_key(*parts: str) -> str:
    """Give the key made of parts, with single slashes."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def skill_prefix(skill: str) -> str:
    """Give the store prefix of everything kept for a skill."""
    return join_key("skills", skill)


def registry_key(skill: str) -> str:
    """Give the key of a skill's registry (version counter, deployed version, history)."""
    return join_key(skill_prefix(skill), "registry.json")


def ledger_key(skill: str) -> str:
    """Give the key of a skill's split ledger (group -> split, never rewritten)."""
    return join_key(skill_prefix(skill), "splits.json")


def run_key(skill: str, version: int, name: str = "") -> str:
    """Give the key of a file (or, without a name, the prefix) of one run in the store."""
    return join_key(skill_prefix(skill), "runs", str(version), name)


def stack_key(stack: str) -> str:
    """Give the key of the last full-stack result of a cascade."""
    return join_key("stacks", stack, "last.json")


@dataclass(frozen=True)
class Workspace:
    """The local working folders of a skill repo (all under ``.skillmaker/``, ignored by git)."""

    repo: Path
    data_cache: Path | None = None
    """Folder of the pulled images and tensors when kept outside the repo (a CI agent's cache)."""

    @property
    def root(self) -> Path:
        """Give the ``.skillmaker`` folder."""
        return self.repo / ".skillmaker"

    @property
    def cache(self) -> Path:
        """Give the folder of the content-addressed data caches (images, tensors)."""
        return self.data_cache if self.data_cache is not None else self.root / "cache"

    @property
    def current(self) -> Path:
        """Give the file naming the run the stages act on (written by the version stage)."""
        return self.root / "current.json"

    def run_dir(self, version: int) -> Path:
        """Give the local folder of one run."""
        return self.root / "runs" / str(version)

    @property
    def raw_cache(self) -> Path:
        """Give the folder of pulled images, kept across runs so pulls are incremental."""
        return self.cache / "raw"

    @property
    def tensor_cache(self) -> Path:
        """Give the folder of preprocessed uint8 tensor shards, kept across runs."""
        return self.cache / "tensors"

    @property
    def lock(self) -> Path:
        """Give the lock file that keeps one local run per skill at a time."""
        return self.root / "lock"
