"""The Open Inference Protocol (KServe v2 REST), as Triton, KServe and MLServer speak it.

One model is served: its name is the skill, its only version the skill version. A request holds
one input, either ``image`` (UINT8 ``[N, H, W, C]`` at the model's input size, raw pixels) or
``image_bytes`` (BYTES ``[N]``, each element an encoded image file; base64 strings when sent as
JSON ``data``). The answer is ``probabilities`` (FP32 ``[N, classes]``, softmax applied, in the
order of the labels the model metadata lists). Tensors travel as JSON ``data`` or in the binary
tensor data extension (``Inference-Header-Content-Length``), as ``tritonclient`` sends them.
Errors are ``{"error": "..."}`` with 400 (bad request), 404 (no such model or version),
413 (over a limit) or 503 (model not ready).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from skillmaker import __version__
from skillmaker.serving.bundle import BundleInfo
from skillmaker.serving.limits import ServingLimits
from skillmaker.serving.metrics import ServingMetrics
from skillmaker.serving.model_state import ModelState
from skillmaker.serving.requests import RequestRefusedError, check_batch, decode_all, read_body

INPUT_PIXELS = "image"
INPUT_FILES = "image_bytes"
OUTPUT = "probabilities"
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "skillmaker_keras"


class V2Error(Exception):
    """A v2 request refused with an HTTP status and the protocol's error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_body(request: Request, body: bytes) -> tuple[dict[str, Any], memoryview]:
    """Give the JSON header of an infer request and the binary tensor data after it."""
    declared = request.headers.get(HEADER_LENGTH)
    size = len(body)
    if declared is not None:
        if not declared.isdigit() or int(declared) > size:
            raise V2Error(400, f"{HEADER_LENGTH} {declared!r}: must be at most the body's {size}")
        size = int(declared)
    try:
        payload = json.loads(bytes(body[:size]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise V2Error(400, f"request is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise V2Error(400, "request must be a JSON object with 'inputs'")
    return payload, memoryview(body)[size:]


def _shape(tensor: dict[str, Any]) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise V2Error(400, f"input {tensor.get('name')!r}: shape must be a list of whole numbers")
    return shape


def _raw_bytes(tensor: dict[str, Any], binary: memoryview, offset: int) -> tuple[bytes | None, int]:
    """Give the tensor's bytes from the binary section (or None when it has JSON data)."""
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        return None, offset
    if not isinstance(size, int) or size < 0 or offset + size > len(binary):
        raise V2Error(400, f"input {tensor.get('name')!r}: binary_data_size {size!r} is wrong")
    return bytes(binary[offset : offset + size]), offset + size


def _split_bytes_tensor(raw: bytes, count: int, name: str) -> list[bytes]:
    """Give the elements of a BYTES tensor in binary form (each a 4-byte length, then bytes)."""
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise V2Error(400, f"input {name!r}: BYTES data ends inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise V2Error(400, f"input {name!r}: BYTES element is longer than the data")
        items.append(raw[offset : offset + length])
        offset += length
    if len(items) != count:
        raise V2Error(400, f"input {name!r}: shape says {count} elements, data holds {len(items)}")
    return items


def _pixels(
    tensor: dict[str, Any], raw: bytes | None, size: tuple[int, int, int], limits: ServingLimits
) -> np.ndarray:
    """Give the float32 batch of a UINT8 ``image`` tensor, checked against the model's size."""
    shape = _shape(tensor)
    if len(shape) != 4 or tuple(shape[1:]) != size:
        wanted = [-1, *size]
        raise V2Error(400, f"input {INPUT_PIXELS!r}: shape {shape} must be {wanted} (N, H, W, C)")
    check_batch(shape[0], limits)
    if raw is not None:
        if len(raw) != int(np.prod(shape)):
            raise V2Error(400, f"input {INPUT_PIXELS!r}: {len(raw)} bytes do not fill {shape}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(shape).astype(np.float32)
    try:
        values = np.asarray(tensor.get("data"), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise V2Error(400, f"input {INPUT_PIXELS!r}: data must be whole numbers") from None
    if values.size != int(np.prod(shape)):
        raise V2Error(400, f"input {INPUT_PIXELS!r}: {values.size} values do not fill {shape}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise V2Error(400, f"input {INPUT_PIXELS!r}: UINT8 values must be within 0..255")
    return values.reshape(shape).astype(np.float32)


def _files(tensor: dict[str, Any], raw: bytes | None, limits: ServingLimits) -> list[bytes]:
    """Give the encoded images of a BYTES ``image_bytes`` tensor."""
    shape = _shape(tensor)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise V2Error(400, f"input {INPUT_FILES!r}: shape {shape} must be [N] or [N, 1]")
    check_batch(shape[0], limits)
    if raw is not None:
        return _split_bytes_tensor(raw, shape[0], INPUT_FILES)
    data = tensor.get("data")
    if isinstance(data, list) and data and all(isinstance(d, list) for d in data):
        data = [item for row in data for item in row]
    if not isinstance(data, list) or len(data) != shape[0]:
        raise V2Error(400, f"input {INPUT_FILES!r}: data must be a list of {shape[0]} strings")
    files: list[bytes] = []
    for index, item in enumerate(data):
        try:
            files.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError, TypeError):
            raise V2Error(400, f"input {INPUT_FILES!r}[{index}]: must be base64") from None
    return files


def _wants_binary(payload: dict[str, Any]) -> bool:
    parameters = payload.get("parameters") or {}
    if isinstance(parameters, dict) and parameters.get("binary_data_output") is True:
        return True
    outputs = payload.get("outputs")
    if outputs is None:
        return False
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise V2Error(400, "outputs must be a list of {'name': ...}")
    for output in outputs:
        if output.get("name") != OUTPUT:
            raise V2Error(400, f"output {output.get('name')!r}: unknown (the model has {OUTPUT!r})")
    return any((o.get("parameters") or {}).get("binary_data") is True for o in outputs)


class V2Protocol:
    """The v2 endpoints of one served model."""

    def __init__(
        self,
        info: BundleInfo,
        state: ModelState,
        limits: ServingLimits,
        metrics: ServingMetrics,
    ) -> None:
        self.info, self.state, self.limits, self.metrics = info, state, limits, metrics
        stamp = info.stamp
        self.name, self.version = stamp.skill, str(stamp.skill_version)
        self.parameters = {
            "skill_version": stamp.skill_version,
            "code_version": stamp.code_version,
            "model_hash": stamp.model_hash,
        }

    def check_model(self, name: str, version: str | None) -> None:
        """Refuse (404) a model name or version that is not the one served."""
        if name != self.name:
            raise V2Error(
                404, f"model {name!r}: not served here (this server serves {self.name!r})"
            )
        if version not in (None, "", self.version):
            raise V2Error(
                404, f"model {name!r} version {version!r}: not served (only {self.version})"
            )

    def metadata(self) -> dict[str, Any]:
        """Give the model metadata: inputs, outputs, labels and the stamp."""
        height, width, channels = self.state.size or (-1, -1, -1)
        classes = len(self.info.labels)
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [
                {"name": INPUT_PIXELS, "datatype": "UINT8", "shape": [-1, height, width, channels]},
                {"name": INPUT_FILES, "datatype": "BYTES", "shape": [-1]},
            ],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, classes]}],
            "parameters": {
                **self.parameters,
                "labels": list(self.info.labels),
                "max_batch_size": self.limits.max_batch,
            },
        }

    async def infer(self, request: Request) -> Response:
        """Answer an infer request with the probabilities of each image it holds."""
        state = self.state
        if not state.ready or state.size is None or state.predictor is None:
            raise V2Error(503, f"model {self.name!r} is not ready ({state.status})")
        body = await read_body(request, self.limits.max_body_bytes)
        payload, binary = _json_body(request, body)
        inputs = payload.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise V2Error(400, f"inputs must hold one tensor: {INPUT_PIXELS!r} or {INPUT_FILES!r}")
        tensor = inputs[0]
        raw, _ = _raw_bytes(tensor, binary, 0)
        kind = (tensor.get("name"), tensor.get("datatype"))
        binary_output = _wants_binary(payload)
        if kind == (INPUT_PIXELS, "UINT8"):
            batch = _pixels(tensor, raw, state.size, self.limits)
        elif kind == (INPUT_FILES, "BYTES"):
            files = _files(tensor, raw, self.limits)
            named = [(str(index), data) for index, data in enumerate(files)]
            pixels = state.max_pixels or self.limits.pixels_for(state.size)
            batch = await run_in_threadpool(decode_all, named, state.size, pixels)
        else:
            raise V2Error(
                400,
                f"input {kind[0]!r} of {kind[1]!r}: must be {INPUT_PIXELS!r} (UINT8) "
                f"or {INPUT_FILES!r} (BYTES)",
            )
        probabilities = await asyncio.wrap_future(state.predictor.submit(batch))
        self.metrics.count_images("v2", len(batch))
        return self._answer(payload, probabilities.astype(np.float32), binary_output)

    def _answer(self, payload: dict[str, Any], values: np.ndarray, binary: bool) -> Response:
        output: dict[str, Any] = {"name": OUTPUT, "datatype": "FP32", "shape": list(values.shape)}
        answer: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if isinstance(payload.get("id"), str):
            answer["id"] = payload["id"]
        answer["parameters"] = self.parameters
        answer["outputs"] = [output]
        if not binary:
            output["data"] = values.reshape(-1).tolist()
            return JSONResponse(answer)
        data = values.astype("<f4").tobytes()
        output["parameters"] = {"binary_data_size": len(data)}
        header = json.dumps(answer).encode()
        return Response(
            header + data,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(header))},
        )


