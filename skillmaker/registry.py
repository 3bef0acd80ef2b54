"""The per-skill registry in the artifact store: version counter, deployed version, history of runs.

``skills/<skill>/registry.json`` is changed only by compare-and-swap: read it with its entity tag,
change it in memory, write it back on condition that nobody wrote in between (``if_none_match``
for the first write, ``if_match=etag`` afterwards), and start over when the condition fails. So
pipelines of one skill that run at the same time on different machines never get the same version
number and never lose each other's history, on S3 and on ``file://`` alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from skillmaker.adapters.cas import StoreBusyError, compare_and_swap
from skillmaker.adapters.store import ObjectNotFound, Store, StoreError
from skillmaker.domain.layout import registry_key
from skillmaker.domain.records import dumps_record
from skillmaker.errors import UserError

Clock = Callable[[], datetime]

ALLOCATED = "allocated"
DEPLOYED = "deployed"
DEPLOY_FAILED = "deploy failed"
LOST_ANSWER_RETRIES = 3


class DeployedRecord(TypedDict):
    """The version a skill's stack runs now, and how it got there."""

    skill_version: int
    code_version: str
    image_tag: str
    deployed_at: str
    infra_commit: str | None
    gate: str  # "passed", or "overridden by <who>: <reason>"


class HistoryEntry(TypedDict):
    """One run of the skill and the last decision taken about it."""

    allocation: NotRequired[str]
    """Who asked for the version: a retry with the same id gets the same version back."""
    skill_version: int
    code_version: str | None
    allocated_at: str
    decision: str  # "allocated", "deployed" or "deploy failed"
    image_tag: str | None
    message: str
    updated_at: str


class RegistryRecord(TypedDict):
    """``registry.json``: everything the pipeline must agree on across runs of one skill."""

    skill: str
    last_version: int
    deployed: DeployedRecord | None
    history: list[HistoryEntry]


def utc_now() -> datetime:
    """Give the time now, in UTC (the default clock of every record)."""
    return datetime.now(UTC)


def _stamp(clock: Clock) -> str:
    return clock().astimezone(UTC).isoformat(timespec="seconds")


def empty_registry(skill: str) -> RegistryRecord:
    """Give the registry of a skill that has never run."""
    return {"skill": skill, "last_version": 0, "deployed": None, "history": []}


def encode_registry(record: RegistryRecord) -> bytes:
    """Give the bytes a registry is stored as (sorted keys, so equal registries are equal bytes)."""
    return dumps_record(record).encode("utf-8")


def _decode(store: Store, skill: str, data: bytes) -> RegistryRecord:
    where = f"{store.uri}/{registry_key(skill)}"
    try:
        raw: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("last_version"), int):
        raise UserError(f"{where}: not a skillmaker registry (no integer last_version)")
    record = empty_registry(skill)
    record["last_version"] = raw["last_version"]
    record["deployed"] = raw.get("deployed")
    record["history"] = list(raw.get("history") or [])
    return record


def read_registry(store: Store, skill: str) -> RegistryRecord:
    """Give a skill's registry (an empty one when the skill has never run)."""
    try:
        data = store.get_bytes(registry_key(skill))
    except ObjectNotFound:
        return empty_registry(skill)
    return _decode(store, skill, data)


def deployed_version(store: Store, skill: str) -> DeployedRecord | None:
    """Give the version the skill's stack runs now, or None when none was ever deployed."""
    return read_registry(store, skill)["deployed"]


def update_registry(
    store: Store,
    skill: str,
    change: Callable[[RegistryRecord], RegistryRecord],
    *,
    attempts: int = 200,
) -> RegistryRecord:
    """Give the registry after applying ``change`` atomically (retried while others write).

    ``change`` gets a private copy of the current registry and gives the new one; it may run
    several times, so it must not have side effects. When it changes nothing, nothing is written.
    """
    result = compare_and_swap(
        store,
        registry_key(skill),
        decode=lambda data: _decode(store, skill, data),
        encode=encode_registry,
        change=lambda current: change(current if current is not None else empty_registry(skill)),
        attempts=attempts,
    )
    return result if result is not None else empty_registry(skill)


def _entry(record: RegistryRecord, version: int) -> HistoryEntry | None:
    for item in record["history"]:
        if item["skill_version"] == version:
            return item
    return None


def allocate_version(
    store: Store,
    skill: str,
    code_version: str | None = None,
    *,
    allocation: str | None = None,
    clock: Clock = utc_now,
) -> int:
    """Give the next skill version, unique even when pipelines of the skill start together.

    ``allocation`` names the request: when a write succeeded but its answer was lost, the retry
    finds its own entry in the history and gets that version back instead of burning another.
    """
    allocated: list[int] = []

    def bump(record: RegistryRecord) -> RegistryRecord:
        for item in record["history"]:
            if allocation is not None and item.get("allocation") == allocation:
                allocated[:] = [item["skill_version"]]
                return record  # already allocated: nothing to write
        version = record["last_version"] + 1
        now = _stamp(clock)
        record["last_version"] = version
        entry: HistoryEntry = {
            "skill_version": version,
            "code_version": code_version,
            "allocated_at": now,
            "decision": ALLOCATED,
            "image_tag": None,
            "message": "",
            "updated_at": now,
        }
        if allocation is not None:
            entry["allocation"] = allocation
        record["history"].append(entry)
        allocated[:] = [version]
        return record

    for attempt in range(1, LOST_ANSWER_RETRIES + 1):
        try:
            update_registry(store, skill, bump)
            break
        except StoreBusyError:
            raise
        except StoreError:
            # The answer may be lost after the write: retrying with the same id is safe.
            if allocation is None or attempt == LOST_ANSWER_RETRIES:
                raise
    return allocated[0]


def _require_allocated(store: Store, record: RegistryRecord, version: int) -> HistoryEntry:
    entry = _entry(record, version)
    if entry is None:
        raise UserError(
            f"{store.uri}/{registry_key(record['skill'])}: version {version} was never allocated "
            "(run `skillmaker version` first)"
        )
    return entry


def mark_deployed(
    store: Store,
    skill: str,
    *,
    skill_version: int,
    code_version: str,
    image_tag: str,
    gate: str,
    infra_commit: str | None,
    clock: Clock = utc_now,
) -> RegistryRecord:
    """Give the registry after recording a deploy (call only once the deploy has succeeded)."""

    def deploy(record: RegistryRecord) -> RegistryRecord:
        entry = _require_allocated(store, record, skill_version)
        now = _stamp(clock)
        record["deployed"] = {
            "skill_version": skill_version,
            "code_version": code_version,
            "image_tag": image_tag,
            "deployed_at": now,
            "infra_commit": infra_commit,
            "gate": gate,
        }
        entry["decision"] = DEPLOYED
        entry["code_version"] = code_version
        entry["image_tag"] = image_tag
        entry["message"] = f"gate {gate}"
        entry["updated_at"] = now
        return record

    return update_registry(store, skill, deploy)


def record_deploy_failure(
    store: Store,
    skill: str,
    *,
    skill_version: int,
    image_tag: str,
    message: str,
    clock: Clock = utc_now,
) -> RegistryRecord:
    """Give the registry after recording a failed deploy; the deployed version stays as it was."""

    def fail(record: RegistryRecord) -> RegistryRecord:
        entry = _require_allocated(store, record, skill_version)
        entry["decision"] = DEPLOY_FAILED
        entry["image_tag"] = image_tag
        entry["message"] = message
        entry["updated_at"] = _stamp(clock)
        return record

    return update_registry(store, skill, fail)
