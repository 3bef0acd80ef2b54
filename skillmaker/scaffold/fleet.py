"""A fleet of skill repos: status, upgrade and validate over many at once, with one summary.

A path is a skill repo (it has ``.skillmaker/manifest.json``) or a folder whose sub-folders are;
each skill is handled on its own, so one broken skill never stops the others.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skillmaker.adapters.store import open_store
from skillmaker.config import load_config
from skillmaker.config.migrations import schema_of
from skillmaker.errors import SkillmakerError, UserError
from skillmaker.registry import read_registry
from skillmaker.scaffold.manifest import CONFIG_FILE, MANIFEST, Manifest
from skillmaker.scaffold.upgrade import UpgradeResult, upgrade_skill


def find_skills(paths: Sequence[Path]) -> list[Path]:
    """Give the skill repos named by ``paths`` (repos, or folders of repos), in order, once each."""
    found: list[Path] = []
    for path in paths:
        if (path / MANIFEST).is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(p for p in path.iterdir() if (p / MANIFEST).is_file())
            if not candidates:
                raise UserError(f"{path}: neither a skill repo nor a folder of skill repos")
        else:
            raise UserError(f"{path}: no such folder")
        for candidate in candidates:
            if candidate.absolute() not in found:
                found.append(candidate.absolute())
    return found


@dataclass(frozen=True)
class SkillStatus:
    """One row of ``fleet status``."""

    repo: Path
    skill: str
    skillmaker_version: str
    schema_version: str
    state: str
    last_run: str
    deployed: str

    @property
    def current(self) -> bool:
        """Give whether the skill is up to date with this skillmaker."""
        return self.state == "up to date"


def _registry_columns(artifacts: str, skill: str, env: Mapping[str, str]) -> tuple[str, str]:
    try:
        store = open_store(artifacts, region=env.get("AWS_DEFAULT_REGION"))
        record = read_registry(store, skill)
    except SkillmakerError as exc:
        return f"? ({exc})", "?"
    except Exception as exc:  # an unreachable store is a cell of the table, not a crash
        return f"? ({type(exc).__name__})", "?"
    history = record["history"]
    last = "never"
    if history:
        entry = history[-1]
        last = f"v{entry['skill_version']} {entry['decision']} {entry['updated_at']}"
    deployed = record["deployed"]
    return last, ("none" if deployed is None else f"v{deployed['skill_version']}")


def skill_status(repo: Path, env: Mapping[str, str]) -> SkillStatus:
    """Give the status row of one skill repo (errors become its state)."""
    name, version, schema = repo.name, "?", "?"
    try:
        version = Manifest.read(repo).skillmaker_version
        raw = json.loads((repo / CONFIG_FILE).read_text(encoding="utf-8"))
        schema = str(schema_of(raw))
        loaded = load_config(repo / CONFIG_FILE)
        name = loaded.config.name
        result = upgrade_skill(repo, check=True)
    except (SkillmakerError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return SkillStatus(repo, name, version, schema, f"error: {first}", "?", "?")
    state = "out of date" if result.out_of_date else "up to date"
    last, deployed = _registry_columns(loaded.config.deploy.artifacts, name, env)
    return SkillStatus(repo, name, version, schema, state, last, deployed)


def status_table(rows: Sequence[SkillStatus]) -> str:
    """Give the status rows as an aligned text table with a header."""
    header = ("skill", "skillmaker", "schema", "state", "last run", "deployed")
    cells = [header] + [
        (r.skill, r.skillmaker_version, r.schema_version, r.state, r.last_run, r.deployed)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


@dataclass(frozen=True)
class FleetUpgrade:
    """What ``fleet upgrade`` did to one skill: its result, or why it was refused."""

    repo: Path
    result: UpgradeResult | None
    error: str | None = None

    @property
    def line(self) -> str:
        """Give the summary line of this skill."""
        if self.error is not None:
            return f"{self.repo.name}: refused: {self.error}"
        assert self.result is not None
        result = self.result
        if result.conflicts or result.unresolved:
            names = (*result.conflicts, *result.unresolved)
            return f"{self.repo.name}: CONFLICTS in {', '.join(names)}"
        if not result.out_of_date:
            return f"{self.repo.name}: up to date"
        changes = len(result.summary_lines())
        commit = "" if result.commit is None else f", commit {result.commit[:12]}"
        return f"{self.repo.name}: upgraded ({changes} change(s){commit})"


def upgrade_fleet(repos: Sequence[Path], *, check: bool = False) -> list[FleetUpgrade]:
    """Give the upgrade of every repo, each on its own (a refusal does not stop the others)."""
    done: list[FleetUpgrade] = []
    for repo in repos:
        try:
            done.append(FleetUpgrade(repo, upgrade_skill(repo, check=check)))
        except SkillmakerError as exc:
            done.append(FleetUpgrade(repo, None, " / ".join(str(exc).splitlines())))
    return done


def validate_fleet(repos: Sequence[Path]) -> list[tuple[Path, list[str]]]:
    """Give, per repo, its problems (empty when valid) and deprecated keys it still spells."""
    results: list[tuple[Path, list[str]]] = []
    for repo in repos:
        try:
            loaded = load_config(repo / CONFIG_FILE)
            results.append((repo, [f"warning: {line}" for line in loaded.deprecated]))
        except SkillmakerError as exc:
            results.append((repo, str(exc).splitlines()))
    return results
