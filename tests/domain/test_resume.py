"""A run goes on only at its own commit and config."""

from __future__ import annotations

from skillmaker.domain.resume import RunBinding, decide_resume

A, B = "a" * 40, "b" * 40


def test_the_same_commit_and_config_resume() -> None:
    decision = decide_resume(6, RunBinding(A, "h1"), RunBinding(A, "h1"))
    assert decision.resume
    assert decision.reason == "run 6 is of HEAD aaaaaaa"


def test_another_commit_starts_a_new_version_and_names_both() -> None:
    decision = decide_resume(6, RunBinding(A, "h1"), RunBinding(B, "h1"))
    assert not decision.resume
    assert decision.reason == "run 6 is of commit aaaaaaa, but HEAD is bbbbbbb"


def test_another_config_starts_a_new_version() -> None:
    decision = decide_resume(6, RunBinding(A, "1" * 64), RunBinding(A, "2" * 64))
    assert not decision.resume
    assert decision.reason == (
        "run 6 was started with config 111111111111, but skill.json is now 222222222222 "
        "(uncommitted edits?)"
    )


def test_a_run_recorded_without_a_config_hash_is_judged_by_its_commit() -> None:
    assert decide_resume(2, RunBinding(A, None), RunBinding(A, "h")).resume
