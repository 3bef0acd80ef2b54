"""The stack lease: one deployer at a time, named to the others, expiring when its holder died."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from skillmaker.adapters.store import open_store
from skillmaker.deploy.lease import LeaseKeeper, LeaseLostError, StackBusyError, StackLease
from skillmaker.domain.release import branch_problem, built_image_problem
from tests.fleet import s3_artifacts


class Clock:
    """A clock the test moves by hand, and a sleep that moves it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _lease(tmp_path: Path, clock: Clock) -> StackLease:
    return StackLease(open_store(tmp_path.as_uri()), "skills", clock=clock, sleep=clock.sleep)


def test_a_held_lease_keeps_others_out_and_names_its_holder(tmp_path: Path) -> None:
    clock = Clock()
    first = _lease(tmp_path, clock).take("digits", 3, seconds=60, wait=0, say=print)
    said = io.StringIO()
    with pytest.raises(StackBusyError) as busy:
        _lease(tmp_path, clock).take(
            "car-make", 1, seconds=60, wait=5, say=lambda line: print(line, file=said)
        )
    assert f"is held by {first.lease.holder} (deploying digits version 3" in str(busy.value)
    assert "Nothing was changed; run the deploy again" in str(busy.value)
    assert f"being deployed by {first.lease.holder}" in said.getvalue()


def test_a_released_lease_lets_the_next_deployer_in(tmp_path: Path) -> None:
    clock = Clock()
    lease = _lease(tmp_path, clock)
    first = lease.take("digits", 3, seconds=60, wait=0, say=print)
    lease.release(first.lease, print)
    second = _lease(tmp_path, clock).take("car-make", 1, seconds=60, wait=0, say=print)
    assert second.lease.skill == "car-make" and second.orphan is None


def test_an_expired_lease_is_taken_over_with_what_its_holder_left_unverified(
    tmp_path: Path,
) -> None:
    clock = Clock()
    lease = _lease(tmp_path, clock)
    crashed = lease.take("digits", 3, seconds=60, wait=0, say=print)
    lease.pushing(crashed.lease, "abc1234" * 5 + "abcde", 60)
    clock.now += 61  # the holder died without releasing
    taken = _lease(tmp_path, clock).take("car-make", 1, seconds=60, wait=0, say=print)
    assert taken.orphan == "abc1234" * 5 + "abcde"
    assert taken.orphan_of == crashed.lease.holder


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_lease_is_renewed_only_by_its_holder_until_another_took_it(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    clock = Clock()
    if kind == "s3":
        request.getfixturevalue("aws_env")  # moto over HTTP: conditional writes on S3
        store = open_store(s3_artifacts("lease"))
    else:
        store = open_store(tmp_path.as_uri())

    def lease() -> StackLease:
        return StackLease(store, "skills", clock=clock, sleep=clock.sleep)

    slow = lease().take("digits", 3, seconds=60, wait=0, say=print).lease
    clock.now += 50
    assert lease().confirm(slow, 60).expires_at == clock.now + 60
    clock.now += 70  # expired, but nobody took it: still this deployer's to renew
    noted = lease().pushing(slow, "a" * 40, 60)
    assert (noted.pushed, noted.expires_at) == ("a" * 40, clock.now + 60)
    clock.now += 61
    taker = lease().take("car-make", 1, seconds=60, wait=0, say=print)
    assert taker.orphan == "a" * 40  # noted before its push: the taker knows what to undo
    with pytest.raises(LeaseLostError, match="expired and was taken by car-make v1 "):
        lease().confirm(slow, 60)
    with pytest.raises(LeaseLostError, match="expired and was taken by car-make v1 "):
        lease().pushing(slow, "b" * 40, 60)
    lease().release(slow, print)  # only reported: the lease stays the taker's
    stored = lease().take("car-make", 1, seconds=60, wait=0, say=print)  # its own again
    assert stored.lease.holder == taker.lease.holder and stored.orphan is None


def test_a_keeper_renews_a_third_into_the_lease_and_bounds_calls_by_its_end(
    tmp_path: Path,
) -> None:
    clock = Clock()
    taken = _lease(tmp_path, clock).take("digits", 3, seconds=900, wait=0, say=print)
    keeper = LeaseKeeper(_lease(tmp_path, clock), taken.lease, 900)
    assert keeper.budget() == 900 - 90  # a call ends a tenth of the lease before it expires
    clock.now += 299
    keeper.heartbeat()  # not due yet: no write
    assert keeper.renewals == 0 and keeper.budget() == 900 - 299 - 90
    clock.now += 1
    keeper.heartbeat()  # a third has passed: renewed for the whole length
    assert keeper.renewals == 1 and keeper.expires_at == clock.now + 900
    assert keeper.pushing("c" * 40) == 900 - 90
    clock.now += 10_000
    assert keeper.budget() == 0.0  # expired: no time for any call
    taker = _lease(tmp_path, clock).take("car-make", 1, seconds=900, wait=0, say=print)
    assert taker.orphan == "c" * 40
    with pytest.raises(LeaseLostError, match="taken by car-make v1 "):
        keeper.heartbeat()


def test_a_push_cut_off_stays_noted_when_the_lease_is_released(tmp_path: Path) -> None:
    clock = Clock()
    lease = _lease(tmp_path, clock)
    first = lease.take("digits", 3, seconds=60, wait=0, say=print)
    lease.pushing(first.lease, "d" * 40, 60)
    lease.release(first.lease, print, unsure="d" * 40)  # it may land yet
    second = _lease(tmp_path, clock).take("car-make", 1, seconds=60, wait=0, say=print)
    assert (second.orphan, second.orphan_of) == ("d" * 40, first.lease.holder)
    lease.release(second.lease, print)
    third = _lease(tmp_path, clock).take("digits", 4, seconds=60, wait=0, say=print)
    assert third.orphan is None  # checked once, by the next holder


def test_only_the_release_branch_deploys() -> None:
    assert branch_problem("main", "main") is None
    assert branch_problem("experiment", "main") == (
        "the run is of branch 'experiment', not of the release branch 'main' (deploy.branch); "
        "other branches run up to the gate and the report, never the deploy"
    )
    assert "a detached HEAD (no branch)" in str(branch_problem(None, "main"))


def test_only_a_pushed_serving_image_of_the_flavour_deploys() -> None:
    pushed = {"flavor": "gpu", "target": "serving", "ref": "r/s:2-abc1234-gpu", "pushed": True}
    runtime = {**pushed, "target": "runtime", "ref": "r/s:2-abc1234-gpu-runtime"}
    assert built_image_problem([runtime, pushed], "2-abc1234-gpu", "gpu", None) is None
    assert built_image_problem([pushed], "2-abc1234-cpu", "cpu", None) == (
        "no cpu serving image 2-abc1234-cpu was built in this run"
    )
    assert built_image_problem([runtime], "2-abc1234-gpu", "gpu", None) == (
        "no gpu serving image 2-abc1234-gpu was built in this run"
    )
