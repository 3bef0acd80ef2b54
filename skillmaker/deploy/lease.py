"""The deploy lease of a stack in the artifact store: taken, updated and released by compare-and-swap."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from skillmaker.adapters.cas import compare_and_swap
from skillmaker.adapters.store import Store
from skillmaker.domain.release import (
    Lease,
    call_budget,
    claim,
    orphaned_push,
    released,
    renewal_due,
    renewed,
    stack_lease_key,
)
from skillmaker.errors import UserError

Say = Callable[[str], None]


class StackBusyError(UserError):
    """Another deploy held the stack's lease for longer than this one would wait."""


class LeaseLostError(UserError):
    """This deployer's lease expired and another deployer took the stack over."""


@dataclass(frozen=True)
class Taken:
    """The lease this deploy holds, and a commit a crashed deployer left unverified."""

    lease: Lease
    orphan: str | None
    orphan_of: str | None


def holder_name(skill: str, version: int) -> str:
    """Give a name for this deployer that says who it is in others' messages."""
    return f"{skill} v{version} on {socket.gethostname()} pid {os.getpid()}"


class StackLease:
    """The lease of one stack, as seen by one deployer."""

    def __init__(
        self,
        store: Store,
        stack: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.stack = stack
        self.key = stack_lease_key(stack)
        self.where = f"{store.uri}/{self.key}"
        self.clock = clock
        self.sleep = sleep

    def _decode(self, data: bytes) -> Lease:
        try:
            return Lease.from_dict(json.loads(data), self.where)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.where}: not valid JSON ({exc})") from None
        except ValueError as exc:
            raise UserError(str(exc)) from None

    @staticmethod
    def _encode(lease: Lease) -> bytes:
        return (json.dumps(lease.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    def _swap(self, change: Callable[[Lease | None], Lease | None]) -> Lease | None:
        return compare_and_swap(
            self.store, self.key, decode=self._decode, encode=self._encode, change=change
        )

    def take(self, skill: str, version: int, *, seconds: float, wait: float, say: Say) -> Taken:
        """Give the lease once this deployer holds it (waiting up to ``wait`` seconds)."""
        holder = holder_name(skill, version)
        deadline = self.clock() + wait
        told = False
        delay = 0.2
        while True:
            now = self.clock()
            mine = Lease(holder, skill, version, now, now + seconds)
            seen: list[Lease | None] = []

            def change(
                current: Lease | None,
                mine: Lease = mine,
                now: float = now,
                seen: list[Lease | None] = seen,
            ) -> Lease | None:
                seen[:] = [current]
                return claim(current, mine, now) or current

            stored = self._swap(change)
            previous = seen[0] if seen else None
            if stored is not None and stored.holder == holder and stored.acquired_at == now:
                orphan = orphaned_push(previous, now)
                return Taken(stored, orphan, previous.holder if orphan and previous else None)
            if stored is not None and not told:
                say(f"stack {self.stack!r} is being deployed by {stored.describe(now)}; waiting")
                told = True
            if now >= deadline:
                who = stored.describe(now) if stored is not None else "another deploy"
                raise StackBusyError(
                    f"{self.where}: stack {self.stack!r} is held by {who}; gave up after "
                    f"{wait:.0f} s. Nothing was changed; run the deploy again"
                )
            self.sleep(random.uniform(0.5, 1.0) * delay)  # noqa: S311
            delay = min(delay * 1.5, 2.0)

    def _mine(self, lease: Lease, change: Callable[[Lease], Lease]) -> Lease:
        def apply(current: Lease | None) -> Lease | None:
            if current is None or current.holder != lease.holder:
                raise LeaseLostError(
                    f"{self.where}: this deploy's lease on stack {self.stack!r} expired and "
                    f"was taken by {current.holder if current else 'nobody'} (deploy.lease_seconds "
                    "too short for this stack?)"
                )
            return change(current)

        result = self._swap(apply)
        assert result is not None
        return result

    def confirm(self, lease: Lease, seconds: float) -> Lease:
        """Give the lease renewed for ``seconds`` from now, or raise ``LeaseLostError``.

        One conditional write: it succeeds only while the stored lease is still this deployer's
        (expired or not, nobody took it), so whatever this deployer does next, within ``seconds``,
        it does as the stack's only deployer.
        """
        now = self.clock()
        return self._mine(lease, lambda current: renewed(current, now, seconds))

    def pushing(self, lease: Lease, commit: str, seconds: float) -> Lease:
        """Give the lease renewed and noting ``commit``, before it is pushed (or raise, unpushed).

        Noted before the push, not after it: a deployer that stalls or dies once its push landed
        has always told whoever takes the stack over which commit to undo.
        """
        now = self.clock()
        return self._mine(
            lease, lambda current: replace(renewed(current, now, seconds), pushed=commit)
        )

    def release(self, lease: Lease, say: Say, *, unsure: str | None = None) -> None:
        """Let the next deployer in (a lease already taken over is only reported).

        ``unsure``: a commit whose push was cut off and may land yet; the next holder checks it.
        """
        try:
            self._mine(lease, lambda current: released(current, unsure))
        except UserError as exc:  # never hide the deploy's own outcome behind this
            say(f"warning: {exc}")


class LeaseKeeper:
    """One deployer's hold on its lease: renewed before each step and while a long call waits.

    It knows when the lease it holds expires, so it can say how long an outside call started now
    may take (``budget``) and renew the lease only once a third of it has passed (``heartbeat``,
    called in the polling loop of a stack update that may wait far longer than the lease).
    """

    def __init__(self, lease: StackLease, held: Lease, seconds: float) -> None:
        self.lease = lease
        self.held = held
        self.seconds = seconds
        self.expires_at = held.expires_at
        self.renewals = 0

    def _noted(self, current: Lease) -> None:
        self.expires_at = current.expires_at
        self.renewals += 1

    def confirm(self) -> None:
        """Renew the lease for its full length now, or raise ``LeaseLostError``."""
        self._noted(self.lease.confirm(self.held, self.seconds))

    def pushing(self, commit: str) -> float:
        """Give how long the push of ``commit`` may take, once the lease is renewed noting it."""
        self._noted(self.lease.pushing(self.held, commit, self.seconds))
        return self.budget()

    def budget(self) -> float:
        """Give how long an outside call started now may take and end while the lease is held."""
        return call_budget(self.expires_at, self.lease.clock(), self.seconds)

    def heartbeat(self) -> None:
        """Renew the lease if a third of it has passed; raise ``LeaseLostError`` if it was lost."""
        if renewal_due(self.expires_at, self.lease.clock(), self.seconds):
            self.confirm()
