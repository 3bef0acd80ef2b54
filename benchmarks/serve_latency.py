"""Latency of one image over HTTP against the same model's in-process prediction; one JSON line.

The model is ``small_cnn`` at the config defaults (128x128x3, Conv-ReLU-MaxPool blocks of 32 and 64
filters, a dense head of 64 units). Both paths decode the same 128x128 JPEG and run the same
predictor (``predict_on_batch`` + softmax); the HTTP path adds the server (``skillmaker serve`` as
a local process, as the harness starts it) and the client. Target: p50 ratio <= 2. Throughput is
measured over HTTP with 8 requests in flight.

    PYTHONPATH=. python benchmarks/serve_latency.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from pathlib import Path

import httpx
import keras
import numpy as np
from PIL import Image

from skillmaker.data.images import decode
from skillmaker.evaluation.launch import LocalProcessLauncher, ServerSpec
from skillmaker.serving.bundle import write_bundle
from skillmaker.serving.predictor import model_predict_fn

SIZE = (128, 128, 3)
CLASSES = 10
WARMUP = 30


def small_cnn(filters: tuple[int, ...] = (32, 64), dense: int = 64) -> keras.Model:
    """Give small_cnn as the config defaults describe it, following the bundle contract."""
    inputs = keras.Input(SIZE)
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    for count in filters:
        x = keras.layers.Conv2D(count, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Activation("linear", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(x))


def photo() -> bytes:
    """Give a 128x128 JPEG with smooth shapes and noise, like a small photo."""
    y, x = np.mgrid[0:128, 0:128]
    rng = np.random.default_rng(0)
    pixels = np.stack([x * 2, y * 2, (x + y)], axis=-1) + rng.normal(0, 12, (128, 128, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(samples, [50, 99])
    return float(p50), float(p99)


def in_process(model: keras.Model, image: bytes, requests: int) -> tuple[list[float], list[float]]:
    """Give per-call milliseconds of decode + predict, and of predict alone."""
    predict = model_predict_fn(model)
    full, model_only = [], []
    for round_ in range(WARMUP + requests):
        started = time.perf_counter()
        pixels = decode(image, *SIZE, max_pixels=40_000_000)
        batch = pixels[None].astype(np.float32)
        middle = time.perf_counter()
        predict(batch)
        ended = time.perf_counter()
        if round_ >= WARMUP:
            full.append((ended - started) * 1000.0)
            model_only.append((ended - middle) * 1000.0)
    return full, model_only


def over_http(url: str, image: bytes, requests: int) -> list[float]:
    """Give per-request milliseconds of one image posted to /predict, one request at a time."""
    samples = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for round_ in range(WARMUP + requests):
            started = time.perf_counter()
            response = client.post("/predict", content=image)
            elapsed = (time.perf_counter() - started) * 1000.0
            response.raise_for_status()
            if round_ >= WARMUP:
                samples.append(elapsed)
    return samples


async def throughput(url: str, image: bytes, requests: int, concurrency: int) -> float:
    """Give images per second answered over HTTP with ``concurrency`` requests in flight."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                (await client.post("/predict", content=image)).raise_for_status()

        await asyncio.gather(*(worker(WARMUP // concurrency + 1) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return (requests // concurrency) * concurrency / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    image = photo()
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "bundle"
        model = small_cnn()
        labels = [f"class-{i}" for i in range(CLASSES)]
        write_bundle(bundle, model, labels, skill="bench", skill_version=1, code_version="bench")
        local, model_only = in_process(model, image, args.requests)
        launcher = LocalProcessLauncher(log_dir=Path(folder) / "logs")
        with launcher.start([ServerSpec.from_bundle("bench", bundle)]) as servers:
            url = servers[0].url
            remote = over_http(url, image, args.requests)
            images_per_s = asyncio.run(throughput(url, image, args.requests, 8))
    http_p50, http_p99 = percentiles(remote)
    local_p50, local_p99 = percentiles(local)
    print(
        json.dumps(
            {
                "benchmark": "serve_latency",
                "model": "small_cnn",
                "input": list(SIZE),
                "requests": args.requests,
                "http_p50_ms": round(http_p50, 3),
                "http_p99_ms": round(http_p99, 3),
                "inprocess_p50_ms": round(local_p50, 3),
                "inprocess_p99_ms": round(local_p99, 3),
                "inprocess_model_only_p50_ms": round(percentiles(model_only)[0], 3),
                "ratio_p50": round(http_p50 / local_p50, 3),
                "ratio_p99": round(http_p99 / local_p99, 3),
                "target_ratio_p50": 2.0,
                "throughput_c8_images_per_s": round(images_per_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
