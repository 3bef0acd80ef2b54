"""Benchmark the near-duplicate index (``skillmaker.domain.hashindex``) against brute force.

In one run:

- seconds to find every pair within distance 6 and 10 among ``--sizes`` random 64-bit hashes
  (default 100,000 and 1,000,000), and the growth exponent between the two sizes
  (log(t2 / t1) / log(n2 / n1); 1 is linear, 2 quadratic);
- the same at ``--baseline-size`` hashes for the index and for a brute-force all-pairs popcount
  (numpy, exact), and their ratio;
- on a planted image set (``--pictures`` distinct pictures plus altered copies of some:
  re-encoded, resized, 5% crop, mirrored), the recall of the planted pairs and the seconds of the
  index and of the brute-force baseline, over the perceptual hashes the data stage computes.

The planted set is also run through ``imagededup``'s PHash (its own hashing and search, at the
same distance) for recall and seconds. imagededup needs torch and torchvision, which the project
does not install, so it runs in a separate environment: ``--imagededup-python PATH`` names that
environment's Python (``benchmarks/imagededup_phash.py`` runs there); without it, or where it
cannot run, the JSON says so and the brute-force exact search over the same hashes stands in.

The random-hash timings exclude planning (choosing the scheme and computing its covering, cached
per size class and distance), which is timed and reported on its own.

Prints ONE JSON line.

    PYTHONPATH=$PWD python benchmarks/dedupe_index.py --imagededup-python venv/bin/python  # full
    PYTHONPATH=$PWD python benchmarks/dedupe_index.py --sizes 20000 100000 --pictures 200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skillmaker.data.checks import check_image
from skillmaker.domain.hashindex import near_pair_array, plan, popcount

JPEG_START = bytes([0xFF, 0xD8])
RUNNER = str(Path(__file__).resolve().parent / "imagededup_phash.py")

TARGET_SECONDS_1M_D6 = 60.0
TARGET_EXPONENT = 1.3


def brute_force(values: np.ndarray, distance: int, block: int = 2048) -> np.ndarray:
    """Give every pair (i, j), i < j, within ``distance`` bits by comparing all pairs."""
    found = []
    for low in range(0, len(values), block):
        rows = values[low : low + block]
        close = popcount((rows[:, None] ^ values[None, :]).reshape(-1)).reshape(len(rows), -1)
        i, j = np.nonzero(close <= distance)
        i += low
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def _timed(work: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def _picture(seed: int, side: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((side // 8, side // 8, 1), dtype=np.uint8))
    noise = rng.integers(0, 24, pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels + noise, "RGB")


def _encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _copies(image: Image.Image) -> dict[str, Image.Image | bytes]:
    side = image.size[0]
    cut = max(1, round(side * 0.05))
    return {
        "reencoded": _encode(image, "JPEG", quality=40),
        "resized": image.resize((side * 3 // 4, side * 3 // 4), Image.Resampling.LANCZOS),
        "crop5": image.crop((cut, cut, side - cut, side - cut)),
        "mirrored": image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    }


def imagededup_pairs(
    python: str | None, folder: str, names: list[str], distance: int
) -> tuple[set[tuple[int, int]] | None, dict[str, Any]]:
    """Give the pairs imagededup's PHash finds in ``folder`` (by index in ``names``), and notes."""
    if not python:
        return None, {"ran": False, "why": "no --imagededup-python given"}
    done = subprocess.run(
        [python, RUNNER, folder, str(distance)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None, {"ran": False, "why": done.stderr.strip().splitlines()[-1:]}
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    index = {name: n for n, name in enumerate(names)}
    pairs = {
        (index[name], index[other])
        for name, others in answer["duplicates"].items()
        for other in others
    }
    return pairs, {"ran": True, "seconds": answer["seconds"]}


def planted(pictures: int, distance: int, imagededup_python: str | None) -> dict[str, Any]:
    """Give recall and seconds of the index, brute force and imagededup on a planted set."""
    hashes: list[int] = []
    flipped: list[int] = []
    names: list[str] = []
    planted_pairs: list[tuple[int, int, str]] = []
    folder = tempfile.mkdtemp(prefix="dedupe-planted-")
    hash_seconds = 0.0

    def add(data: bytes) -> int:
        nonlocal hash_seconds
        suffix = "jpg" if data.startswith(JPEG_START) else "png"
        names.append(f"{len(names):05d}.{suffix}")
        (Path(folder) / names[-1]).write_bytes(data)
        start = time.perf_counter()
        check = check_image(data, 10**8)
        hash_seconds += time.perf_counter() - start
        assert check.phash is not None and check.flipped is not None
        hashes.append(check.phash)
        flipped.append(check.flipped)
        return len(hashes) - 1

    for seed in range(pictures):
        image = _picture(seed)
        original = add(_encode(image))
        if seed % 4 == 0:
            for kind, copy in _copies(image).items():
                copy_index = add(copy if isinstance(copy, bytes) else _encode(copy))
                planted_pairs.append((original, copy_index, kind))
    # The data stage searches the hashes and, when flips are allowed, the mirrored hashes too.
    values = np.array(hashes + flipped, dtype=np.uint64)
    owner = np.concatenate([np.arange(len(hashes)), np.arange(len(hashes))])
    index_seconds, index_pairs = _timed(lambda: near_pair_array(values, distance))
    brute_seconds, brute_pairs = _timed(lambda: brute_force(values, distance))

    def recall(pairs: np.ndarray | set[tuple[int, int]]) -> dict[str, float]:
        found = {(int(owner[a]), int(owner[b])) for a, b in pairs}
        found |= {(b, a) for a, b in found}
        by_kind: dict[str, list[bool]] = {}
        for a, b, kind in planted_pairs:
            by_kind.setdefault(kind, []).append((a, b) in found)
        shares = {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())}
        hits = sum(sum(v) for v in by_kind.values())
        return {"all": round(hits / len(planted_pairs), 3), **shares}

    same = {tuple(p) for p in index_pairs.tolist()} == {tuple(p) for p in brute_pairs.tolist()}
    theirs, notes = imagededup_pairs(imagededup_python, folder, names, distance)
    shutil.rmtree(folder, ignore_errors=True)
    imagededup: dict[str, Any] = dict(notes)
    if theirs is not None:  # indices of the images themselves (imagededup has no mirrored hashes)
        imagededup["recall"] = recall(theirs)
        ours = recall(index_pairs)["all"]
        imagededup["index_recall_not_lower"] = ours >= imagededup["recall"]["all"]
    return {
        "images": len(hashes),
        "planted_pairs": len(planted_pairs),
        "distance": distance,
        "hash_seconds": round(hash_seconds, 2),
        "index_seconds": round(index_seconds, 4),
        "bruteforce_seconds": round(brute_seconds, 4),
        "recall_index": recall(index_pairs),
        "recall_bruteforce": recall(brute_pairs),
        "same_pairs_as_bruteforce": same,
        "imagededup_phash": imagededup,
    }


def random_sizes(sizes: Sequence[int], distances: Sequence[int]) -> dict[str, Any]:
    """Give seconds per size and distance over random hashes, and the growth exponents."""
    rng = np.random.default_rng(0)
    seconds: dict[str, dict[str, float]] = {}
    planning: dict[str, dict[str, float]] = {}
    for size in sizes:
        values = rng.integers(0, 2**64, size, dtype=np.uint64, endpoint=False)
        seconds[str(size)] = {}
        planning[str(size)] = {}
        for distance in distances:
            start = time.perf_counter()
            plan(size, distance)  # cached: the search below reuses it
            planning[str(size)][str(distance)] = round(time.perf_counter() - start, 3)
            start = time.perf_counter()
            near_pair_array(values, distance)
            seconds[str(size)][str(distance)] = round(time.perf_counter() - start, 3)
    exponents = {}
    if len(sizes) >= 2:
        low, high = str(sizes[0]), str(sizes[-1])
        for distance in distances:
            ratio = seconds[high][str(distance)] / max(seconds[low][str(distance)], 1e-9)
            exponents[str(distance)] = round(math.log(ratio) / math.log(sizes[-1] / sizes[0]), 3)
    schemes = {
        str(n): {
            str(d): {"parts": plan(n, d).parts, "k": plan(n, d).k, "tables": len(plan(n, d).tables)}
            for d in distances
        }
        for n in sizes
    }
    return {
        "seconds": seconds,
        "exponent": exponents,
        "planning_seconds": planning,
        "schemes": schemes,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--distances", type=int, nargs="+", default=[6, 10])
    parser.add_argument("--baseline-size", type=int, default=20_000)
    parser.add_argument("--pictures", type=int, default=400)
    parser.add_argument("--imagededup-python", help="a Python that has imagededup installed")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**64, args.baseline_size, dtype=np.uint64, endpoint=False)
    plan(len(base), 6)  # planning is timed apart, in random_sizes
    index_s, index_pairs = _timed(lambda: near_pair_array(base, 6))
    brute_s, brute_pairs = _timed(lambda: brute_force(base, 6))
    assert index_pairs.tolist() == sorted(brute_pairs.tolist())

    scale = random_sizes(args.sizes, args.distances)
    result: dict[str, Any] = {
        "benchmark": "dedupe_index",
        **scale,
        "baseline": {
            "hashes": args.baseline_size,
            "distance": 6,
            "index_seconds": round(index_s, 4),
            "bruteforce_seconds": round(brute_s, 4),
            "speedup": round(brute_s / max(index_s, 1e-9), 1),
        },
        "planted": planted(args.pictures, 6, args.imagededup_python),
        "baseline_method": "brute-force exact popcount over all pairs",
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    million = scale["seconds"].get("1000000", {}).get("6")
    result["targets"] = {
        "seconds_1m_d6": TARGET_SECONDS_1M_D6,
        "exponent": TARGET_EXPONENT,
        "met_seconds": None if million is None else million < TARGET_SECONDS_1M_D6,
        "met_exponent": {d: e <= TARGET_EXPONENT for d, e in scale["exponent"].items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
