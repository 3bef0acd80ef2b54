"""Read a skill config file into a validated ``SkillConfig``, or explain every problem in it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skillmaker.config.checks import got, run_checks
from skillmaker.config.migrations import RENAMED, deprecated_keys, migrate
from skillmaker.config.model import SkillConfig
from skillmaker.errors import Problem, ProblemsError


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with the file it came from and the classes its class file requires."""

    config: SkillConfig
    path: Path
    required_classes: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict)
    """The file's object migrated to the current schema: only the keys the user set."""
    migrations: tuple[str, ...] = ()
    """The changes that migrating the file to the current schema makes (none: it is current)."""
    deprecated: tuple[str, ...] = ()
    """A line per deprecated key the file spells, naming its replacement."""

    @property
    def class_file(self) -> Path | None:
        """Give the class definition file, resolved next to the config, if one is set."""
        name = self.config.data.class_file
        return None if name is None else self.path.parent / name


def read_json_file(path: Path, label: str | None = None) -> Any:
    """Give the parsed JSON of a file, or a user error naming the file, line and column."""
    where = label or str(path)
    if not path.exists():
        raise ProblemsError([Problem(where, "file not found")])
    if path.is_dir():
        raise ProblemsError([Problem(where, "is a folder, expected a JSON file")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemsError([Problem(where, f"is not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise ProblemsError([Problem(where, f"cannot be read: {exc.strerror}")]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemsError(
            [Problem(where, f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")]
        ) from None


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after[_weights(), str]", "[key]") or item.startswith(
            ("function-", "literal[")
        ):
            continue  # pydantic's own steps; ``[key]``: the key itself is what is wrong
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


_TYPE_NAMES = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
}


def _unknown_key(dotted: str) -> str:
    for item in RENAMED:
        if item.old == dotted:
            return f"is not a known key (renamed {item.new} in schema {item.since})"
    return "is not a known key"


def _message(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(".".join(str(p) for p in error["loc"]))
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} item(s)"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "union_tag_invalid" or kind.startswith("union"):
        return str(error["msg"])
    return str(error["msg"]).removeprefix("Value error, ")


def _problems_from_validation(label: str, exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = tuple(error["loc"])
        # A union (class_weights) reports each alternative; one line per key path is enough.
        path = _key_path(loc)
        if path in seen:
            continue
        seen.add(path)
        text = _message(error)
        if error["type"] == "missing":
            problems.append(Problem(f"{label}: {path}", text))
        else:
            problems.append(Problem(f"{label}: {path}", f"{text} (got {got(error['input'])})"))
    return problems


def _required_classes(raw: Any, where: str) -> tuple[str, ...]:
    items = raw.get("classes") if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise ProblemsError(
            [Problem(where, 'must be a non-empty JSON list of class names (or {"classes": [...]})')]
        )
    names: list[str] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            raise ProblemsError(
                [Problem(f"{where}: [{index}]", f"must be a class name (got {got(item)})")]
            )
        if name in names:
            raise ProblemsError(
                [Problem(f"{where}: [{index}]", f"lists a class twice (got {got(name)})")]
            )
        names.append(name)
    return tuple(names)


def parse_config(
    raw: Any, label: str, base_dir: Path | None = None
) -> tuple[SkillConfig, tuple[str, ...]]:
    """Give the validated config and the classes its class file requires, or every problem."""
    if not isinstance(raw, dict):
        raise ProblemsError([Problem(label, f"must be a JSON object (got {got(raw)})")])
    try:
        config = SkillConfig.model_validate(raw)
    except ValidationError as exc:
        raise ProblemsError(_problems_from_validation(label, exc)) from None
    required: tuple[str, ...] = ()
    if config.data.class_file is not None and base_dir is not None:
        class_path = base_dir / config.data.class_file
        where = f"{label}: data.class_file: {config.data.class_file}"
        required = _required_classes(read_json_file(class_path, where), where)
    problems = [Problem(f"{label}: {p.path}", p.message) for p in run_checks(config, required)]
    if problems:
        raise ProblemsError(problems)
    return config, required


def load_config(path: Path) -> LoadedConfig:
    """Give the validated config of a ``skill.json``-style file."""
    label = path.name
    original = read_json_file(path, label)
    deprecated = deprecated_keys(original)
    raw, changes = migrate(original, label)
    config, required = parse_config(raw, label, path.parent)
    return LoadedConfig(
        config=config,
        path=path,
        required_classes=required,
        raw=raw,
        migrations=tuple(changes),
        deprecated=tuple(deprecated),
    )


def user_json(loaded: LoadedConfig) -> str:
    """Give skill.json as stamped: what the user set, at the current schema, no defaults frozen in."""
    body = {"schema_version": loaded.config.schema_version}
    body.update({k: v for k, v in loaded.raw.items() if k != "schema_version"})
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def normalised_json(config: SkillConfig) -> str:
    """Give the config as the JSON text stamped into a skill repo: every default spelled out."""
    return json.dumps(config.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def config_hash(config: SkillConfig) -> str:
    """Give the SHA-256 of the canonical JSON of a config (recorded in every run)."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_schema() -> dict[str, Any]:
    """Give the JSON Schema of ``skill.json``."""
    schema = SkillConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "skillmaker skill config"
    return schema
