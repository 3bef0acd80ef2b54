"""The server's memory is bounded by the model, not by the pixels a client claims."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.serving.processes import serve_process
from tests.serving.test_app import in_process_probabilities

MIB = 1 << 20
SIDE = 6300  # 39.7 megapixels
# Four 16-bit 39.7-megapixel images decoded at once: the raw pixels alone are 4 x 76 MiB. The
# bound leaves room for them and the PNG decoder, never for float64 copies (4 x 303 MiB each).
PEAK_BOUND_MIB = 450


def deep_png(side: int = SIDE) -> bytes:
    """Give a valid 16-bit greyscale PNG of side x side black pixels (about 75 KiB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 2 * side)
    data = b"".join(compressor.compress(row * 100) for _ in range(side // 100))
    data += compressor.compress(row * (side % 100)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


class PeakMemory:
    """Samples a process's resident memory on a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def send_four(url: str, png: bytes) -> list[httpx.Response]:
    def send(_: int) -> httpx.Response:
        return httpx.post(f"{url}/predict", content=png, params={"top_k": 10}, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, range(4)))


@pytest.mark.slow
def test_four_deep_40_megapixel_pngs_at_once_stay_within_the_memory_bound(
    digits_bundle: Path, tmp_path: Path
) -> None:
    png = deep_png()
    assert len(png) < 100 * 1024
    expected = in_process_probabilities(digits_bundle, np.zeros((1, 8, 8, 1), np.uint8))[0]
    # Raised past the image on purpose: the decoder itself must stay bounded.
    args = ("--max-pixels", "50000000", "--max-body-mb", "1")
    with serve_process(digits_bundle, tmp_path / "server.log", args) as server:
        baseline = psutil.Process(server.process.pid).memory_info().rss
        with PeakMemory(server.process.pid) as memory:
            responses = send_four(server.url, png)
    assert [r.status_code for r in responses] == [200] * 4, responses[0].text
    for response in responses:
        probabilities = np.zeros(10)
        for guess in response.json()["predictions"][0]["top"]:
            probabilities[guess["index"]] = guess["probability"]
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    grown = (memory.peak - baseline) / MIB
    assert grown < PEAK_BOUND_MIB, f"peak memory grew by {grown:.0f} MiB"


def test_by_default_the_pixel_limit_follows_the_models_input_size(
    digits_bundle: Path, tmp_path: Path
) -> None:
    with serve_process(digits_bundle, tmp_path / "server.log") as server:
        version = httpx.get(f"{server.url}/version", timeout=30).json()
        baseline = psutil.Process(server.process.pid).memory_info().rss
        with PeakMemory(server.process.pid) as memory:
            responses = send_four(server.url, deep_png())
    # An 8x8 model gets the floor of 4 megapixels: the 39.7-megapixel image is refused unread.
    assert version["limits"]["max_pixels"] == 4_000_000
    assert [r.status_code for r in responses] == [413] * 4
    assert responses[0].json()["reason"] == "over the pixel limit"
    assert (memory.peak - baseline) / MIB < 50
