"""Loading the records of a run: what is required, what is optional, and how bad records read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillmaker import records
from skillmaker.errors import UserError
from skillmaker.report.inputs import REQUIRED, load_inputs
from tests.report.sample_run import SampleOptions, class_names, write_sample_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_sample_run(tmp_path / "run", class_names(4), SampleOptions(failures=2))


def _edit(path: Path, change: object) -> None:
    data = json.loads(path.read_text())
    change(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))


def test_a_complete_run_loads_every_record(run_dir: Path) -> None:
    inputs = load_inputs(run_dir)
    assert inputs.run["skill_version"] == 7
    assert inputs.metrics["labels"] == class_names(4)
    assert inputs.gate is not None and inputs.stack is not None and inputs.history is not None


@pytest.mark.parametrize("name", REQUIRED)
def test_a_missing_required_record_is_a_user_error_naming_it(run_dir: Path, name: str) -> None:
    (run_dir / name).unlink()
    with pytest.raises(UserError, match=rf"{name}: missing"):
        load_inputs(run_dir)


@pytest.mark.parametrize("name", [records.HISTORY, records.GATE, records.STACK])
def test_optional_records_may_be_absent(run_dir: Path, name: str) -> None:
    (run_dir / name).unlink()
    inputs = load_inputs(run_dir)
    assert {
        records.HISTORY: inputs.history,
        records.GATE: inputs.gate,
        records.STACK: inputs.stack,
    }[name] is None


def test_a_wrong_type_names_the_key_path(run_dir: Path) -> None:
    _edit(run_dir / records.METRICS, lambda d: d["candidate"]["per_class"][1].update(f1="high"))
    with pytest.raises(
        UserError, match=r"metrics\.json: candidate\.per_class\[1\]\.f1: expected a number"
    ):
        load_inputs(run_dir)


def test_a_missing_key_is_named(run_dir: Path) -> None:
    _edit(run_dir / records.AUDIT, lambda d: d.pop("ledger_hash"))
    with pytest.raises(UserError, match=r"audit\.json: ledger_hash: missing"):
        load_inputs(run_dir)


def test_broken_json_is_named(run_dir: Path) -> None:
    (run_dir / records.TRAIN).write_text("{not json")
    with pytest.raises(UserError, match=r"train\.json: line 1"):
        load_inputs(run_dir)


def test_a_confusion_matrix_of_the_wrong_size_is_refused(run_dir: Path) -> None:
    _edit(run_dir / records.METRICS, lambda d: d["candidate"]["confusion_matrix"].pop())
    with pytest.raises(UserError, match=r"candidate\.confusion_matrix: must be 4 x 4"):
        load_inputs(run_dir)


def test_a_failure_with_an_unknown_label_is_refused(run_dir: Path) -> None:
    _edit(
        run_dir / records.METRICS, lambda d: d["candidate"]["failures"][0].update(predicted="ghost")
    )
    with pytest.raises(UserError, match=r"failures\[0\]: label 'ghost' not in labels"):
        load_inputs(run_dir)


def test_a_missing_run_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such run folder"):
        load_inputs(tmp_path / "nowhere")


def test_an_optional_key_may_be_absent_and_extra_keys_are_ignored(run_dir: Path) -> None:
    _edit(run_dir / records.GATE, lambda d: (d.pop("override", None), d.update(future_field=1)))
    assert load_inputs(run_dir).gate is not None
