"""A local index that survives interruption: a JSON snapshot plus an append-only journal.

Each change is one JSON line appended to the journal and flushed, so a pull or a check that is
killed halfway keeps everything it finished; ``compact`` folds the journal into the snapshot
(written atomically) at the end. Rewriting the whole snapshot after every change would make a
long pull quadratic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from skillmaker.records import write_record


class JournaledIndex:
    """A mapping of string keys to JSON values, persisted in ``<path>`` and ``<path>.journal``."""

    def __init__(self, path: Path, header: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.header = dict(header or {})
        self._entries: dict[str, Any] = {}
        self._journal: IO[str] | None = None
        self._snapshot_valid = False
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None  # no index yet, or a damaged one: start afresh (it is only a cache)
        if not isinstance(raw, dict) or raw.get("header") != self.header:
            # A journal means nothing without the snapshot (and header) it continues.
            self.journal_path.unlink(missing_ok=True)
            return
        entries = raw.get("entries")
        self._entries = dict(entries) if isinstance(entries, dict) else {}
        self._snapshot_valid = True
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError):
            lines = []
        for line in lines:
            try:
                change = json.loads(line)
            except ValueError:
                continue  # the last line of a killed process may be cut short
            if not isinstance(change, dict) or not isinstance(change.get("key"), str):
                continue
            if "value" in change:
                self._entries[change["key"]] = change["value"]
            else:
                self._entries.pop(change["key"], None)

    def get(self, key: str) -> Any:
        """Give the value of a key, or None."""
        return self._entries.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def _append(self, change: dict[str, Any]) -> None:
        if self._journal is None:
            if not self._snapshot_valid:
                # The journal continues a snapshot with this header; write that one first.
                write_record(self.path, {"header": self.header, "entries": self._entries})
                self.journal_path.unlink(missing_ok=True)
                self._snapshot_valid = True
            self._journal = self.journal_path.open("a", encoding="utf-8")
        self._journal.write(json.dumps(change, sort_keys=True) + "\n")
        self._journal.flush()

    def set(self, key: str, value: Any) -> None:
        """Record a key's value now (journaled)."""
        self._entries[key] = value
        self._append({"key": key, "value": value})

    def delete(self, key: str) -> None:
        """Forget a key now (journaled)."""
        if key in self._entries:
            del self._entries[key]
            self._append({"key": key})

    def compact(self) -> None:
        """Write the snapshot atomically and drop the journal."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        write_record(self.path, {"header": self.header, "entries": self._entries})
        self._snapshot_valid = True
        self.journal_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the journal without compacting (what an interrupted run leaves)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
