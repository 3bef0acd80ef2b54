"""Push-triggered runs: ``new --remote`` makes a bare repo whose pushes queue runs, never overlapped."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

from skillmaker.cli import main
from skillmaker.pipeline.queue import finished, pending

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_two_pushes_make_two_runs_one_after_the_other(tmp_path: Path) -> None:
    config = json.loads((EXAMPLES / "digits.json").read_text())
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    (tmp_path / "digits.json").write_text(json.dumps(config))
    remote = tmp_path / "remote.git"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "new",
            "--config",
            str(tmp_path / "digits.json"),
            "--output",
            str(tmp_path / "skill"),
            "--remote",
            str(remote),
        ],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    assert "pushes to" in out.getvalue()
    settings = remote / "skillmaker" / "settings.json"
    raw = json.loads(settings.read_text())
    raw["run_args"] = ["--until", "version"]  # keep the queued runs short: the queue is under test
    settings.write_text(json.dumps(raw))

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "--quiet", str(remote), str(clone))
    commits = []
    for n in (1, 2):
        (clone / "NOTES.md").write_text(f"change {n}\n")
        _git(clone, "add", "NOTES.md")
        _git(clone, "commit", "--quiet", "-m", f"change {n}")
        commits.append(_git(clone, "rev-parse", "HEAD"))
        _git(clone, "push", "--quiet", "origin", "main")

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (len(finished(remote)) < 2 or pending(remote)):
        time.sleep(0.5)
    done = finished(remote)
    assert [d["commit"] for d in done] == commits
    assert [d["exit_code"] for d in done] == [0, 0]
    assert done[0]["finished_at"] <= done[1]["started_at"], "runs must not overlap"
    for record in done:
        log = (remote / "skillmaker" / "logs" / record["log"]).read_text()
        assert f"run of {record['commit']}" in log
    registry = json.loads(
        (tmp_path / "artifacts" / "skills" / "digits" / "registry.json").read_text()
    )
    assert registry  # each run allocated its own version
    work = remote / "skillmaker" / "work"
    assert _git(work, "rev-parse", "HEAD") == commits[1]
