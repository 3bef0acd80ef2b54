"""The inference server: FastAPI app with ``/predict``, ``/health`` and ``/version``, on uvicorn.

Every response carries the stamp (skill name, skill version, code version, model hash) in its
headers, and every JSON body the server writes carries it too. The model is loaded and warmed up
on a background thread after startup; ``/health`` answers 503 until both are done.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillmaker import __version__
from skillmaker.data.images import TOO_LARGE, BadImage, decode
from skillmaker.serving.bundle import BundleInfo, Stamp, input_size, load_model
from skillmaker.serving.limits import ServingLimits
from skillmaker.serving.predictor import BatchingPredictor, PredictFn, model_predict_fn, top_k

LOADING, READY, FAILED = "loading", "ready", "failed"


class Guess(BaseModel):
    """One of the most probable classes of an image."""

    label: str
    index: int
    probability: float


class ImagePrediction(BaseModel):
    """The top-k classes of one image (``image``: its file name, or its position in the batch)."""

    image: str
    top: list[Guess]


class PredictResponse(BaseModel):
    """The answer to ``POST /predict``: the stamp and one prediction per image, in request order."""

    skill: str
    skill_version: int
    code_version: str
    model_hash: str
    predictions: list[ImagePrediction]


class ErrorResponse(BaseModel):
    """A request the server refused: what is wrong, and which image when one is to blame."""

    skill: str
    skill_version: int
    code_version: str
    model_hash: str
    error: str
    reason: str | None = None
    image: str | None = None


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


_PREDICT_REQUEST: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One image as the raw body; one or more files as multipart; "
        'or a JSON batch {"images": ["<base64>", ...]}.',
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"images": {"type": "array", "items": {"type": "string"}}},
                    "required": ["images"],
                }
            },
        },
    }
}
"""The request body of ``POST /predict`` in the OpenAPI schema (the handler reads it itself)."""


@dataclass
class ModelState:
    """Where the model is in its life: loading, ready (with its predictor) or failed."""

    status: str = LOADING
    error: str | None = None
    predictor: BatchingPredictor | None = None
    size: tuple[int, int, int] | None = None
    warmup_ms: float | None = None


class StampHeaders:
    """ASGI middleware that adds the stamp headers to every HTTP response."""

    def __init__(self, app: ASGIApp, stamp: Stamp) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in stamp.headers().items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_stamped)


def _load(
    info: BundleInfo,
    state: ModelState,
    limits: ServingLimits,
    on_loaded: Callable[[], None] | None,
    predict_fn: Callable[[object], PredictFn],
) -> None:
    """Load the model, warm it up at each batch shape it will see, then mark the state ready."""
    try:
        model = load_model(info)
        size = input_size(model)
        if on_loaded is not None:
            on_loaded()
        predictor = BatchingPredictor(predict_fn(model), limits.max_batch)
        started = time.perf_counter()
        # The first calls trace the model; after a few batch sizes Keras keeps one trace for any
        # size. Pay for that here rather than in the first users' requests.
        for count in sorted({1, 2, min(8, limits.max_batch), limits.max_batch}):
            for _ in range(2):
                predictor.submit(np.zeros((count, *size), dtype=np.float32)).result()
        state.warmup_ms = (time.perf_counter() - started) * 1000.0
        state.size, state.predictor = size, predictor
        state.status = READY
    except Exception as exc:  # reported by /health; the server keeps answering
        state.error = str(exc)
        state.status = FAILED
        print(f"skillmaker serve: model failed to load: {exc}", file=sys.stderr, flush=True)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
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


def _check_batch(count: int, limits: ServingLimits) -> None:
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
    _check_batch(len(items), limits)
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
        _check_batch(len(files), limits)
        return [
            (upload.filename or str(index), await upload.read())
            for index, upload in enumerate(files)
        ]
    finally:
        await form.close()


async def _images_of(request: Request, limits: ServingLimits) -> list[tuple[str, bytes]]:
    """Give the (name, bytes) of each image in a raw, multipart or JSON request, or refuse it."""
    body = await _read_body(request, limits.max_body_bytes)
    kind = _content_type(request)
    if kind == "multipart/form-data":
        return await _multipart_images(request, body, limits)
    if kind == "application/json":
        return _json_images(body, limits)
    if not body:
        raise RequestRefusedError(400, "empty body: send an image", reason="empty")
    return [("0", body)]


def _decode_all(
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


def create_app(
    info: BundleInfo,
    limits: ServingLimits | None = None,
    *,
    on_loaded: Callable[[], None] | None = None,
    predict_fn: Callable[[object], PredictFn] = model_predict_fn,
) -> FastAPI:
    """Give the inference app of a bundle; its model loads in the background once it starts.

    ``on_loaded`` runs after the model is loaded and before its warm-up (a test holds it to see
    that ``/health`` is not ready yet).
    """
    limits = limits or ServingLimits()
    stamp = info.stamp
    state = ModelState()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(
            target=_load, args=(info, state, limits, on_loaded, predict_fn), daemon=True
        )
        loader.start()
        yield
        if state.predictor is not None:
            state.predictor.close()

    app = FastAPI(
        title=f"skillmaker inference: {stamp.skill}",
        version=__version__,
        description="Top-k image classification. Every response carries the skill name, skill "
        "version, code version and model hash in its body and in X-Skill-* headers.",
        lifespan=lifespan,
    )
    app.add_middleware(StampHeaders, stamp=stamp)
    app.state.model = state

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({**stamp.as_json(), "error": message, **extra}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error(422, f"invalid request: {where}")

    @app.get("/health", responses={503: {"description": "loading, or the model failed to load"}})
    async def health() -> JSONResponse:
        """Say whether the model is loaded and warmed up (200) or not yet (503)."""
        body: dict[str, Any] = {**stamp.as_json(), "status": state.status}
        if state.status == READY:
            body["warmup_ms"] = state.warmup_ms
            return JSONResponse(body)
        if state.error is not None:
            body["error"] = state.error
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.get("/version")
    async def version() -> JSONResponse:
        """Give the stamp, the class names and the input size the model takes."""
        size = state.size
        return JSONResponse(
            {
                **stamp.as_json(),
                "labels": list(info.labels),
                "input": None
                if size is None
                else {"height": size[0], "width": size[1], "channels": size[2]},
                "skillmaker_version": __version__,
                "limits": {
                    "max_body_bytes": limits.max_body_bytes,
                    "max_pixels": limits.max_pixels,
                    "max_batch": limits.max_batch,
                },
            }
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            400: {"model": ErrorResponse, "description": "not an image, or a bad request"},
            413: {"model": ErrorResponse, "description": "over a body, pixel or batch limit"},
            503: {"model": ErrorResponse, "description": "the model is not ready yet"},
        },
        openapi_extra=_PREDICT_REQUEST,
    )
    async def predict(
        request: Request,
        k: int | None = Query(default=None, alias="top_k", ge=1, description="classes per image"),
    ) -> JSONResponse:
        """Give the top-k classes with probabilities of each image sent."""
        try:
            if state.status != READY or state.predictor is None or state.size is None:
                raise RequestRefusedError(503, f"model not ready ({state.status})")
            images = await _images_of(request, limits)
            batch = await run_in_threadpool(_decode_all, images, state.size, limits.max_pixels)
        except RequestRefusedError as exc:
            extra = {key: value for key in ("reason", "image") if (value := getattr(exc, key))}
            response = error(exc.status, exc.error, **extra)
            if exc.status == 503:
                response.headers["Retry-After"] = "1"
            return response
        started = time.perf_counter()  # the model's own time, queue and batch included:
        probabilities = await asyncio.wrap_future(state.predictor.submit(batch))
        model_ms = {"x-model-ms": f"{(time.perf_counter() - started) * 1000.0:.3f}"}
        best = top_k(probabilities, k or limits.top_k)
        predictions = [
            {
                "image": name,
                "top": [
                    {"label": info.labels[index], "index": index, "probability": probability}
                    for index, probability in guesses
                ],
            }
            for (name, _), guesses in zip(images, best, strict=True)
        ]
        return JSONResponse({**stamp.as_json(), "predictions": predictions}, headers=model_ms)

    return app


def run_server(app: FastAPI, host: str, port: int) -> None:
    """Serve the app with uvicorn until interrupted."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
