"""The local runner: order, logs, stop on failure, always-stages, resume, one run at a time.

The stages here are tiny Python commands standing in for the real stage commands, so the test is
about the runner's own behaviour; the real stages are tested end to end elsewhere.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from skillmaker.adapters import git
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.domain.stages import STAGE_NAMES, Stage
from skillmaker.errors import UserError
from skillmaker.locks import exclusive
from skillmaker.pipeline.runner import exit_code_of, print_summary, run_pipeline
from skillmaker.scaffold import new_skill

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def ctx(tmp_path: Path) -> SkillContext:
    config = json.loads((EXAMPLES / "digits.json").read_text())
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(config))
    repo = new_skill(path, tmp_path / "skill")
    return load_skill(repo, out=io.StringIO())


def scripted(codes: dict[str, int], calls: list[str]) -> object:
    """Give an ``argv_for`` whose stages print their name and exit with the code asked for."""

    def argv_for(stage: Stage, repo: Path, profile: str | None) -> list[str]:
        calls.append(stage.name)
        code = codes.get(stage.name, 0)
        body = f"print('doing {stage.name}'); raise SystemExit({code})"
        if stage.name == "version":
            head = git.head_commit(repo)
            pointer = repo / ".skillmaker" / "current.json"
            body = (
                f"import json, pathlib; p = pathlib.Path({str(pointer)!r}); p.parent.mkdir(exist_ok=True, parents=True); "
                "n = json.loads(p.read_text())['skill_version'] + 1 if p.exists() else 1; "
                f"p.write_text(json.dumps({{'skill_version': n, 'code_version': {head!r}}})); "
                + body
            )
        return [sys.executable, "-c", body]

    return argv_for


def test_all_stages_run_in_order_with_a_log_each(ctx: SkillContext) -> None:
    calls: list[str] = []
    results = run_pipeline(ctx, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls == list(STAGE_NAMES)
    assert [r.outcome for r in results] == ["passed"] * len(STAGE_NAMES)
    run_dir = ctx.workspace.run_dir(1)
    for name in STAGE_NAMES:
        assert (run_dir / "logs" / f"{name}.log").read_text().strip() == f"doing {name}"
    record = json.loads((run_dir / "run.json").read_text())
    assert set(record["stages"]) == set(STAGE_NAMES)
    assert (
        Path(ctx.config.deploy.artifacts.removeprefix("file://")) / "skills/digits/runs/1/run.json"
    ).is_file()
    out = io.StringIO()
    print_summary(results, out)
    assert "train" in out.getvalue() and "total" in out.getvalue()


def test_a_failing_stage_stops_the_run_but_notify_and_cleanup_run(ctx: SkillContext) -> None:
    calls: list[str] = []
    results = run_pipeline(ctx, argv_for=scripted({"train": 2}, calls))  # type: ignore[arg-type]
    assert calls == ["version", "build", "data", "train", "notify", "cleanup"]
    assert exit_code_of(results) == 2
    assert [r.outcome for r in results][3] == "failed"

    calls.clear()
    results = run_pipeline(ctx, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls[0] == "train", "a rerun resumes at the first stage that did not finish"
    assert calls == [n for n in STAGE_NAMES if n not in ("version", "build", "data")]
    assert exit_code_of(results) == 0
    assert "resuming run 1 at stage train" in ctx.out.getvalue()  # type: ignore[attr-defined]


def test_a_run_failed_at_one_commit_is_not_resumed_at_the_next(ctx: SkillContext) -> None:
    calls: list[str] = []
    run_pipeline(ctx, argv_for=scripted({"train": 2}, calls))  # type: ignore[arg-type]
    first = git.head_commit(ctx.repo)
    (ctx.repo / "FIX.md").write_text("the fix\n")
    fixed = git.commit_all(ctx.repo, "fix") or ""
    calls.clear()
    run_pipeline(ctx, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls == list(STAGE_NAMES), "the fix runs as a new version from the start"
    out = ctx.out.getvalue()  # type: ignore[attr-defined]
    assert f"starting a new version: run 1 is of commit {first[:7]}, but HEAD is {fixed[:7]}" in out
    assert "resuming" not in out
    assert ctx.current_run() == RunPointer(2, fixed)


def test_a_run_is_not_resumed_with_another_config(ctx: SkillContext) -> None:
    run_pipeline(ctx, argv_for=scripted({"train": 2}, []))  # type: ignore[arg-type]
    config = json.loads((ctx.repo / "skill.json").read_text())
    config["train"]["epochs"] = 3
    (ctx.repo / "skill.json").write_text(json.dumps(config))
    edited = load_skill(ctx.repo, out=ctx.out)
    calls: list[str] = []
    run_pipeline(edited, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls[0] == "version"
    assert "starting a new version: run 1 was started with config" in ctx.out.getvalue()  # type: ignore[attr-defined]


def test_a_rejected_gate_exits_3_and_the_next_run_is_a_new_version(ctx: SkillContext) -> None:
    calls: list[str] = []
    results = run_pipeline(ctx, argv_for=scripted({"gate": 3}, calls))  # type: ignore[arg-type]
    assert exit_code_of(results) == 3
    assert "deploy" not in calls and calls[-2:] == ["notify", "cleanup"]
    calls.clear()
    run_pipeline(ctx, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls[0] == "version"
    assert ctx.current_run().skill_version == 2


def test_from_and_until(ctx: SkillContext) -> None:
    calls: list[str] = []
    run_pipeline(ctx, until="data", argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls == ["version", "build", "data"]
    calls.clear()
    run_pipeline(ctx, start="report", until="gate", argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert calls == ["report", "gate"]


def test_resume_needs_a_current_run(ctx: SkillContext) -> None:
    with pytest.raises(UserError, match="no current run"):
        run_pipeline(ctx, start="train", argv_for=scripted({}, []))  # type: ignore[arg-type]


def test_one_run_per_skill_at_a_time(ctx: SkillContext) -> None:
    with (
        exclusive(ctx.workspace.lock, what="a run"),
        pytest.raises(UserError, match="already running"),
    ):
        run_pipeline(ctx, argv_for=scripted({}, []))  # type: ignore[arg-type]


def test_a_failing_version_stage_still_notifies(tmp_path: Path) -> None:
    config = json.loads((EXAMPLES / "digits.json").read_text())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be\n")
    config["deploy"]["artifacts"] = (blocker / "artifacts").as_uri()
    (tmp_path / "digits.json").write_text(json.dumps(config))
    ctx = load_skill(new_skill(tmp_path / "digits.json", tmp_path / "skill"), out=io.StringIO())
    results = run_pipeline(ctx)  # the real stage commands
    assert [(r.stage, r.outcome) for r in results] == [
        ("version", "failed"),
        ("notify", "passed"),
        ("cleanup", "passed"),
    ]
    message = (ctx.workspace.root / "outbox" / "0" / "email.eml").read_text()
    assert "no version: failed at version" in message


def test_a_run_of_another_branch_goes_up_to_the_gate_and_report_never_the_deploy(
    ctx: SkillContext,
) -> None:
    subprocess.run(["git", "checkout", "-q", "-b", "experiment"], cwd=ctx.repo, check=True)
    calls: list[str] = []
    results = run_pipeline(ctx, argv_for=scripted({}, calls))  # type: ignore[arg-type]
    assert "deploy" not in calls
    assert {"report", "gate", "notify"} <= set(calls)
    assert exit_code_of(results) == 0
    out = ctx.out.getvalue()  # type: ignore[attr-defined]
    assert (
        "== deploy: skipped: the run is of branch 'experiment', not of the release branch "
        "'main' (deploy.branch)" in out
    )
    record = json.loads((ctx.workspace.run_dir(1) / "run.json").read_text())
    assert record["stages"]["deploy"]["outcome"] == "skipped"
    assert "not of the release branch 'main'" in record["stages"]["deploy"]["message"]


def test_stage_logs_and_run_json_never_hold_a_secret(ctx: SkillContext) -> None:
    secret_env = {**ctx.env, "SLACK_BOT_TOKEN": "xoxb-very-secret"}
    secretive = SkillContext(ctx.repo, ctx.config, env=secret_env, out=ctx.out)

    line = "pushing to https://bot:ghp_token123@git.example/infra.git with xoxb-very-secret"
    versioned = scripted({}, [])

    def argv_for(stage: Stage, repo: Path, profile: str | None) -> list[str]:
        if stage.name == "version":
            return versioned(stage, repo, profile)  # type: ignore[operator,no-any-return]
        return [sys.executable, "-c", f"print({line!r})"]

    run_pipeline(secretive, argv_for=argv_for)
    shown = "pushing to https://bot:***@git.example/infra.git with ***"
    log = (ctx.workspace.run_dir(1) / "logs" / "deploy.log").read_text()
    assert shown in log and "ghp_token123" not in log and "xoxb" not in log
    out = ctx.out.getvalue()  # type: ignore[attr-defined]
    assert "ghp_token123" not in out and "xoxb-very" not in out
    run = (ctx.workspace.run_dir(1) / "run.json").read_text()
    assert shown in run and "ghp_token123" not in run
