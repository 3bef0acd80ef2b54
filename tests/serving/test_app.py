"""The inference server over real HTTP: answers, stamps, limits, bad images, readiness."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import keras
import numpy as np
import pytest
from PIL import Image

from skillmaker.evaluation.launch import RunningServer
from skillmaker.serving.app import create_app
from skillmaker.serving.bundle import read_bundle
from skillmaker.serving.predictor import softmax
from tests.serving import bundles
from tests.serving.conftest import MAX_BATCH, serve_in_thread


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """Give a valid 1-bit PNG of width x height pixels; all-black rows compress to ~50 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    rows = (b"\x00" * (1 + (width + 7) // 8)) * 1000
    data = b"".join(compressor.compress(rows) for _ in range(height // 1000)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    """Give the first half of a real 64x64 JPEG."""
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    return data[: len(data) // 2]


def digit_png(index: int) -> bytes:
    data = bundles.digits()
    return bundles.png_bytes(data.images[data.test[index]])


def batch_json(count: int) -> bytes:
    return json.dumps(
        {"images": [base64.b64encode(digit_png(i)).decode() for i in range(count)]}
    ).encode()


def in_process_probabilities(bundle: Path, images: np.ndarray) -> np.ndarray:
    model = keras.saving.load_model(bundle / "model.keras", compile=False)
    return softmax(np.asarray(model.predict_on_batch(images.astype("float32"))))


def assert_stamped(response: httpx.Response, bundle: Path) -> None:
    stamp = read_bundle(bundle).stamp
    assert response.headers["x-skill-name"] == "digits"
    assert response.headers["x-skill-version"] == "3"
    assert response.headers["x-code-version"] == "abc123"
    assert response.headers["x-model-hash"] == stamp.model_hash
    body = response.json()
    assert (body["skill"], body["skill_version"], body["code_version"], body["model_hash"]) == (
        "digits",
        3,
        "abc123",
        stamp.model_hash,
    )


def raw(content: bytes, kind: str = "application/octet-stream") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": kind}}


def files(*parts: tuple[str, bytes]) -> dict[str, Any]:
    return {"files": [("files", (name, data, "application/octet-stream")) for name, data in parts]}


JSON = "application/json"
TOO_MANY = [(f"{i}.png", digit_png(i)) for i in range(MAX_BATCH + 1)]

# case: (request, expected status, expected reason)
BAD_INPUTS: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "empty body": (raw(b""), 400, "empty"),
    "text": (raw(b"hello, I am not an image", "text/plain"), 400, "not an image"),
    "truncated jpeg": (raw(truncated_jpeg(), "image/jpeg"), 400, "truncated"),
    "20000x20000 png": (raw(huge_png(), "image/png"), 413, "over the pixel limit"),
    "oversized json batch": (raw(batch_json(MAX_BATCH + 1), JSON), 413, None),
    "oversized multipart batch": (files(*TOO_MANY), 413, None),
    "body over the limit": (raw(b"\x89PNG" + b"\x00" * (2 << 20)), 413, None),
    "invalid json": (raw(b'{"images": [', JSON), 400, None),
    "json without images": (raw(b'{"pictures": []}', JSON), 400, None),
    "bad base64": (raw(b'{"images": ["not base64!"]}', JSON), 400, None),
    "empty json batch": (raw(b'{"images": []}', JSON), 400, None),
    "one bad image in a batch": (
        files(("good.png", digit_png(0)), ("bad.jpg", truncated_jpeg())),
        400,
        "truncated",
    ),
    "multipart without a file": ({"data": {"note": "no file"}, "files": {}}, 400, None),
    "top_k zero": ({"content": digit_png(0), "params": {"top_k": 0}}, 422, None),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_answering(
    served: RunningServer, digits_bundle: Path, case: str
) -> None:
    request, status, reason = BAD_INPUTS[case]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        response = client.post("/predict", **request)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert_stamped(response, digits_bundle)
        assert response.json()["error"]
        if reason is not None:
            assert response.json()["reason"] == reason
        if case == "one bad image in a batch":
            assert response.json()["image"] == "bad.jpg"
        after = client.post("/predict", content=digit_png(1))
        assert after.status_code == 200
        assert client.get("/health").status_code == 200


def test_200_concurrent_requests_are_all_answered_with_correct_stamps_and_their_own_answer(
    served: RunningServer, digits_bundle: Path
) -> None:
    data = bundles.digits()
    indices = [int(i) for i in data.test[:200]]
    expected = in_process_probabilities(digits_bundle, data.images[indices]).argmax(axis=1)

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=served.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post("/predict", content=bundles.png_bytes(data.images[i]))
                    for i in indices
                )
            )

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 200
    for response in responses:
        assert_stamped(response, digits_bundle)
    # Requests merged into one model call must each get the answer of their own image.
    answered = [r.json()["predictions"][0]["top"][0]["index"] for r in responses]
    assert answered == expected.tolist()


def test_raw_multipart_and_json_batch_give_the_same_probabilities_as_the_model(
    served: RunningServer, digits_bundle: Path
) -> None:
    data = bundles.digits()
    images = data.images[data.test[:3]]
    expected = in_process_probabilities(digits_bundle, images)
    pngs = [bundles.png_bytes(image) for image in images]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        raw = [client.post("/predict", content=p, params={"top_k": 10}).json() for p in pngs]
        multipart = client.post(
            "/predict",
            files=[("files", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)],
            params={"top_k": 10},
        ).json()
        batch = client.post(
            "/predict",
            json={"images": [base64.b64encode(p).decode() for p in pngs]},
            params={"top_k": 10},
        ).json()
    assert [p["image"] for p in multipart["predictions"]] == ["0.png", "1.png", "2.png"]
    assert [p["image"] for p in batch["predictions"]] == ["0", "1", "2"]
    for row, single, from_form, from_json in zip(
        expected, raw, multipart["predictions"], batch["predictions"], strict=True
    ):
        for answer in (single["predictions"][0], from_form, from_json):
            probabilities = np.zeros(10)
            for guess in answer["top"]:
                probabilities[guess["index"]] = guess["probability"]
                assert guess["label"] == bundles.DIGIT_LABELS[guess["index"]]
            # Softmax applied exactly once: the served probabilities are the model's.
            np.testing.assert_allclose(probabilities, row, atol=1e-5)
            assert probabilities.sum() == pytest.approx(1.0)
            assert [g["probability"] for g in answer["top"]] == sorted(probabilities, reverse=True)


def test_top_k_defaults_to_five_and_is_capped_at_the_number_of_classes(
    served: RunningServer,
) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        default = client.post("/predict", content=digit_png(0)).json()
        capped = client.post("/predict", content=digit_png(0), params={"top_k": 50}).json()
    assert len(default["predictions"][0]["top"]) == 5
    assert len(capped["predictions"][0]["top"]) == 10


def test_version_openapi_and_unknown_paths_carry_the_stamp(
    served: RunningServer, digits_bundle: Path
) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        version = client.get("/version")
        schema = client.get("/openapi.json")
        missing = client.get("/nowhere")
    assert_stamped(version, digits_bundle)
    assert version.json()["labels"] == bundles.DIGIT_LABELS
    assert version.json()["input"] == {"height": 8, "width": 8, "channels": 1}
    assert schema.status_code == 200
    content = schema.json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/*"} <= set(content)
    assert missing.status_code == 404
    assert_stamped(missing, digits_bundle)


def test_health_is_not_ready_until_the_model_is_loaded_and_warmed_up(digits_bundle: Path) -> None:
    loaded = threading.Event()
    release = threading.Event()

    def hold_before_warm_up() -> None:
        loaded.set()
        release.wait(timeout=60)

    app = create_app(read_bundle(digits_bundle), on_loaded=hold_before_warm_up)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = client.get("/health")
        assert first.status_code == 503  # answered at once, while the model loads
        assert loaded.wait(timeout=60)
        held = client.get("/health")
        assert held.status_code == 503
        assert held.json()["status"] == "loading"
        refused = client.post("/predict", content=digit_png(0))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert client.get("/version").status_code == 200  # the stamp is known before the model
        release.set()
        deadline = time.monotonic() + 60
        while (ready := client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.json()["status"] == "ready"
        assert ready.json()["warmup_ms"] > 0
        assert client.post("/predict", content=digit_png(0)).status_code == 200


def test_a_model_that_breaks_the_contract_is_reported_by_health_not_served(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="logits")(x)
    folder = bundles.save_bundle(
        tmp_path / "b", keras.Model(inputs, outputs), bundles.DIGIT_LABELS, "digits", 1, "c0ffee"
    )
    app = create_app(read_bundle(folder))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 60
        while (health := client.get("/health")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert "the outputs of a probe batch already sum to 1" in health.json()["error"]
        assert client.post("/predict", content=digit_png(0)).status_code == 503
