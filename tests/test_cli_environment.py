"""A full disk or a folder the user may not write is exit 2 naming the path, not "a bug"."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmaker import cli
from skillmaker.errors import ExitCode, SkillmakerError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits.json"


def run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    code = cli.main(list(args), out=io.StringIO(), err=err)
    return code, err.getvalue()


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """Give a folder every user may enter (pytest's own are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="skillmaker-env-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Act as the user ``nobody`` while inside (as root, folder modes would not stop a write)."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_read_only_output_folder_is_exit_2_naming_it(shared_folder: Path) -> None:
    config = shared_folder / "digits.json"
    shutil.copyfile(EXAMPLE, config)
    config.chmod(0o644)
    read_only = shared_folder / "read-only"
    read_only.mkdir(mode=0o555)
    read_only.chmod(0o555)
    import skillmaker.scaffold  # noqa: F401  (imported before the user changes)

    with unprivileged():
        code, err = run("new", "--config", str(config), "--output", str(read_only / "skill"))
    assert code == ExitCode.USER_ERROR
    assert f"skillmaker: {read_only}/" in err
    assert "permission denied (make it writable for this user, or use another folder)" in err
    assert "Traceback" not in err
    assert list(read_only.iterdir()) == []


def test_a_full_disk_is_exit_2_naming_the_path_even_when_a_library_wraps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fake: a full disk cannot be had here without privileges to mount a small one.
    def fake_full_disk_mkdtemp(*args: object, dir: str | None = None, **kwargs: object) -> str:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{dir}/.skillmaker-scratch")
        except OSError as exc:
            raise RuntimeError("rendering failed") from exc

    monkeypatch.setattr(tempfile, "mkdtemp", fake_full_disk_mkdtemp)
    code, err = run("new", "--config", str(EXAMPLE), "--output", str(tmp_path / "skill"))
    assert code == ExitCode.USER_ERROR
    assert f"skillmaker: {tmp_path}/.skillmaker-scratch: no space left on the device" in err
    assert "Traceback" not in err


def test_a_skillmaker_error_caused_by_a_full_disk_is_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_full_disk(args: object, out: object) -> int:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/store/runs/3/model.keras")
        except OSError as exc:
            raise SkillmakerError("could not save the model") from exc

    monkeypatch.setattr(cli, "_cmd_schema", fake_full_disk)
    code, err = run("schema")
    assert code == ExitCode.USER_ERROR
    assert err == (
        "skillmaker: could not save the model: /store/runs/3/model.keras: no space left on the "
        "device (free some space, then rerun)\n"
    )


def test_other_os_errors_are_still_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: object, out: object) -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere/x")

    monkeypatch.setattr(cli, "_cmd_schema", broken)
    code, err = run("schema")
    assert code == ExitCode.INTERNAL_ERROR
    assert "Traceback" in err
