"""Small generated pictures for the data tests: random block patterns, so each has its own phash."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def picture(seed: int, size: int = 48, mode: str = "RGB") -> Image.Image:
    """Give a picture of random coloured blocks; other seeds give perceptually other pictures."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((size // 8, size // 8, 1), dtype=np.uint8))
    return Image.fromarray(pixels, "RGB").convert(mode)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """Give the bytes of an image saved in a format."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png(seed: int, size: int = 48) -> bytes:
    """Give a random-pattern picture as PNG bytes."""
    return encode(picture(seed, size))
