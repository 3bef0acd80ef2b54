"""``skillmaker gate``: the table of rules, gate.json, exit 3 when rejected or inconclusive, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.skill_repos import GOOD, WORSE, Skill, SkillFactory


def _gate_json(skill: Skill, version: int = 1) -> dict[str, object]:
    return json.loads((skill.repo / f".skillmaker/runs/{version}/gate.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def skill(make_skill: SkillFactory) -> Skill:
    """Give a skill whose current run (version 1) has been allocated."""
    made = make_skill()
    assert made.run("version").code == 0
    return made


def test_a_pass_prints_every_rule_and_its_reason(skill: Skill, tmp_path: Path) -> None:
    skill.measured(GOOD - {0}, baseline=7, p95=10.2)
    result = skill.run("gate")
    assert result.code == 0, result.err
    for rule in _gate_json(skill)["rules"]:  # type: ignore[attr-defined]
        assert rule["passed"]
        assert rule["reason"] in result.out
    assert "accuracy 95.10% vs 95.00%: +0.10 points, 95% CI" in result.out
    assert "p95 10.20 ms vs 10.00 ms: ratio 1.020" in result.out
    assert "gate: passed (baseline version 7)" in result.out
    stored = tmp_path / "artifacts/skills/digits/runs/1/gate.json"
    assert json.loads(stored.read_text()) == _gate_json(skill)
    run = json.loads((skill.repo / ".skillmaker/runs/1/run.json").read_text())
    assert run["stages"]["gate"]["outcome"] == "passed"


def test_a_rejection_exits_3_and_names_every_failed_rule(skill: Skill, tmp_path: Path) -> None:
    registry = tmp_path / "artifacts/skills/digits/registry.json"
    before = registry.read_bytes()
    skill.measured(WORSE, baseline=7, p95=10.8)
    result = skill.run("gate")
    assert result.code == 3
    assert "accuracy      REJECTED" in result.out
    assert "latency_p95   REJECTED" in result.out
    assert "gate: rejected (baseline version 7)" in result.out
    assert (
        "gate rejected skill version 1 (accuracy rejected, latency_p95 rejected, "
        "class_recall rejected)" in result.err
    )
    assert _gate_json(skill)["passed"] is False
    assert registry.read_bytes() == before
    run = json.loads((skill.repo / ".skillmaker/runs/1/run.json").read_text())
    assert run["stages"]["gate"]["outcome"] == "rejected"


def test_an_inconclusive_verdict_is_not_deployable_and_says_what_would_settle_it(
    skill: Skill,
) -> None:
    skill.measured(GOOD | {11, 12, 13}, baseline=7)  # 3 more errors in 1000: -0.3 points
    result = skill.run("gate")
    assert result.code == 3
    assert "accuracy      INCONCLUSIVE" in result.out
    assert "about 1,560 test images at this disagreement rate (0.30%) could show it" in result.out
    assert "gate: inconclusive (baseline version 7)" in result.out
    assert "gate is inconclusive on skill version 1 (accuracy inconclusive)" in result.err
    record = _gate_json(skill)
    assert (record["passed"], record["verdict"]) == (False, "inconclusive")
    accepted = skill.run("gate", "--accept-regression", "--reason", "a bigger test set is coming")
    assert accepted.code == 0, accepted.err
    assert "gate: inconclusive, overridden by" in accepted.out
    assert _gate_json(skill)["passed"] is True


def test_a_human_may_accept_a_regression_knowingly(
    skill: Skill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "alice")
    skill.measured(GOOD, baseline=7, p95=30.0)
    reason = "three times slower, but runs on the cheaper CPU fleet"
    result = skill.run("gate", "--accept-regression", "--reason", reason)
    assert result.code == 0, result.err
    assert "latency_p95   REJECTED" in result.out
    assert f"gate: rejected, overridden by alice: {reason}" in result.out
    record = _gate_json(skill)
    assert record["passed"] is True
    override = record["override"]
    assert isinstance(override, dict)
    assert (override["by"], override["reason"]) == ("alice", reason)


def test_without_user_the_git_identity_is_recorded(
    skill: Skill, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.name")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "Bob Reviewer")
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "user.email")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "bob@example.com")
    skill.measured(WORSE, baseline=7)
    assert skill.run("gate", "--accept-regression", "--reason", "known label noise").code == 0
    override = _gate_json(skill)["override"]
    assert isinstance(override, dict)
    assert override["by"] == "Bob Reviewer <bob@example.com>"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--accept-regression",), '--accept-regression needs --reason "why'),
        (("--reason", "because"), "--reason goes with --accept-regression"),
    ],
)
def test_an_override_needs_a_reason(skill: Skill, flags: tuple[str, ...], message: str) -> None:
    skill.measured(WORSE, baseline=7)
    result = skill.run("gate", *flags)
    assert result.code == 2
    assert message in result.err
    assert not (skill.repo / ".skillmaker/runs/1/gate.json").exists()


def test_metrics_of_another_run_are_refused(skill: Skill) -> None:
    skill.measured(GOOD, baseline=None)
    metrics = skill.repo / ".skillmaker/runs/1/metrics.json"
    record = json.loads(metrics.read_text())
    record["candidate"]["skill_version"] = 4
    metrics.write_text(json.dumps(record))
    result = skill.run("gate")
    assert result.code == 2
    assert "measures skill version 4, but the current run is 1" in result.err


def test_missing_metrics_are_named(skill: Skill) -> None:
    result = skill.run("gate")
    assert result.code == 2
    assert (
        "runs/1/metrics.json: missing here and in the store (skills/digits/runs/1/metrics.json)"
        in result.err
    )
