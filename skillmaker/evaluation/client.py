"""Talk to a model server over HTTP: send one image, time the answer, read its stamps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from skillmaker.serving.bundle import Stamp

MODEL_MS_HEADER = "x-model-ms"
"""Response header with the in-process model time of a prediction, in milliseconds."""

_HEADERS = {
    "skill": "x-skill-name",
    "skill_version": "x-skill-version",
    "code_version": "x-code-version",
    "model_hash": "x-model-hash",
}


@dataclass(frozen=True)
class Answer:
    """A server's answer to one image: ranked labels with probabilities, stamps, latency, status."""

    status: int
    labels: list[str]
    probabilities: list[float]
    latency_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    model_ms: float | None = None
    """Time the model itself took inside the server (``x-model-ms``), when the server says."""

    @property
    def ok(self) -> bool:
        """Say whether the server classified the image."""
        return self.status == 200 and bool(self.labels)


def stamp_problems(answer: Answer, expected: Stamp) -> list[str]:
    """Give each way the stamps of an answer (body and headers) differ from the expected stamp."""
    if answer.status == 0:
        return []  # no response at all: an error of the request, not of the stamps
    problems: list[str] = []
    wanted = expected.as_json()
    for key, header in _HEADERS.items():
        got_header = answer.headers.get(header)
        if got_header != str(wanted[key]):
            problems.append(f"header {header} is {got_header!r}, expected {wanted[key]!r}")
        if answer.body and answer.body.get(key) != wanted[key]:
            problems.append(f"body {key} is {answer.body.get(key)!r}, expected {wanted[key]!r}")
    return problems


def _parse(response: httpx.Response, latency_ms: float) -> Answer:
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Answer(response.status_code, [], [], latency_ms, headers, {}, "answer is not JSON")
    if response.status_code != 200:
        error = str(body.get("error", f"HTTP {response.status_code}"))
        return Answer(response.status_code, [], [], latency_ms, headers, body, error)
    try:
        top = body["predictions"][0]["top"]
        labels = [str(guess["label"]) for guess in top]
        probabilities = [float(guess["probability"]) for guess in top]
    except (KeyError, IndexError, TypeError, ValueError):
        return Answer(
            response.status_code, [], [], latency_ms, headers, body, "answer has no predictions"
        )
    try:
        model_ms: float | None = float(headers[MODEL_MS_HEADER])
    except (KeyError, ValueError):
        model_ms = None
    return Answer(
        response.status_code, labels, probabilities, latency_ms, headers, body, model_ms=model_ms
    )


async def predict_one(client: httpx.AsyncClient, url: str, image: bytes, top_k: int) -> Answer:
    """Give the server's answer to one image sent as the raw request body, timed end to end."""
    started = time.perf_counter()
    try:
        response = await client.post(
            f"{url}/predict",
            content=image,
            params={"top_k": top_k},
            headers={"content-type": "application/octet-stream"},
        )
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000.0
        return Answer(0, [], [], elapsed, {}, {}, f"request failed: {exc!r}")
    elapsed = (time.perf_counter() - started) * 1000.0
    return _parse(response, elapsed)


async def version(client: httpx.AsyncClient, url: str) -> Answer:
    """Give the server's ``/version`` answer, its class names in ``labels``."""
    started = time.perf_counter()
    response = await client.get(f"{url}/version")
    elapsed = (time.perf_counter() - started) * 1000.0
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        body = response.json()
    except ValueError:
        body = None
    labels = body.get("labels") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(labels, list):
        return Answer(response.status_code, [], [], elapsed, headers, {}, "no version answer")
    return Answer(200, [str(x) for x in labels], [], elapsed, headers, body)
