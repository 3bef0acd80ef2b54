"""What one request to the inference server may hold; anything over a limit gets a 413."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class ServingLimits:
    """Limits of one request: body bytes, pixels of each image, images per batch; default top-k."""

    max_body_bytes: int = 32 * MIB
    max_pixels: int = 40_000_000
    max_batch: int = 64
    top_k: int = 5

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_pixels", "max_batch", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
