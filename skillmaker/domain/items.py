"""The images a run uses (``dataset.json``): each with its content hash, class, group and split."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class DatasetItem(TypedDict):
    """One image a run uses."""

    key: str
    sha256: str
    label: str
    group: str
    split: str
    path: str
    """Relative to the raw cache folder (``Workspace.raw_cache``)."""


class DatasetRecord(TypedDict):
    """``dataset.json``: the kept class names (the label index order) and every image used."""

    labels: list[str]
    items: list[DatasetItem]
    fingerprint: NotRequired[str]
    """SHA-256 over the sorted (content hash, split) pairs: what train and evaluate check."""
