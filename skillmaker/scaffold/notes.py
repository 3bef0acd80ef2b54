"""The README's Notes section: the lines between its markers belong to the user, always."""

from __future__ import annotations

START = b"<!-- skillmaker:notes:start"
END = b"<!-- skillmaker:notes:end"
NOTES_FILE = "README.md"


def _span(text: bytes) -> tuple[int, int] | None:
    start = text.find(START)
    if start < 0:
        return None
    body = text.find(b"\n", start)
    end = text.find(END, body if body >= 0 else start)
    if body < 0 or end < 0:
        return None
    return body + 1, end


def carry_notes(user: bytes, render: bytes) -> bytes:
    """Give ``render`` with its Notes section replaced by the user's (unchanged if either lacks it)."""
    mine, theirs = _span(user), _span(render)
    if mine is None or theirs is None:
        return render
    return render[: theirs[0]] + user[mine[0] : mine[1]] + render[theirs[1] :]
