"""The command line: exit codes by kind of error, and the commands it offers."""

from __future__ import annotations

import errno
import io
import subprocess
import sys

import pytest

from skillmaker import cli
from skillmaker.errors import ExitCode, GateRejected, SkillmakerError, UserError


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_exit_codes_are_an_intenum() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("error", "code", "traceback"),
    [
        (UserError("skill.json: bad"), 2, False),
        (GateRejected("accuracy dropped"), 3, False),
        (SkillmakerError("invariant broken"), 1, True),
        (RuntimeError("a bug"), 1, True),
        (OSError(errno.ENOSPC, "No space left on device", "/runs/7/model.keras"), 2, False),
        (PermissionError(errno.EACCES, "Permission denied", "/srv/cache"), 2, False),
        (OSError(errno.EIO, "Input/output error", "/dev/sdz"), 1, True),
    ],
)
def test_errors_become_exit_codes(
    monkeypatch: pytest.MonkeyPatch, error: Exception, code: int, traceback: bool
) -> None:
    def explode(args: object, out: object) -> int:
        raise error

    monkeypatch.setattr(cli, "_cmd_schema", explode)
    got, _, err = _run("schema")
    assert got == code
    assert ("Traceback" in err) is traceback
    if isinstance(error, OSError) and code == 2:
        assert f"skillmaker: {error.filename}: {error.strerror}" in err  # what and where
    else:
        assert str(error) in err


def test_unknown_command_and_flags_are_user_errors() -> None:
    assert _run("fly")[0] == 2
    assert _run("new")[0] == 2  # --config is required


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skillmaker", "--help"], capture_output=True, text=True, check=True
    )
    listed = {
        line.split()[0]
        for line in result.stdout.splitlines()
        if line.startswith("    ") and line.split()
    }
    assert {"new", "upgrade", "validate", "schema", "run", "demo", "cleanup", "queue"} <= listed
