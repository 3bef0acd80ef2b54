"""The inference server: FastAPI app with ``/predict``, ``/health`` and ``/version``, the Open
Inference Protocol under ``/v2`` and Prometheus metrics at ``/metrics``, on uvicorn.

Every response carries the stamp (skill name, skill version, code version, model hash) in its
headers, and every JSON body of the server's own API carries it too (v2 answers carry it in their
``parameters``). The model is loaded and warmed up on a background thread after startup;
``/health`` and ``/v2/health/ready`` answer 503 until both are done.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillmaker import __version__
from skillmaker.serving.bundle import BundleInfo, Stamp
from skillmaker.serving.connections import (
    BodyTimeout,
    body_deadline,
    client_went_away,
    concurrency_limit,
    server_config,
)
from skillmaker.serving.limits import ServingLimits
from skillmaker.serving.metrics import ServingMetrics
from skillmaker.serving.model_state import READY, ModelState, load_into
from skillmaker.serving.predictor import PredictFn, model_predict_fn, top_k
from skillmaker.serving.requests import RequestRefusedError, decode_all, images_of
from skillmaker.serving.v2 import V2Protocol, v2_router


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


def _add_middleware(
    app: FastAPI, stamp: Stamp, limits: ServingLimits, metrics: ServingMetrics
) -> None:
    # The last middleware added runs first: metrics see every answer, stamped, limits included.
    app.add_middleware(body_deadline, seconds=limits.body_timeout_s)
    app.add_middleware(concurrency_limit, limit=limits.max_concurrency, extra=stamp.as_json)
    app.add_middleware(StampHeaders, stamp=stamp)
    app.add_middleware(metrics.middleware)


def _handle_errors(
    app: FastAPI, error: Callable[..., JSONResponse], metrics: ServingMetrics
) -> None:
    """Answer errors raised inside requests as stamped JSON (408, 422, the HTTP errors)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error(422, f"invalid request: {where}")

    @app.exception_handler(ClientDisconnect)
    async def went_away(request: Request, _: ClientDisconnect) -> Response:
        client_went_away(request.scope)
        return Response(status_code=499)  # nobody reads it; uvicorn drops it

    @app.exception_handler(BodyTimeout)
    async def body_too_slow(_: Request, exc: BodyTimeout) -> JSONResponse:
        metrics.count_timeout("body")
        response = error(408, str(exc))
        response.headers["Connection"] = "close"
        return response


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
    metrics = ServingMetrics(stamp)
    metrics.watch_model(lambda: state.load_seconds, lambda: state.warmup_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(
            target=load_into, args=(state, info, limits, on_loaded, predict_fn), daemon=True
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
    _add_middleware(app, stamp, limits, metrics)
    app.state.model = state
    app.state.metrics = metrics
    app.include_router(v2_router(V2Protocol(info, state, limits, metrics)))

    def error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({**stamp.as_json(), "error": message, **extra}, status_code=status)

    _handle_errors(app, error, metrics)

    @app.get("/metrics", response_class=Response)
    async def prometheus() -> Response:
        """Give the server's metrics in Prometheus text format."""
        return Response(metrics.exposition(), media_type=metrics.content_type)

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
                    "max_pixels": state.max_pixels or limits.max_pixels,
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
            if not state.ready or state.predictor is None or state.size is None:
                raise RequestRefusedError(503, f"model not ready ({state.status})")
            images = await images_of(request, limits)
            pixels = state.max_pixels or limits.pixels_for(state.size)
            batch = await run_in_threadpool(decode_all, images, state.size, pixels)
        except RequestRefusedError as exc:
            extra = {key: value for key in ("reason", "image") if (value := getattr(exc, key))}
            response = error(exc.status, exc.error, **extra)
            if exc.status == 503:
                response.headers["Retry-After"] = "1"
            return response
        started = time.perf_counter()  # the model's own time, queue and batch included:
        probabilities = await asyncio.wrap_future(state.predictor.submit(batch))
        metrics.count_images("predict", len(batch))
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


def run_server(app: FastAPI, host: str, port: int, limits: ServingLimits | None = None) -> None:
    """Serve the app with uvicorn, its connection guards on, until interrupted."""
    limits = limits or ServingLimits()
    metrics: ServingMetrics = app.state.metrics
    uvicorn.Server(server_config(app, host, port, limits, metrics.count_timeout)).run()
