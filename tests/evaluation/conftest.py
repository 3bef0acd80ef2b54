"""Fixtures of the harness tests: two models trained on the same digits; the test split in PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest

from skillmaker.evaluation.harness import TestItem
from tests.serving import bundles


@pytest.fixture(scope="session")
def two_bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Give a candidate (trained longer) and a baseline (trained one epoch) of the skill digits."""
    data = bundles.digits()
    images, target = data.images[data.train], data.target[data.train]
    root = tmp_path_factory.mktemp("models")
    strong = bundles.trained_digits_model()
    weak = bundles.train(
        bundles.build_model(10, filters=2), images[:300], target[:300], epochs=2, seed=2
    )
    return (
        bundles.save_bundle(
            root / "candidate", strong, bundles.DIGIT_LABELS, "digits", 5, "c4nd1da7e"
        ),
        bundles.save_bundle(
            root / "baseline", weak, bundles.DIGIT_LABELS, "digits", 4, "ba5e1111e"
        ),
    )


@pytest.fixture(scope="session")
def test_items(tmp_path_factory: pytest.TempPathFactory) -> list[TestItem]:
    """Give the held-out digits written as PNG files, with their true label index."""
    data = bundles.digits()
    root = tmp_path_factory.mktemp("test-split")
    items = []
    for index in data.test:
        label = int(data.target[index])
        key = f"{label}/g{index:05d}/{index:05d}.png"
        items.append(TestItem(key, bundles.write_png(root / key, data.images[index]), label))
    return items
