"""Decode an image file into the configured channels, or say why it must be quarantined."""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Reasons recorded in audit.json for quarantined files.
EMPTY = "empty"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated"
UNDECODABLE = "undecodable"
TOO_LARGE = "over the pixel limit"
UNSUPPORTED_MODE = "unsupported mode"
UNSAFE_KEY = "unsafe key"

_CONVERTIBLE = {
    "1",
    "L",
    "LA",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16B",
    "I;16L",
    "I;16N",
    "F",
}


class BadImage(Exception):
    """An image that cannot be used; ``reason`` is one of the quarantine reasons above."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# What Pillow's decoders raise on damaged files (struct.error, EOFError and IndexError come from
# plugins that parse headers by hand).
_DECODER_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)


def _decoder_failure(exc: BaseException) -> BadImage:
    """Give the quarantine verdict for an error a decoder raised: truncated or undecodable."""
    text = str(exc)
    lowered = text.lower()
    reason = TRUNCATED if "truncat" in lowered or "end of" in lowered else UNDECODABLE
    return BadImage(reason, text)


_DEEP_MODES = ("I", "F")  # prefixes: I, I;16, I;16B, I;16L, I;16N, F
_CHUNK_PIXELS = 1 << 20  # deep images are converted this many pixels at a time


def _is_deep(image: Image.Image) -> bool:
    return image.mode.startswith(_DEEP_MODES)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Give an 8-bit greyscale image from a 16-bit or 32-bit one, scaled by its real range.

    It works through a band of rows at a time in float32, so a 40-megapixel 16-bit image costs
    its 8-bit result and one band, not float64 copies of the whole image.
    """
    width, height = image.size
    if image.mode.startswith("I;16"):
        top = 65535.0
    else:
        highest = float(image.getextrema()[1])  # type: ignore[arg-type]
        top = max(highest, 1.0) if image.mode == "F" else (65535.0 if highest > 255 else 255.0)
    scale = np.float32(255.0 / top)
    result = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _CHUNK_PIXELS // max(width, 1))
    for top_row in range(0, height, rows):
        bottom = min(height, top_row + rows)
        band = np.asarray(image.crop((0, top_row, width, bottom)), dtype=np.float32)
        np.multiply(band, scale, out=band)
        np.clip(band, 0.0, 255.0, out=band)
        result[top_row:bottom] = np.rint(band, out=band)
    return Image.fromarray(result, mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Give an RGB image with transparency composited on white (what a viewer shows)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def open_image(data: bytes, max_pixels: int, draft: tuple[int, int] | None = None) -> Image.Image:
    """Give the decoded, EXIF-upright image in bytes, or raise ``BadImage`` with the reason.

    With ``draft`` (width, height) a JPEG is decoded at the smallest of 1/1, 1/2, 1/4 or 1/8 of
    its size that still covers it (either way up), which saves up to 64x the memory.
    """
    if not data:
        raise BadImage(EMPTY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise BadImage(NOT_AN_IMAGE) from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise BadImage(TOO_LARGE) from None
        except _DECODER_ERRORS as exc:
            # A header that is cut short or garbled fails here, before any pixel is read.
            raise _decoder_failure(exc) from None
        width, height = image.size
        if width * height > max_pixels:
            raise BadImage(TOO_LARGE, f"{width}x{height}")
        if image.mode not in _CONVERTIBLE:
            raise BadImage(UNSUPPORTED_MODE, image.mode)
        try:
            if draft is not None and image.format == "JPEG":
                side = max(draft)
                image.draft(None, (side, side))
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadImage(TOO_LARGE) from None
        except _DECODER_ERRORS as exc:
            raise _decoder_failure(exc) from None
    # In place: without an orientation tag a copy would double the memory of a big image. A
    # broken EXIF block should not lose an image that decoded.
    with contextlib.suppress(OSError, ValueError, SyntaxError):
        ImageOps.exif_transpose(image, in_place=True)
    return image


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Give the image in mode L (1 channel) or RGB (3 channels), converting every other mode."""
    if _is_deep(image):
        image = _to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image)
    if channels == 1:
        return image if image.mode == "L" else image.convert("RGB").convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode(data: bytes, height: int, width: int, channels: int, max_pixels: int) -> np.ndarray:
    """Give a ``(height, width, channels)`` uint8 array of an image file, or raise ``BadImage``."""
    image = open_image(data, max_pixels, draft=(width, height))
    try:
        if _is_deep(image) and image.size != (width, height):
            # Shrink first, in the image's own depth, so the 8-bit conversion is of few pixels.
            with contextlib.suppress(ValueError):  # modes Pillow cannot resample as they are
                image = image.resize((width, height), Image.Resampling.BILINEAR)
        image = to_channels(image, channels)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    except _DECODER_ERRORS as exc:
        raise _decoder_failure(exc) from None
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(height, width, channels)


def decode_file(path: Path, height: int, width: int, channels: int, max_pixels: int) -> np.ndarray:
    """Give the decoded array of an image file (see ``decode``)."""
    return decode(path.read_bytes(), height, width, channels, max_pixels)
