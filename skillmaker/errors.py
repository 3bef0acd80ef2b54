"""The one exception hierarchy of skillmaker and the exit codes it maps to."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``skillmaker`` command (DESIGN.md)."""

    OK = 0
    INTERNAL_ERROR = 1
    USER_ERROR = 2
    GATE_REJECTED = 3


class SkillmakerError(Exception):
    """Base of every error skillmaker raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class UserError(SkillmakerError):
    """The user's input (config, data, flags, environment) is wrong; the message says what and where."""

    exit_code = ExitCode.USER_ERROR


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, what is wrong, and the offending value."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ProblemsError(UserError):
    """A user error made of several problems, printed one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def from_lines(cls, where: str, messages: Iterable[str]) -> ProblemsError:
        """Give an error whose problems all sit in one place."""
        return cls([Problem(where, m) for m in messages])


class GateRejected(SkillmakerError):
    """The gate rejected the candidate model."""

    exit_code = ExitCode.GATE_REJECTED


# Errors of the machine a user can mend (a full disk, a folder they may not write): not bugs.
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def exit_code_of(exc: BaseException) -> int:
    """Give the exit code an exception ends the command with (DESIGN.md's contract)."""
    if isinstance(exc, SkillmakerError):
        return int(exc.exit_code)
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        return int(ExitCode.USER_ERROR)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return int(ExitCode.INTERNAL_ERROR)


def describe(exc: BaseException) -> str:
    """Give an exception as the one line a user reads: for a disk error, what and where."""
    if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
        where = exc.filename if exc.filename is not None else "(unknown path)"
        return f"{where}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__
