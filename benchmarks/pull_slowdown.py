"""Time a pull from moto's S3 through a proxy, clean and with 5% of answers ``503 SlowDown``.

Puts ``--objects`` small objects in a bucket of a local moto server, then pulls them into a fresh
cache three times through ``tests/data/slowdown.py``'s proxy: clean, with ``--share`` of the
requests answered SlowDown, and clean again (the clean time is the mean of the two, so a change
in machine load during the run does not pass for a retry cost). The proxy also counts requests:
one listing page per 1,000 objects and one GET per object, no HEAD.

Prints ONE JSON line; target: throttled / clean <= 1.5.

    PYTHONPATH=$PWD python benchmarks/pull_slowdown.py                  # 2,000 objects
    PYTHONPATH=$PWD python benchmarks/pull_slowdown.py --objects 300    # a quick trial
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skillmaker.adapters.store import open_store
from skillmaker.data.pull import pull
from tests.data.slowdown import SlowDownProxy
from tests.helpers import start_moto

BUCKET = "skillmaker-pull-bench"
TARGET_RATIO = 1.5


def _pull_seconds(upstream: str, share: float, workers: int) -> tuple[float, dict[str, int], int]:
    with (
        SlowDownProxy(upstream, share=share, seed=1) as proxy,
        tempfile.TemporaryDirectory() as cache,
    ):
        store = open_store(f"s3://{BUCKET}/data", endpoint_url=proxy.endpoint)
        start = time.perf_counter()
        result = pull(store, Path(cache), workers=workers)
        seconds = time.perf_counter() - start
        assert len(result.objects) == len(result.fetched)
        return seconds, dict(proxy.counts), proxy.throttled


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    import boto3

    moto = start_moto()
    os.environ.update({k: v for k, v in moto.env().items() if k != "AWS_ENDPOINT_URL"})
    try:
        client = boto3.client("s3", endpoint_url=moto.endpoint)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        body = os.urandom(4096)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda n: client.put_object(Bucket=BUCKET, Key=f"data/o/{n:06d}", Body=body),
                    range(args.objects),
                )
            )
        clean1, counts, _ = _pull_seconds(moto.endpoint, 0.0, args.workers)
        throttled_s, _, throttled = _pull_seconds(moto.endpoint, args.share, args.workers)
        clean2, _, _ = _pull_seconds(moto.endpoint, 0.0, args.workers)
    finally:
        moto.stop()
    clean = (clean1 + clean2) / 2
    ratio = throttled_s / clean
    print(
        json.dumps(
            {
                "benchmark": "pull_slowdown",
                "objects": args.objects,
                "share": args.share,
                "clean_seconds": [round(clean1, 2), round(clean2, 2)],
                "throttled_seconds": round(throttled_s, 2),
                "slowdown_answers": throttled,
                "requests_clean": counts,
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "met": ratio <= TARGET_RATIO,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
