"""Progress of long steps: about ten lines in a log, a bar on a terminal."""

from __future__ import annotations

import io

from skillmaker.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_about_ten_lines_in_a_log() -> None:
    lines: list[str] = []
    progress = Progress("pull", 1000, lines.append, stream=io.StringIO())
    for _ in range(1000):
        progress.advance()
    assert lines[0] == "pull: 100/1000" and lines[-1] == "pull: 1000/1000"
    assert len(lines) == 10


def test_short_steps_say_nothing() -> None:
    lines: list[str] = []
    progress = Progress("pull", 20, lines.append, stream=io.StringIO())
    progress.advance(20)
    assert lines == []


def test_a_bar_on_a_terminal() -> None:
    screen = _Terminal()
    lines: list[str] = []
    progress = Progress("train", 4, lines.append, stream=screen, width=4)
    for _ in range(4):
        progress.advance()
    assert screen.getvalue().endswith("\rtrain: [####] 4/4\n")
    assert "\rtrain: [##..] 2/4" in screen.getvalue()
    assert lines == []
