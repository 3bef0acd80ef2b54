"""Push-triggered runs: ``new --remote`` makes a bare repo whose pushes are checked and queue runs.

Every push here is a real ``git push`` into a bare repository whose hooks run skillmaker.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skillmaker.cli import main
from skillmaker.pipeline.demo import write_digits
from skillmaker.pipeline.queue import enqueue, finished, pending, running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
    )


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _wait(what: Callable[[], bool], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting for the queue")


@pytest.fixture
def skill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Give a skill repo made with ``new --remote``, the remote, and a developer's clone."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    config = json.loads((EXAMPLES / "digits.json").read_text())
    config["data"]["source"] = (tmp_path / "data").as_uri()  # empty: runs stop at the data stage
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    (tmp_path / "digits.json").write_text(json.dumps(config))
    remote = tmp_path / "remote.git"
    code, out, err = _cli(
        "new", "--config", str(tmp_path / "digits.json"), "--output", str(tmp_path / "skill"),
        "--remote", str(remote),
    )  # fmt: skip
    assert code == 0, err
    assert "pushes to" in out
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "--quiet", str(remote), str(clone))
    return tmp_path / "skill", remote, clone


def _commit(clone: Path, text: str) -> str:
    (clone / "NOTES.md").write_text(text + "\n")
    _git(clone, "add", "NOTES.md")
    _git(clone, "commit", "--quiet", "-m", text)
    return _git(clone, "rev-parse", "HEAD").stdout.strip()


def _settings(remote: Path, **values: Any) -> None:
    path = remote / "skillmaker" / "settings.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def _log(remote: Path, record: dict[str, Any]) -> str:
    return (remote / "skillmaker" / "logs" / str(record["log"])).read_text()


def test_the_first_push_queues_a_run(skill: tuple[Path, Path, Path]) -> None:
    repo, remote, _ = skill
    first = _git(repo, "rev-parse", "HEAD").stdout.strip()
    _wait(lambda: len(finished(remote)) == 1 and running(remote) is None)
    [record] = finished(remote)
    assert record["commit"] == first and record["ref"] == "refs/heads/main"
    assert record["status"] == "failed", "the data folder is empty: the run stops at data"
    assert "== notify" in _log(remote, record), "a failed run still notifies"


def test_an_invalid_config_is_refused_at_push_time(skill: tuple[Path, Path, Path]) -> None:
    _, remote, clone = skill
    raw = json.loads((clone / "skill.json").read_text())
    raw["model"]["network"] = "resnet"
    (clone / "skill.json").write_text(json.dumps(raw))
    _git(clone, "commit", "--quiet", "-am", "a network that does not exist")
    pushed = _git(clone, "push", "origin", "main", check=False)
    assert pushed.returncode != 0
    assert "remote: push refused: refs/heads/main at " in pushed.stderr
    assert "skill.json: model.network: must be one of small_cnn" in pushed.stderr
    assert '(got "resnet")' in pushed.stderr
    refused = _git(clone, "rev-parse", "HEAD").stdout.strip()
    _wait(lambda: not pending(remote) and running(remote) is None)
    assert refused not in [r["commit"] for r in finished(remote)]
    heads = _git(remote, "rev-parse", "main").stdout.strip()
    assert heads != refused, "the remote kept its old main"


def test_queued_pushes_coalesce_and_only_the_release_branch_deploys(
    skill: tuple[Path, Path, Path],
) -> None:
    _, remote, clone = skill
    _wait(lambda: len(finished(remote)) == 1 and running(remote) is None)
    main_commits = []
    for n in range(4):
        main_commits.append(_commit(clone, f"change {n}"))
        _git(clone, "push", "--quiet", "origin", "main")
    _git(clone, "checkout", "--quiet", "-b", "feature")
    feature = _commit(clone, "feature work")
    _git(clone, "push", "--quiet", "origin", "feature")
    _wait(lambda: len(finished(remote)) == 6 and not pending(remote) and running(remote) is None)

    done = finished(remote)[1:]
    ran = [r for r in done if r["status"] != "superseded"]
    superseded = [r for r in done if r["status"] == "superseded"]
    assert superseded, "pushes queued behind a running run coalesce"
    assert ran[-1]["commit"] == feature or ran[-2]["commit"] == feature
    assert main_commits[-1] in [r["commit"] for r in ran], "the newest commit always runs"
    for record in superseded:
        assert record["exit_code"] is None and "log" not in record
        assert record["superseded_by"] > record["job"]
    for before, after in itertools.pairwise(ran):
        assert before["finished_at"] <= after["started_at"], "runs never overlap"
    for record in ran:
        if record["ref"] == "refs/heads/feature":
            assert "--until gate" in _log(remote, record).splitlines()[1]
        else:
            assert "--until" not in _log(remote, record).splitlines()[1]


def test_status_log_cancel_and_timeout(skill: tuple[Path, Path, Path], tmp_path: Path) -> None:
    repo, remote, clone = skill
    _wait(lambda: len(finished(remote)) == 1 and running(remote) is None)
    write_digits(tmp_path / "data")  # real data: a run now trains, long enough to stop it

    _settings(remote, timeout_s=4)
    commit = _commit(clone, "a run that takes too long")
    _git(clone, "push", "--quiet", "origin", "main")
    _wait(lambda: len(finished(remote)) == 2 and running(remote) is None)
    timed_out = finished(remote)[-1]
    assert (timed_out["commit"], timed_out["status"], timed_out["exit_code"]) == (
        commit, "timed out", 124,
    )  # fmt: skip
    assert "run stopped after its timeout of 4 s" in _log(remote, timed_out)

    _settings(remote, timeout_s=600)
    commit = _commit(clone, "a run to cancel")
    _git(clone, "push", "--quiet", "origin", "main")
    _wait(lambda: (running(remote) or {}).get("commit") == commit)
    pid = int(running(remote)["pid"])  # type: ignore[index]
    code, out, err = _cli("queue", "status", "--repo", str(repo))
    assert code == 0 and out.startswith("running  ") and commit[:12] in out, err
    code, out, _ = _cli("queue", "log", "--repo", str(repo))
    assert f"run of {commit}" in out
    code, out, err = _cli("queue", "cancel", "--repo", str(repo))
    assert code == 0 and "stopping run" in out, err
    _wait(lambda: len(finished(remote)) == 3 and running(remote) is None)
    assert finished(remote)[-1]["status"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the whole run was stopped, not only the worker's child

    job = enqueue(remote, commit, "refs/heads/main", start_worker=False)
    code, out, err = _cli("queue", "cancel", "--remote", str(remote), job.name)
    assert code == 0 and "cancelled queued run" in out, err
    assert not pending(remote)
    code, out, _ = _cli("queue", "status", "--remote", str(remote))
    assert [line.split()[0] for line in out.splitlines()][-3:] == [
        "timed",
        "cancelled",
        "cancelled",
    ]
    code, _, err = _cli("queue", "cancel", "--remote", str(remote), "nope")
    assert code == 2 and "no queued or running job 'nope'" in err
