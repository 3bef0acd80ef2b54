"""The infra repo: clone, validate, commit, push; rebase when another deploy pushed first."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from skillmaker.adapters.git import GitError, PushCutOffError
from skillmaker.adapters.infra_repo import InfraCheckout, init_infra_repo, is_url, resolve_location
from skillmaker.domain.cfn_template import set_tag, skill_entry
from skillmaker.errors import UserError
from skillmaker.resources import infra_dir

TEMPLATE = "skills.yaml"
BUNDLED = (infra_dir() / TEMPLATE).read_text(encoding="utf-8")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def _tag(skill: str, tag: str) -> Callable[[str], str]:
    return lambda text: set_tag(text, TEMPLATE, "SkillImages", skill, tag)


def _remote_tag(remote: Path, skill: str) -> str:
    text = _git(remote, "show", f"main:{TEMPLATE}")
    entry = skill_entry(text, TEMPLATE, "SkillImages", skill)
    assert entry is not None
    return entry.tag


def _accept(text: str) -> None:
    assert text


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """Give a bare infra repo holding the bundled template (the shape of a shared remote)."""
    return init_infra_repo(tmp_path / "infra.git", bare=True)


def test_locations_are_urls_or_local_paths(tmp_path: Path) -> None:
    assert is_url("git@git.example.com:vision/infra.git")
    assert is_url("https://git.example.com/vision/infra.git")
    assert not is_url("/var/tmp/infra")
    assert resolve_location("../infra", tmp_path / "skill") == str((tmp_path / "infra").resolve())


def test_an_edit_is_committed_and_pushed(remote: Path, tmp_path: Path) -> None:
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    published = checkout.publish(
        TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "Deploy digits 2"
    )
    assert published.commit == _git(remote, "rev-parse", "main").strip()
    assert published.attempts == 1
    assert _remote_tag(remote, "digits") == "2-1a2b3c4-cpu"
    assert _git(remote, "log", "-1", "--format=%s", "main").strip() == "Deploy digits 2"


def test_a_push_that_lost_the_race_is_rebased_and_both_edits_land(
    remote: Path, tmp_path: Path
) -> None:
    first = InfraCheckout.clone(str(remote), tmp_path / "first")
    second = InfraCheckout.clone(str(remote), tmp_path / "second")
    second.publish(TEMPLATE, _tag("vw-golf-variant", "4-bbbbbbb-gpu"), _accept, "Deploy variant")
    validated: list[str] = []
    notices: list[str] = []
    published = first.publish(
        TEMPLATE,
        _tag("digits", "3-aaaaaaa-cpu"),
        validated.append,
        "Deploy digits",
        on_retry=notices.append,
    )
    assert published.attempts == 2
    assert notices == ["infra repo moved on while pushing (attempt 1); rebasing"]
    assert _remote_tag(remote, "digits") == "3-aaaaaaa-cpu"
    assert _remote_tag(remote, "vw-golf-variant") == "4-bbbbbbb-gpu"
    # The merged template was validated before it was pushed.
    assert "4-bbbbbbb-gpu" in validated[-1]
    assert "3-aaaaaaa-cpu" in validated[-1]
    subjects = _git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects[:2] == ["Deploy digits", "Deploy variant"]


def test_a_conflicting_push_is_redone_on_the_new_remote(remote: Path, tmp_path: Path) -> None:
    first = InfraCheckout.clone(str(remote), tmp_path / "first")
    second = InfraCheckout.clone(str(remote), tmp_path / "second")

    def comment(text: str) -> str:
        return text.replace("    digits:\n      Tag:", "    digits:  # the demo skill\n      Tag:")

    second.publish(TEMPLATE, comment, _accept, "Comment digits")
    first.publish(TEMPLATE, _tag("digits", "3-aaaaaaa-cpu"), _accept, "Deploy digits")
    text = _git(remote, "show", f"main:{TEMPLATE}")
    assert "    digits:  # the demo skill\n      Tag: 3-aaaaaaa-cpu\n" in text


def test_a_template_that_fails_validation_is_never_pushed(remote: Path, tmp_path: Path) -> None:
    before = _git(remote, "rev-parse", "main")
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")

    def refuse(text: str) -> None:
        raise UserError("skills.yaml: cfn-lint line 1: E0000 broken")

    with pytest.raises(UserError, match="E0000 broken"):
        checkout.publish(TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), refuse, "Deploy")
    assert _git(remote, "rev-parse", "main") == before


def test_an_unchanged_template_makes_no_commit(remote: Path, tmp_path: Path) -> None:
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    published = checkout.publish(TEMPLATE, _tag("digits", "0-0000000-cpu"), _accept, "Deploy")
    assert published.commit is None
    assert _git(remote, "rev-list", "--count", "main").strip() == "1"


def test_a_local_working_repo_gets_the_new_tag_in_its_files(tmp_path: Path) -> None:
    local = init_infra_repo(tmp_path / "infra")
    checkout = InfraCheckout.clone(str(local), tmp_path / "clone")
    checkout.publish(TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "Deploy digits 2")
    assert "      Tag: 2-1a2b3c4-cpu\n" in (local / TEMPLATE).read_text(encoding="utf-8")
    assert _git(local, "status", "--porcelain") == ""


def test_a_revert_restores_the_template(remote: Path, tmp_path: Path) -> None:
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    published = checkout.publish(TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "Deploy")
    assert published.commit is not None
    checkout.revert(published.commit, "Revert digits: stack update failed")
    assert _git(remote, "show", f"main:{TEMPLATE}") == BUNDLED


def test_a_revert_is_done_once_whoever_asks(remote: Path, tmp_path: Path) -> None:
    told: list[str] = []
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    published = checkout.publish(
        TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "Deploy", before_push=told.append
    )
    assert told == [published.commit]  # told the sha before it was pushed
    assert published.commit is not None
    taker = InfraCheckout.clone(str(remote), tmp_path / "taker")
    first = taker.revert(published.commit, "Revert: its deployer stopped")
    again = checkout.revert(published.commit, "Revert digits: deploy failed")
    assert first.commit is not None and again.commit is None
    assert again.head == first.head == _git(remote, "rev-parse", "main").strip()
    assert f"This reverts commit {published.commit}." in _git(remote, "log", "-1", "--format=%B")
    assert checkout.revert("f" * 40, "Revert a push that never landed").commit is None
    assert _git(remote, "show", f"main:{TEMPLATE}") == BUNDLED


def test_a_push_the_caller_stops_is_never_made(remote: Path, tmp_path: Path) -> None:
    def lost(commit: str) -> None:
        raise UserError(f"lease lost before pushing {commit[:7]}")

    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    with pytest.raises(UserError, match="lease lost before pushing"):
        checkout.publish(TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "D", before_push=lost)
    assert _git(remote, "show", f"main:{TEMPLATE}") == BUNDLED


def _running(pid: int) -> bool:
    """Give whether a process is alive (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_push_past_its_time_is_cut_off_with_all_it_started(remote: Path, tmp_path: Path) -> None:
    hook = remote / "hooks" / "pre-receive"  # the remote never answers
    pid_file = tmp_path / "hook.pid"
    hook.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    hook.chmod(0o755)
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    started = time.monotonic()
    with pytest.raises(
        PushCutOffError, match=r"was cut off after 1\.0 s; it may have landed"
    ) as cut:
        checkout.publish(
            TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "D", before_push=lambda _: 1.0
        )
    assert time.monotonic() - started < 60  # it did not wait for the remote
    assert cut.value.commit == checkout.head()
    assert _git(remote, "show", f"main:{TEMPLATE}") == BUNDLED
    if pid_file.exists():  # the remote's receive-pack and its hook were killed with git
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid)
    assert checkout.revert(cut.value.commit, "Revert: the push was cut off").commit is None


def test_a_push_with_no_time_left_is_not_started(remote: Path, tmp_path: Path) -> None:
    checkout = InfraCheckout.clone(str(remote), tmp_path / "clone")
    with pytest.raises(GitError, match=r"no time left to push \w+; not pushed") as refused:
        checkout.publish(
            TEMPLATE, _tag("digits", "2-1a2b3c4-cpu"), _accept, "D", before_push=lambda _: 0.0
        )
    assert not isinstance(refused.value, PushCutOffError)
    assert _git(remote, "show", f"main:{TEMPLATE}") == BUNDLED
