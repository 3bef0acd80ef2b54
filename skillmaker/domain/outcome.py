"""How a stage ended: the one outcome every stage gives and the runner alone records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from skillmaker.errors import ExitCode

OutcomeKind = Literal["passed", "skipped", "rejected", "failed"]

FINISHED: tuple[OutcomeKind, ...] = ("passed", "skipped")
"""Outcomes after which a run goes on to the next stage."""


@dataclass(frozen=True)
class Outcome:
    """A stage's outcome: passed, skipped (with why), rejected (the gate), or failed (with why)."""

    kind: OutcomeKind
    message: str = ""
    exit_code: int = ExitCode.OK
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def passed(cls, message: str = "", warnings: tuple[str, ...] = ()) -> Outcome:
        """Give the outcome of a stage that did its work."""
        return cls("passed", message, ExitCode.OK, warnings)

    @classmethod
    def skipped(cls, reason: str, warnings: tuple[str, ...] = ()) -> Outcome:
        """Give the outcome of a stage that had nothing it could do here, and why."""
        return cls("skipped", reason, ExitCode.OK, warnings)

    @classmethod
    def rejected(cls, message: str) -> Outcome:
        """Give the outcome of a gate that did not let the candidate through."""
        return cls("rejected", message, ExitCode.GATE_REJECTED)

    @classmethod
    def failed(cls, message: str, exit_code: int = ExitCode.USER_ERROR) -> Outcome:
        """Give the outcome of a stage that stopped on an error (2: the input; 1: a bug)."""
        return cls("failed", message, exit_code)

    @classmethod
    def of_exit_code(cls, code: int, message: str) -> Outcome:
        """Give the outcome a stage's process exit code stands for (what Jenkins sees)."""
        if code == ExitCode.OK:
            return cls.passed(message)
        if code == ExitCode.GATE_REJECTED:
            return cls.rejected(message)
        return cls.failed(message, code)

    @property
    def finished(self) -> bool:
        """Say whether the run goes on after this stage."""
        return self.kind in FINISHED
