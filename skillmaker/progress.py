"""Progress of long steps: a bar on a terminal, about ten plain lines in a CI log."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Counts work done out of a total and reports it as it goes."""

    def __init__(
        self,
        label: str,
        total: int,
        say: Callable[[str], None],
        *,
        stream: TextIO | None = None,
        width: int = 30,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._say = say
        self._stream = stream
        self._tty = bool(stream is not None and stream.isatty())
        self._width = width
        self._next_line = max(1, total // 10)

    @classmethod
    def on(cls, label: str, total: int, say: Callable[[str], None]) -> Progress:
        """Give a progress that draws a bar when standard output is a terminal."""
        return cls(label, total, say, stream=sys.stdout)

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more items done."""
        self.done += count
        if self._tty and self._stream is not None:
            filled = self._width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self._width - filled)
            end = "\n" if self.done >= self.total else ""
            self._stream.write(f"\r{self.label}: [{bar}] {self.done}/{self.total}{end}")
            self._stream.flush()
        elif self.total >= 100 and (self.done >= self._next_line or self.done == self.total):
            self._say(f"{self.label}: {self.done}/{self.total}")
            self._next_line = self.done + max(1, self.total // 10)
