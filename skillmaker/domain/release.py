"""What may ship: the release branch, an image that was built and pushed, one deploy per stack.

Pure rules of the deploy stage. Deploys into one stack take turns through a lease object in the
artifact store: whoever holds an unexpired lease deploys, the others wait; a lease whose holder
crashed expires, and the next holder undoes what the crashed one pushed but never verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from skillmaker.domain.layout import join_key

MAX_TEMPLATE_BODY = 51_200
"""Largest template CloudFormation accepts inline (bigger ones go by TemplateURL from S3)."""

HELD = "held"
RELEASED = "released"

RENEW_AFTER = 1 / 3
"""Share of the lease that may pass before a holder waiting on a long call renews it."""
LEASE_MARGIN = 1 / 10
"""Share of the lease kept clear at its end: an outside call made under the lease is cut off
this long before the lease expires, so that what it changes lands while the lease is held."""


def branch_problem(branch: str | None, release: str) -> str | None:
    """Give why a commit of ``branch`` must not deploy (None: it is the release branch)."""
    if branch == release:
        return None
    shown = "a detached HEAD (no branch)" if branch is None else f"branch {branch!r}"
    return (
        f"the run is of {shown}, not of the release branch {release!r} (deploy.branch); "
        "other branches run up to the gate and the report, never the deploy"
    )


def built_image_problem(
    images: Sequence[Mapping[str, Any]], tag: str, flavor: str, skipped: str | None
) -> str | None:
    """Give why ``tag`` must not deploy: its serving image was not built and pushed (None: it was)."""
    for image in images:
        if (
            image.get("flavor") == flavor
            and image.get("target") == "serving"
            and str(image.get("ref", "")).endswith(f":{tag}")
        ):
            if image.get("pushed"):
                return None
            return f"the {flavor} serving image {image.get('ref')} was built but never pushed"
    if skipped:
        return f"the build was skipped ({skipped}), so no {flavor} serving image {tag} exists"
    return f"no {flavor} serving image {tag} was built in this run"


def stack_lease_key(stack: str) -> str:
    """Give the store key of the deploy lease of a stack."""
    return join_key("stacks", stack, "deploy-lease.json")


def stack_template_key(stack: str, digest: str) -> str:
    """Give the store key a template too big to send inline is uploaded to."""
    return join_key("stacks", stack, "templates", f"{digest}.yaml")


@dataclass(frozen=True)
class Lease:
    """Who deploys into a stack now, until when, and what they pushed but have not verified."""

    holder: str
    skill: str
    skill_version: int
    acquired_at: float
    expires_at: float
    state: str = HELD
    pushed: str | None = None
    """Infra commit pushed under this lease (noted just before its push) and not yet verified or
    reverted: it may not have landed."""

    def to_dict(self) -> dict[str, Any]:
        """Give the lease as stored (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Lease:
        """Give the lease read from the store, or a ValueError naming the bad key."""
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: not a deploy lease (a JSON object)")
        try:
            return cls(
                holder=str(raw["holder"]),
                skill=str(raw["skill"]),
                skill_version=int(raw["skill_version"]),
                acquired_at=float(raw["acquired_at"]),
                expires_at=float(raw["expires_at"]),
                state=str(raw.get("state", HELD)),
                pushed=None if raw.get("pushed") is None else str(raw["pushed"]),
            )
        except KeyError as exc:
            raise ValueError(f"{where}: deploy lease without {exc.args[0]!r}") from None

    def is_free(self, now: float) -> bool:
        """Give whether another deployer may take the stack now."""
        return self.state == RELEASED or self.expires_at <= now

    def describe(self, now: float) -> str:
        """Give who holds the lease and for how long still, for messages."""
        return (
            f"{self.holder} (deploying {self.skill} version {self.skill_version}, "
            f"{max(0.0, self.expires_at - now):.0f} s left on its lease)"
        )


def claim(current: Lease | None, mine: Lease, now: float) -> Lease | None:
    """Give the lease to write to take the stack, or None while another holder has it."""
    if current is None or current.is_free(now) or current.holder == mine.holder:
        return mine
    return None


def orphaned_push(previous: Lease | None, now: float) -> str | None:
    """Give the commit a stalled or crashed deployer pushed (or was pushing) and never verified
    nor reverted, or one released as possibly landed (a push cut off); None: none."""
    if previous is None or (previous.state == HELD and previous.expires_at > now):
        return None
    return previous.pushed


def renewal_due(expires_at: float, now: float, seconds: float) -> bool:
    """Give whether a lease of ``seconds`` expiring at ``expires_at`` should be renewed now."""
    return expires_at - now <= seconds * (1 - RENEW_AFTER)


def call_budget(expires_at: float, now: float, seconds: float) -> float:
    """Give how long an outside call started now may take and still end while the lease is held
    (the time left on it less ``LEASE_MARGIN`` of its length; 0 when none is left)."""
    return max(0.0, expires_at - now - seconds * LEASE_MARGIN)


def stack_call_limit(seconds: float) -> float:
    """Give how long one stack call (all its retries) may take under a lease of ``seconds``.

    A call starts after a heartbeat, which renews once a third has passed, so at least two thirds
    are left; the call must end ``LEASE_MARGIN`` of the lease before it expires.
    """
    return seconds * (1 - RENEW_AFTER - LEASE_MARGIN)


def renewed(lease: Lease, now: float, seconds: float) -> Lease:
    """Give the lease held for ``seconds`` more from ``now``."""
    return replace(lease, expires_at=now + seconds)


def released(lease: Lease, unsure: str | None = None) -> Lease:
    """Give the lease once its deploy ended (verified or reverted).

    ``unsure`` is a commit whose push was cut off and may still land: it stays noted, so that the
    next holder checks it again and undoes it if it did.
    """
    return replace(lease, state=RELEASED, pushed=unsure)
