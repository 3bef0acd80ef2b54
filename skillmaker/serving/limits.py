"""What one request to the inference server may hold, and how long a client may take to send it.

Anything over a size limit gets a 413; a server at its concurrency limit answers 503 with
Retry-After; a client that sends headers or a body too slowly is disconnected (headers) or
answered 408 (body).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20

# An image may have this many pixels per pixel of the model's input (16x each side of the input)
# and never fewer than MIN_IMAGE_PIXELS, so a phone photo still fits a small model.
PIXELS_PER_INPUT_PIXEL = 256
MIN_IMAGE_PIXELS = 4_000_000
MAX_IMAGE_PIXELS = 40_000_000


def model_pixel_limit(size: tuple[int, int, int], cap: int = MAX_IMAGE_PIXELS) -> int:
    """Give the largest image (in pixels) worth decoding for a model of input ``size`` (h, w, c)."""
    height, width, _ = size
    return min(cap, max(MIN_IMAGE_PIXELS, PIXELS_PER_INPUT_PIXEL * height * width))


@dataclass(frozen=True)
class ServingLimits:
    """Limits of one request and of the connections that carry requests.

    ``max_pixels`` None follows the model's input size (``model_pixel_limit``), capped by
    ``pixel_cap`` (the skill config's ``data.max_pixels``, else 40 megapixels).
    """

    max_body_bytes: int = 32 * MIB
    max_pixels: int | None = None
    max_batch: int = 64
    top_k: int = 5
    pixel_cap: int = MAX_IMAGE_PIXELS
    max_concurrency: int = 64
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch", "top_k", "pixel_cap", "max_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError("max_pixels must be at least 1")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0")

    def pixels_for(self, size: tuple[int, int, int]) -> int:
        """Give the pixel limit of each image sent to a model of input ``size``."""
        if self.max_pixels is not None:
            return self.max_pixels
        return model_pixel_limit(size, self.pixel_cap)