def v2_router(protocol: V2Protocol) -> APIRouter:
    """Give the router of the v2 endpoints (health, server and model metadata, readiness, infer)."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (KServe v2)"])

    def refused(status: int, message: str) -> JSONResponse:
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def guarded(call: Any) -> Response:
        try:
            result: Response = await call()
        except V2Error as exc:
            return refused(exc.status, exc.message)
        except RequestRefusedError as exc:
            where = f"image {exc.image}: " if exc.image is not None else ""
            return refused(exc.status, where + exc.error)
        return result

    @router.get("/health/live")
    async def live() -> JSONResponse:
        """Say the server is up (200), whatever the model's state."""
        return JSONResponse({"live": True})

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        """Say whether the model can answer (200) or not yet (503)."""
        is_ready = protocol.state.ready
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    @router.get("")
    async def server() -> JSONResponse:
        """Give the server metadata: name, version and protocol extensions."""
        return JSONResponse(
            {"name": "skillmaker", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def model_ready(skill: str, skill_version: str | None = None) -> Response:
        async def answer() -> Response:
            protocol.check_model(skill, skill_version)
            is_ready = protocol.state.ready
            body = {"name": skill, "ready": is_ready}
            return JSONResponse(body, status_code=200 if is_ready else 503)

        return await guarded(answer)

    async def metadata(skill: str, skill_version: str | None = None) -> Response:
        async def answer() -> Response:
            protocol.check_model(skill, skill_version)
            return JSONResponse(protocol.metadata())

        return await guarded(answer)

    async def infer(request: Request, skill: str, skill_version: str | None = None) -> Response:
        async def answer() -> Response:
            protocol.check_model(skill, skill_version)
            return await protocol.infer(request)

        return await guarded(answer)

    for prefix in ("/models/{skill}", "/models/{skill}/versions/{skill_version}"):
        router.add_api_route(prefix, metadata, methods=["GET"], summary="Model metadata")
        router.add_api_route(f"{prefix}/ready", model_ready, methods=["GET"], summary="Model ready")
        router.add_api_route(f"{prefix}/infer", infer, methods=["POST"], summary="Infer")
    return router
