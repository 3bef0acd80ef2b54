"""Normalisation statistics of cached images, and ``normalisation.json``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skillmaker.data.cache.reader import TensorCache
from skillmaker.errors import UserError
from skillmaker.records import read_record, write_record


def normalisation(
    cache: TensorCache, rows: Sequence[int] | np.ndarray, *, batch: int = 1024
) -> tuple[list[float], list[float]]:
    """Give the per-channel mean and standard deviation (pixel values 0..255) of cached rows.

    Streamed in batches of ``batch`` images; sums are kept as exact integers, so the result does
    not depend on the batch size and equals the statistics of the whole array.
    """
    wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(wanted) == 0:
        raise UserError("normalisation needs at least one image (the training split is empty)")
    channels = cache.shape[2]
    total = [0] * channels
    squares = [0] * channels
    for low in range(0, len(wanted), max(1, batch)):
        images = cache.read(wanted[low : low + batch]).reshape(-1, channels)
        wide = images.astype(np.uint64)
        for c in range(channels):
            total[c] += int(wide[:, c].sum())
            squares[c] += int(np.dot(wide[:, c], wide[:, c]))
    count = len(wanted) * cache.shape[0] * cache.shape[1]
    means = [t / count for t in total]
    # Exact integer variance: n * sum(x^2) - sum(x)^2 never cancels catastrophically.
    stds = [
        math.sqrt((count * q - t * t) / (count * count))
        for t, q in zip(total, squares, strict=True)
    ]
    return means, stds


def save_normalisation(path: Path, mean: Sequence[float], std: Sequence[float]) -> None:
    """Write ``normalisation.json`` (``{"mean": [...], "std": [...]}``) atomically."""
    write_record(path, {"mean": [float(m) for m in mean], "std": [float(s) for s in std]})


def load_normalisation(path: Path) -> tuple[list[float], list[float]]:
    """Give the mean and std saved in ``normalisation.json``, or a user error naming the file."""
    data: Any = read_record(path)
    try:
        mean = [float(m) for m in data["mean"]]
        std = [float(s) for s in data["std"]]
    except (KeyError, TypeError, ValueError):
        raise UserError(f'{path}: expected {{"mean": [...], "std": [...]}} of numbers') from None
    if len(mean) != len(std) or not mean:
        raise UserError(f"{path}: mean and std must list the same number of channels")
    return mean, std
