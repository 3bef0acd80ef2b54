"""Rehearse the data stage at the mission's scale, from moto's S3 over HTTP.

Generates ``--images`` small pictures in ``--classes`` classes (distinct random-block pictures,
several per advert group), plants near-duplicates (re-encoded copies of pictures filed in other
groups of the same class) and bad files (empty, truncated, not an image), uploads them to a
bucket of a local moto server, and runs the real data stage (``skillmaker.data.dataset.prepare``)
followed by a tensor-cache build of the kept images. Each phase is timed by wrapping the stage's
own steps: pull, checks (decode + perceptual hash), near-duplicates, split (ledger), tensor
cache. Then 1% new images are added and the stage runs again (the second pull).

Prints ONE JSON line: seconds per phase, peak memory (this process and its workers), the second
run's seconds, and the targets (first run under 15 minutes and 4 GiB, second under 2 minutes).

    PYTHONPATH=$PWD python benchmarks/data_scale.py                    # 50,000 images, 250 classes
    PYTHONPATH=$PWD python benchmarks/data_scale.py --images 2000 --classes 50   # a quick trial
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import os
import resource
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

import skillmaker.data.dataset as stage
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.data.cache import build_cache

T = TypeVar("T")

BUCKET = "skillmaker-data-scale"
SIDE = 32
TARGET_FIRST_S = 15 * 60
TARGET_MEMORY_GIB = 4.0
TARGET_SECOND_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((SIDE // 8, SIDE // 8, 1), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_copy(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


def generate(images: int, classes: int, *, start: int = 0) -> Iterator[tuple[str, bytes]]:
    """Give (key, bytes) of the data set: 4 pictures a group, 1% near copies, 0.5% bad files."""
    per_class = max(1, images // classes)
    for n in range(start, start + images):
        label, rest = divmod(n, per_class)
        label %= classes
        key = f"class{label:03d}/ad{n // 4:07d}/{n:07d}.png"
        data = _png(n)
        if n % 100 == 37 and rest >= 8:  # a near copy of a picture of another group
            data = _jpeg_copy(_png(n - 8))
            key = key.replace(".png", "-copy.jpg")
        elif n % 200 == 11:
            data = [b"", data[: len(data) // 2], b"not an image"][n % 3]
        yield key, data


def upload(client: Any, items: Iterator[tuple[str, bytes]], workers: int = 16) -> int:
    """Give how many objects were put into the bucket."""
    with ThreadPoolExecutor(workers) as pool:
        done = list(
            pool.map(
                lambda item: client.put_object(Bucket=BUCKET, Key=f"data/{item[0]}", Body=item[1]),
                items,
            )
        )
    return len(done)


class Phases:
    """Seconds spent in each wrapped step of the stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, function: Callable[..., T]) -> Callable[..., T]:
        """Give ``function`` timed under ``name``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed


@contextmanager
def timed_stage(phases: Phases) -> Iterator[None]:
    """Time the data stage's steps while inside."""
    steps = {
        "pull": "pull",
        "checks": "_check",
        "near_duplicates": "_near_copies",
        "split": "update_ledger",
    }
    originals = {attribute: getattr(stage, attribute) for attribute in steps.values()}
    for name, attribute in steps.items():
        setattr(stage, attribute, phases.wrap(name, originals[attribute]))
    try:
        yield
    finally:
        for attribute, original in originals.items():
            setattr(stage, attribute, original)


def skill(root: Path, version: int) -> SkillContext:
    """Give the context of a skill whose data sit in the benchmark's bucket."""
    repo = root / "repo"
    repo.mkdir(exist_ok=True)
    config = {
        "name": "scale",
        "title": "Scale",
        "ticket": "SCALE-1",
        "owner": "owner@example.com",
        "data": {"source": f"s3://{BUCKET}/data", "min_examples_per_class": 5},
        "image": {"height": SIDE, "width": SIDE, "channels": 3},
        "deploy": {"artifacts": (root / "artifacts").as_uri(), "infra_repo": "infra"},
    }
    (repo / "skill.json").write_text(json.dumps(config), encoding="utf-8")
    ctx = load_skill(repo, out=io.StringIO())
    ctx.set_current_run(RunPointer(version, "0123abc"))
    return ctx


def run_stage(ctx: SkillContext, phases: Phases, workers: int) -> dict[str, Any]:
    """Give what one run of the data stage and the cache build did."""
    start = time.perf_counter()
    with timed_stage(phases):
        prepared = stage.prepare(ctx, workers=workers)
    items = prepared.dataset["items"]
    raw = ctx.workspace.raw_cache
    cache_start = time.perf_counter()
    build_cache(
        [(i["sha256"], raw / i["path"]) for i in items],
        ctx.workspace.tensor_cache,
        height=SIDE,
        width=SIDE,
        channels=3,
        max_pixels=ctx.config.data.max_pixels,
        workers=workers,
    )
    phases.seconds["tensor_cache"] = time.perf_counter() - cache_start
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "phases": {k: round(v, 2) for k, v in phases.seconds.items()},
        "kept_images": len(items),
        "classes": len(prepared.dataset["labels"]),
        "quarantined": len(prepared.audit["quarantined"]),
        "duplicate_groups": len(prepared.audit["duplicate_groups"]),
    }


def _peak_gib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024 / 1024, 3)  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> None:
    """Run the rehearsal and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=250)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        upload_start = time.perf_counter()
        uploaded = upload(client, generate(args.images, args.classes))
        upload_s = time.perf_counter() - upload_start
        with tempfile.TemporaryDirectory(prefix="data-scale-") as folder:
            root = Path(folder)
            first = run_stage(skill(root, 1), Phases(), args.workers)
            peak = _peak_gib()
            more = max(1, args.images // 100)
            upload(client, generate(more, args.classes, start=args.images))
            second = run_stage(skill(root, 2), Phases(), args.workers)
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "benchmark": "data_scale",
                "images": uploaded,
                "classes": args.classes,
                "upload_seconds": round(upload_s, 2),
                "first": first,
                "peak_memory_gib": peak,
                "second_after_1pct_new": second,
                "targets": {
                    "first_s": TARGET_FIRST_S,
                    "memory_gib": TARGET_MEMORY_GIB,
                    "second_s": TARGET_SECOND_S,
                    "met_first": first["seconds"] < TARGET_FIRST_S,
                    "met_memory": peak < TARGET_MEMORY_GIB,
                    "met_second": second["seconds"] < TARGET_SECOND_S,
                },
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
