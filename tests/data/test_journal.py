"""The journaled index: what was recorded survives a crash; a changed header starts afresh."""

from __future__ import annotations

import json
from pathlib import Path

from skillmaker.data.journal import JournaledIndex


def test_changes_survive_without_compaction(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = JournaledIndex(path, header={"format": 1})
    index.set("a", {"n": 1})
    index.set("b", {"n": 2})
    index.delete("a")
    index.close()  # killed before compacting
    again = JournaledIndex(path, header={"format": 1})
    assert list(again) == ["b"]
    assert again.get("b") == {"n": 2}
    assert "a" not in again


def test_a_cut_short_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = JournaledIndex(path, header={})
    index.set("a", 1)
    index.close()
    with index.journal_path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "b", "val')
    again = JournaledIndex(path, header={})
    assert (again.get("a"), again.get("b"), len(again)) == (1, None, 1)


def test_compaction_writes_one_snapshot_and_drops_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = JournaledIndex(path, header={"v": 2})
    index.set("x", [1, 2])
    index.compact()
    assert not index.journal_path.exists()
    assert json.loads(path.read_text()) == {"entries": {"x": [1, 2]}, "header": {"v": 2}}
    assert JournaledIndex(path, header={"v": 2}).get("x") == [1, 2]


def test_another_header_forgets_everything(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    old = JournaledIndex(path, header={"store": "file:///a"})
    old.set("x", 1)
    old.close()
    new = JournaledIndex(path, header={"store": "file:///b"})
    assert len(new) == 0
    new.set("y", 2)
    new.close()
    assert list(JournaledIndex(path, header={"store": "file:///b"})) == ["y"]


def test_a_damaged_snapshot_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_text("{not json")
    assert len(JournaledIndex(path, header={})) == 0
