"""Config migrations: an old skill.json is carried to the current schema, each change listed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from skillmaker.cli import main
from skillmaker.config import load_config
from skillmaker.config.migrations import MIGRATIONS, migrate
from skillmaker.config.model import SCHEMA_VERSION
from skillmaker.errors import ProblemsError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _schema_1() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    raw["train"]["patience"] = raw["train"].pop("early_stopping_patience")
    raw["train"]["patience"] = 9
    return raw


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(args), out=out, err=err), out.getvalue(), err.getvalue()


def test_every_schema_has_a_migration_to_the_next() -> None:
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))


def test_schema_1_is_migrated_with_the_value_carried_over() -> None:
    raw = _schema_1()
    migrated, changes = migrate(raw, "skill.json")
    assert changes == [
        "schema 1 -> 2: train.patience -> train.early_stopping_patience (value 9 carried over)"
    ]
    assert migrated["schema_version"] == 2
    assert migrated["train"]["early_stopping_patience"] == 9
    assert "patience" not in migrated["train"]
    assert raw["train"]["patience"] == 9  # the input is not changed


def test_a_current_config_needs_no_migration() -> None:
    raw = json.loads((EXAMPLES / "digits.json").read_text())
    assert migrate(raw, "skill.json")[1] == []


def test_validate_names_the_deprecated_key_and_its_replacement(tmp_path: Path) -> None:
    path = tmp_path / "skill.json"
    path.write_text(json.dumps(_schema_1()))
    assert load_config(path).config.train.early_stopping_patience == 9
    code, out, err = _run("validate", "--config", str(path))
    assert code == 0, err
    assert (
        f"{path}: train.patience: deprecated, renamed train.early_stopping_patience in schema 2"
        in out
    )
    assert path.read_text() == json.dumps(_schema_1())  # validate writes nothing


def test_the_old_key_in_a_current_config_names_the_new_one(tmp_path: Path) -> None:
    raw = _schema_1()
    raw["schema_version"] = 2
    path = tmp_path / "skill.json"
    path.write_text(json.dumps(raw))
    code, _, err = _run("validate", "--config", str(path))
    assert code == 2
    assert (
        "skill.json: train.patience: is not a known key "
        "(renamed train.early_stopping_patience in schema 2)"
    ) in err


def test_a_config_from_a_newer_skillmaker_is_refused(tmp_path: Path) -> None:
    raw = json.loads((EXAMPLES / "digits.json").read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "skill.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ProblemsError, match="written by a newer skillmaker"):
        load_config(path)
