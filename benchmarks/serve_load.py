"""Load on the served model at 1, 8 and 64 clients: /predict, v2 infer, and in-process; one JSON line.

A closed-loop generator (each of N clients sends its next request as soon as the last one is
answered, the model of locust's users without think time) drives ``skillmaker serve`` (a local
process, as the harness starts it) serving ``small_cnn`` at 128x128x3. Every request carries the
same 128x128 JPEG: ``/predict`` as the raw body, v2 ``infer`` as a BYTES tensor in the binary
tensor data extension, as ``tritonclient`` sends it. The baseline, measured in the same run, is
in-process prediction at the same concurrency: N threads that decode the JPEG and submit it to the
same ``BatchingPredictor`` the server uses. Ratios are HTTP throughput over in-process throughput
(1.0 means the server costs nothing) and HTTP p50 over in-process p50.

    PYTHONPATH=. python benchmarks/serve_load.py [--requests 600] [--levels 1,8,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import keras
import numpy as np

from benchmarks.serve_latency import CLASSES, SIZE, photo, small_cnn
from skillmaker.data.images import decode
from skillmaker.evaluation.launch import LocalProcessLauncher, ServerSpec
from skillmaker.serving.bundle import write_bundle
from skillmaker.serving.predictor import BatchingPredictor, model_predict_fn
from skillmaker.serving.v2 import HEADER_LENGTH, INPUT_FILES

MAX_BATCH = 64


def v2_body(image: bytes) -> tuple[bytes, dict[str, str]]:
    """Give the body and headers of a v2 infer request holding one encoded image, in binary."""
    element = struct.pack("<I", len(image)) + image
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": INPUT_FILES,
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(element)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {HEADER_LENGTH: str(len(header)), "content-type": "application/octet-stream"}
    return header + element, headers


def summary(latencies_s: list[float], elapsed_s: float) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(latencies_s) * 1000.0, [50, 99])
    return {
        "requests_per_s": round(len(latencies_s) / elapsed_s, 1),
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
    }


async def over_http(
    url: str, path: str, body: bytes, headers: dict[str, str], clients: int, requests: int
) -> dict[str, float]:
    """Give throughput and latency of ``requests`` posts spread over ``clients`` closed loops."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        latencies: list[float] = []

        async def user(count: int, record: bool) -> None:
            for _ in range(count):
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                response.raise_for_status()
                if record:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(user(2, False) for _ in range(clients)))  # connect and warm up
        each = max(1, requests // clients)
        started = time.perf_counter()
        await asyncio.gather(*(user(each, True) for _ in range(clients)))
        return summary(latencies, time.perf_counter() - started)


def in_process(
    predictor: BatchingPredictor, image: bytes, clients: int, requests: int
) -> dict[str, float]:
    """Give throughput and latency of decode + predict from ``clients`` threads, no HTTP."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        started = time.perf_counter()
        pixels = decode(image, *SIZE, max_pixels=40_000_000)
        predictor.submit(pixels[None].astype(np.float32)).result()
        with lock:
            latencies.append(time.perf_counter() - started)

    def user(count: int) -> None:
        for _ in range(count):
            one()

    each = max(1, requests // clients)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: one(), range(clients)))  # warm up
        latencies.clear()
        started = time.perf_counter()
        for future in [pool.submit(user, each) for _ in range(clients)]:
            future.result()
        return summary(latencies, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="per level and path")
    parser.add_argument("--levels", default="1,8,64", help="concurrency levels, comma-separated")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    keras.utils.set_random_seed(0)
    image = photo()
    v2, v2_headers = v2_body(image)
    raw = {"content-type": "image/jpeg"}
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "bundle"
        model = small_cnn()
        labels = [f"class-{i}" for i in range(CLASSES)]
        write_bundle(bundle, model, labels, skill="bench", skill_version=1, code_version="bench")
        predictor = BatchingPredictor(model_predict_fn(model), MAX_BATCH)
        try:
            baseline = {c: in_process(predictor, image, c, args.requests) for c in levels}
        finally:
            predictor.close()
        launcher = LocalProcessLauncher(
            log_dir=Path(folder) / "logs",
            extra_args=("--max-batch", str(MAX_BATCH), "--max-concurrency", "256"),
        )
        with launcher.start([ServerSpec.from_bundle("bench", bundle)]) as servers:
            url = servers[0].url
            for clients in levels:
                predict = asyncio.run(
                    over_http(url, "/predict", image, raw, clients, args.requests)
                )
                infer = asyncio.run(
                    over_http(url, "/v2/models/bench/infer", v2, v2_headers, clients, args.requests)
                )
                local = baseline[clients]
                results[str(clients)] = {
                    "predict": predict,
                    "v2_infer": infer,
                    "in_process": local,
                    "throughput_ratio_predict": round(
                        predict["requests_per_s"] / local["requests_per_s"], 3
                    ),
                    "throughput_ratio_v2": round(
                        infer["requests_per_s"] / local["requests_per_s"], 3
                    ),
                    "p50_ratio_predict": round(predict["p50_ms"] / local["p50_ms"], 3),
                    "p50_ratio_v2": round(infer["p50_ms"] / local["p50_ms"], 3),
                }
    print(
        json.dumps(
            {
                "benchmark": "serve_load",
                "model": "small_cnn",
                "input": list(SIZE),
                "requests_per_level": args.requests,
                "generator": "closed-loop httpx clients",
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "levels": results,
            }
        )
    )


if __name__ == "__main__":
    main()
