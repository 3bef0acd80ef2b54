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


# Errors of the machine a stage runs on rather than of skillmaker: what happened, what to do.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "free some space, then rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free some space, then rerun"),
    errno.EACCES: ("permission denied", "make it writable for this user, or use another folder"),
    errno.EPERM: (
        "operation not permitted",
        "make it writable for this user, or use another folder",
    ),
    errno.EROFS: ("read-only file system", "use a writable folder"),
}


def environment_problem(exc: BaseException) -> str | None:
    """Give the message of a full disk or a permission error behind ``exc``, naming the path.

    The error may be wrapped by a library (``raise ... from``), so its causes are searched too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ENVIRONMENT_ERRNOS:
            what, advice = _ENVIRONMENT_ERRNOS[current.errno]
            paths = [str(p) for p in (current.filename, current.filename2) if p is not None]
            where = " -> ".join(paths) if paths else "a file the system did not name"
            return f"{where}: {what} ({advice})"
        current = current.__cause__ or current.__context__
    return None


def exit_code_of(exc: BaseException) -> int:
    """Give the exit code an exception ends the command with (DESIGN.md's contract)."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SkillmakerError) and exc.exit_code != ExitCode.INTERNAL_ERROR:
        return int(exc.exit_code)
    if environment_problem(exc) is not None:
        return int(ExitCode.USER_ERROR)
    return int(ExitCode.INTERNAL_ERROR)


def describe(exc: BaseException) -> str:
    """Give an exception as the one line a user reads: for a disk error, what and where."""
    machine = environment_problem(exc)
    if machine is not None and not isinstance(exc, SkillmakerError):
        return machine
    text = str(exc) or type(exc).__name__
    return f"{text}: {machine}" if machine is not None else text
