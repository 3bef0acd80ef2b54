"""``skillmaker serve`` on the command line: what a user sees when something is wrong."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from skillmaker.cli import main


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, err.getvalue()


def test_a_missing_bundle_exits_2_naming_it(tmp_path: Path) -> None:
    code, err = run("serve", "--model", str(tmp_path / "nowhere"))
    assert code == 2
    assert f"{tmp_path / 'nowhere'}: not a model bundle folder" in err
    assert "Traceback" not in err


def test_a_port_in_use_exits_2_naming_it(digits_bundle: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run("serve", "--model", str(digits_bundle), "--port", str(port))
    assert code == 2
    assert f"127.0.0.1:{port}: cannot listen there" in err


def test_a_limit_below_one_is_refused_by_the_flags(
    digits_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("serve", "--model", str(digits_bundle), "--max-batch", "0")
    assert code == 2
    assert "--max-batch: must be at least 1 (got 0)" in capsys.readouterr().err


def test_outside_a_skill_repo_without_model_says_how_to_fix_it(tmp_path: Path) -> None:
    code, err = run("serve", "--repo", str(tmp_path))
    assert code == 2
    assert "not a skill repo (no skill.json)" in err
