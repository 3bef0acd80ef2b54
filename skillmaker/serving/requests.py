"""Read the images of a request (raw, multipart, JSON batch) and decode them, or refuse it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message

from skillmaker.data.images import TOO_LARGE, BadImage, decode
from skillmaker.serving.limits import ServingLimits


class RequestRefusedError(Exception):
    """A request refused with an HTTP status (400, 413, 503) and a JSON error."""

    def __init__(
        self, status: int, error: str, reason: str | None = None, image: str | None = None
    ):
        super().__init__(error)
        self.status = status
        self.error = error
        self.reason = reason
        self.image = image


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """Give the request body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRefusedError(
            413, f"request body of {declared} bytes is over the limit of {limit} bytes"
        )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestRefusedError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_batch(count: int, limits: ServingLimits) -> None:
    if count == 0:
        raise RequestRefusedError(400, "no image in the request")
    if count > limits.max_batch:
        raise RequestRefusedError(
            413, f"batch of {count} images is over the limit of {limits.max_batch}"
        )


def _json_images(body: bytes, limits: ServingLimits) -> list[tuple[str, bytes]]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestRefusedError(400, f"body is not valid JSON ({exc})") from None
    items = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise RequestRefusedError(400, 'a JSON body must be {"images": ["<base64>", ...]}')
    check_batch(len(items), limits)
    images: list[tuple[str, bytes]] = []
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise RequestRefusedError(400, "must be a base64 string", image=str(index))
        try:
            images.append((str(index), base64.b64decode(item, validate=True)))
        except (binascii.Error, ValueError):
            raise RequestRefusedError(400, "is not valid base64", image=str(index)) from None
    return images


async def _multipart_images(
    request: Request, body: bytes, limits: ServingLimits
) -> list[tuple[str, bytes]]:
    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(
            max_files=limits.max_batch, max_fields=limits.max_batch
        )
    except (MultiPartException, StarletteHTTPException) as exc:
        # Starlette wraps the parser's error in an HTTPException when the request belongs to an app.
        text = str(getattr(exc, "detail", None) or getattr(exc, "message", None) or exc)
        status = 413 if "too many" in text.lower() else 400
        raise RequestRefusedError(status, f"multipart body refused: {text}") from None
    try:
        files = [value for _, value in form.multi_items() if not isinstance(value, str)]
        check_batch(len(files), limits)
        return [
            (upload.filename or str(index), await upload.read())
            for index, upload in enumerate(files)
        ]
    finally:
        await form.close()


async def images_of(request: Request, limits: ServingLimits) -> list[tuple[str, bytes]]:
    """Give the (name, bytes) of each image in a raw, multipart or JSON request, or refuse it."""
    body = await read_body(request, limits.max_body_bytes)
    kind = content_type(request)
    if kind == "multipart/form-data":
        return await _multipart_images(request, body, limits)
    if kind == "application/json":
        return _json_images(body, limits)
    if not body:
        raise RequestRefusedError(400, "empty body: send an image", reason="empty")
    return [("0", body)]


def decode_all(
    images: Sequence[tuple[str, bytes]], size: tuple[int, int, int], max_pixels: int
) -> np.ndarray:
    """Give the float32 batch of decoded images, or refuse naming the first bad one."""
    height, width, channels = size
    batch = np.empty((len(images), height, width, channels), dtype=np.float32)
    for index, (name, data) in enumerate(images):
        try:
            batch[index] = decode(data, height, width, channels, max_pixels)
        except BadImage as exc:
            status = 413 if exc.reason == TOO_LARGE else 400
            raise RequestRefusedError(
                status, f"bad image: {exc}", reason=exc.reason, image=name
            ) from None
        except Exception as exc:  # an odd file can make an image plugin raise anything
            raise RequestRefusedError(
                400, f"bad image: {exc}", reason="undecodable", image=name
            ) from None
    return batch
