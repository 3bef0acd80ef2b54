"""Config migrations, registered by the schema version they upgrade from.

Each migration takes the raw ``skill.json`` object of schema N, changes it in place to schema N+1
and gives one line per change. ``migrate`` runs every step from a file's version to the current
one, so a skill stamped years ago upgrades in one go, its values carried over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skillmaker.config.model import SCHEMA_VERSION
from skillmaker.errors import Problem, ProblemsError

Raw = dict[str, Any]
Migration = Callable[[Raw], list[str]]

MIGRATIONS: dict[int, Migration] = {}
"""Migration from schema N to N+1, by N."""


@dataclass(frozen=True)
class Renamed:
    """A key that a newer schema renamed: where it was, where it is now, and since when."""

    old: str
    new: str
    since: int


RENAMED: tuple[Renamed, ...] = (
    Renamed("train.patience", "train.early_stopping_patience", since=2),
)
"""Every key renamed so far (``validate`` names them)."""


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register a function as the migration from schema ``from_version`` to the next."""

    def register(function: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"two migrations from schema {from_version}")
        MIGRATIONS[from_version] = function
        return function

    return register


def _rename(raw: Raw, old: str, new: str) -> list[str]:
    *old_parents, old_key = old.split(".")
    *new_parents, new_key = new.split(".")
    source: Any = raw
    for part in old_parents:
        source = source.get(part) if isinstance(source, dict) else None
    if not isinstance(source, dict) or old_key not in source:
        return []
    target: Any = raw
    for part in new_parents:
        target = target.setdefault(part, {}) if isinstance(target, dict) else None
    if not isinstance(target, dict) or new_key in target:
        return []  # both spelled: leave the old key for validation to name
    value = source.pop(old_key)
    target[new_key] = value
    return [f"{old} -> {new} (value {value!r} carried over)"]


@migration(1)
def _schema_1_to_2(raw: Raw) -> list[str]:
    changes: list[str] = []
    for item in RENAMED:
        if item.since == 2:
            changes += _rename(raw, item.old, item.new)
    return changes


def schema_of(raw: Any) -> int:
    """Give the schema version a raw config says it has (1 when it says nothing)."""
    version = raw.get("schema_version", 1) if isinstance(raw, dict) else 1
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def migrate(raw: Any, label: str) -> tuple[Any, list[str]]:
    """Give the raw config migrated to the current schema (a copy) and the changes made."""
    if not isinstance(raw, dict):
        return raw, []
    version = schema_of(raw)
    if version > SCHEMA_VERSION:
        raise ProblemsError(
            [
                Problem(
                    f"{label}: schema_version",
                    f"is {version}, written by a newer skillmaker (this one knows up to "
                    f"{SCHEMA_VERSION}): upgrade skillmaker",
                )
            ]
        )
    migrated: Raw = _deep_copy(raw)
    changes: list[str] = []
    while version < SCHEMA_VERSION:
        step = MIGRATIONS[version]
        changes += [f"schema {version} -> {version + 1}: {line}" for line in step(migrated)]
        version += 1
        migrated["schema_version"] = version
    return migrated, changes


def deprecated_keys(raw: Any) -> list[str]:
    """Give a line per renamed key still spelled the old way, naming its replacement."""
    lines: list[str] = []
    for item in RENAMED:
        node: Any = raw
        for part in item.old.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            lines.append(
                f"{item.old}: deprecated, renamed {item.new} in schema {item.since} "
                "(`skillmaker upgrade` rewrites skill.json)"
            )
    return lines


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
