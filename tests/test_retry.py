"""Bounded retries: transient failures are tried again with a backoff, permanent ones are not."""

from __future__ import annotations

from skillmaker.retry import DeliveryError, RetryPolicy, deliver


class Flaky:
    """Fails with the given errors, in order, then answers ``"sent"``."""

    def __init__(self, *errors: DeliveryError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "sent"


def test_transient_failures_are_retried_with_the_backoff() -> None:
    action = Flaky(DeliveryError("503", transient=True), DeliveryError("503", transient=True))
    sleeps: list[float] = []

    result = deliver("slack", action, RetryPolicy(attempts=3, backoff_s=(0.5, 2.0)), sleeps.append)

    assert result == ("sent", None)
    assert sleeps == [0.5, 2.0]


def test_retries_are_bounded_and_end_as_a_warning() -> None:
    action = Flaky(*[DeliveryError("refused", transient=True)] * 5)
    sleeps: list[float] = []

    result = deliver("mail", action, RetryPolicy(attempts=4, backoff_s=(1.0,)), sleeps.append)

    assert result == (None, "mail: refused (after 4 attempts)")
    assert action.calls == 4 and sleeps == [1.0, 1.0, 1.0]


def test_a_permanent_failure_is_not_retried() -> None:
    action = Flaky(DeliveryError("bad token", transient=False))

    value, warning = deliver("slack", action, RetryPolicy(), lambda _: None)

    assert value is None and action.calls == 1
    assert warning == "slack: bad token (not retried: it cannot succeed as configured)"
