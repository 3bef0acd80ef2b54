"""Delivering a notification with bounded retries: a failure ends as a warning, not an error."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from skillmaker.errors import SkillmakerError

T = TypeVar("T")


class DeliveryError(SkillmakerError):
    """A notifier could not deliver; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried."""

    attempts: int = 3
    backoff_s: Sequence[float] = (0.5, 2.0)
    """Pause before the 2nd, 3rd, ... attempt (the last value repeats)."""

    def pause(self, attempt: int) -> float:
        """Give the pause in seconds before attempt number ``attempt`` (2 or more)."""
        if not self.backoff_s:
            return 0.0
        return float(self.backoff_s[min(attempt - 2, len(self.backoff_s) - 1)])


def deliver(
    what: str,
    action: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T | None, str | None]:
    """Give the action's result, or ``(None, warning)`` once its failures are spent.

    A transient failure (server error, timeout, refused connection) is retried up to
    ``policy.attempts`` times; a permanent one (bad token, refused recipient) is not, as
    repeating it cannot succeed.
    """
    attempt = 1
    while True:
        try:
            return action(), None
        except DeliveryError as exc:
            if not exc.transient or attempt >= policy.attempts:
                tries = f"after {attempt} attempts" if attempt > 1 else "not retried"
                if not exc.transient:
                    tries = "not retried: it cannot succeed as configured"
                return None, f"{what}: {exc} ({tries})"
            sleep(policy.pause(attempt + 1))
            attempt += 1
