"""How often the gate errs: false passes of real regressions and false rejections of equal models.

Prints one JSON line. Two parts:

Simulated paired predictions (cheap, the gate's own rule functions on made-up results), at
n = 300, 1,000 and 5,000 test images, 10 balanced classes, baseline accuracy 97% and models that
disagree on 3% of the images (the demo's figures):

* ``accuracy``: the false-pass rate of a true regression of twice the tolerance (-2 points at the
  default 1-point tolerance) and the false-reject rate of two equally good models (rejected or
  inconclusive: either blocks the deploy). ``demonstrable`` says whether the test set can show the
  tolerance at all (``domain.paired.demonstrable_tolerance``); the targets (both <= 5%) apply there.
* ``class_recall``: the same for the per-class rule, the regression being one class whose recall
  falls by twice ``max_class_drop`` (10 points at the default 5); ``demonstrable`` says whether
  that class has the test images to show such a drop (normal approximation of McNemar's power
  after Holm), and ``collapse_detected`` is how often a class losing every image is rejected.

Real latency evaluations (slow): one small_cnn served by two local processes, each behind a small
proxy in this process, measured with the evaluation harness (alternating rounds after warm-up) and
judged by the gate's latency rule at a 5% tolerance. A/A: both proxies pass answers through; the
target is at most 1 rejection in 10. Slow: the candidate's proxy holds each answer 30% longer than
it took behind the proxy (server and proxy hop; the client's own share is not slowed, so the
end-to-end ratio is a little under 1.3); the target is at least 9 detections in 10.

    PYTHONPATH=. python benchmarks/gate_noise.py                  # full: 1,000 trials, 10+10 evaluations
    PYTHONPATH=. python benchmarks/gate_noise.py --evaluations 2  # latency part at reduced count
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, cast

import numpy as np

from skillmaker.config.model import GateConfig
from skillmaker.domain.gate import accuracy_rule, latency_rule
from skillmaker.domain.gate_class import class_recall_rule
from skillmaker.domain.paired import demonstrable_tolerance
from skillmaker.domain.records import ModelResult

CLASSES = 10
ACCURACY = 0.97
DISAGREEMENT = 0.03
SIZES = (300, 1000, 5000)


def _paired(
    rng: np.random.Generator, n: int, only_cand: float, only_base: float, both_wrong: float
) -> tuple[list[int], list[int], list[int]]:
    """Give truth and two models' predictions with the given shares of each kind of image."""
    truth = [i % CLASSES for i in range(n)]
    kinds = rng.choice(
        4, size=n, p=[1 - only_cand - only_base - both_wrong, only_cand, only_base, both_wrong]
    )
    wrong = [(t + 1) % CLASSES for t in truth]
    cand = [wrong[i] if k in (2, 3) else truth[i] for i, k in enumerate(kinds)]
    base = [wrong[i] if k in (1, 3) else truth[i] for i, k in enumerate(kinds)]
    return truth, cand, base


def _result(predictions: list[int]) -> ModelResult:
    return cast(ModelResult, {"predictions": predictions})


def _rates(verdicts: Sequence[str]) -> dict[str, float]:
    total = len(verdicts)
    return {v: round(verdicts.count(v) / total, 4) for v in ("passed", "rejected", "inconclusive")}


def simulate_accuracy(
    rng: np.random.Generator, n: int, trials: int, gate: GateConfig
) -> dict[str, Any]:
    """Give the accuracy rule's verdict rates for equal models and for a 2x-tolerance regression."""
    tol = gate.accuracy_tolerance
    both_wrong = 1 - ACCURACY - DISAGREEMENT / 2
    equal, worse = [], []
    for _ in range(trials):
        truth, cand, base = _paired(rng, n, DISAGREEMENT / 2, DISAGREEMENT / 2, both_wrong)
        equal.append(accuracy_rule(truth, _result(cand), _result(base), gate).verdict)
        # Candidate worse by 2 x tolerance: the extra share of images only the baseline gets right.
        truth, cand, base = _paired(
            rng, n, DISAGREEMENT / 2 - tol, DISAGREEMENT / 2 + tol, both_wrong
        )
        worse.append(accuracy_rule(truth, _result(cand), _result(base), gate).verdict)
    smallest = demonstrable_tolerance(n, DISAGREEMENT)
    equal_rates, worse_rates = _rates(equal), _rates(worse)
    return {
        "n": n,
        "demonstrable": smallest <= tol,
        "smallest_tolerance": round(smallest, 4),
        "false_pass_of_2x_regression": worse_rates["passed"],
        "false_reject_of_equal": round(1 - equal_rates["passed"], 4),
        "equal": equal_rates,
        "regression": worse_rates,
    }


def simulate_classes(
    rng: np.random.Generator, n: int, trials: int, gate: GateConfig
) -> dict[str, Any]:
    """Give the per-class rule's rates for equal models and one class dropping 2 x max_class_drop."""
    labels = [str(i) for i in range(CLASSES)]
    both_wrong = 1 - ACCURACY - DISAGREEMENT / 2
    drop = 2 * gate.max_class_drop
    equal, worse, collapsed = [], [], []
    for _ in range(trials):
        truth, cand, base = _paired(rng, n, DISAGREEMENT / 2, DISAGREEMENT / 2, both_wrong)
        equal.append(class_recall_rule(truth, cand, base, labels, gate).verdict)
        # Class 0 loses ``drop`` of its recall: that share of its images the candidate gets wrong.
        lost = [i for i, t in enumerate(truth) if t == 0 and cand[i] == t and base[i] == t]
        chosen = rng.choice(len(lost), size=round(drop * (n // CLASSES)), replace=False)
        broken = list(cand)
        for index in chosen:
            broken[lost[index]] = 1
        worse.append(class_recall_rule(truth, broken, base, labels, gate).verdict)
        # A real collapse: the candidate gets no image of class 0 right.
        gone = [1 if t == 0 else c for t, c in zip(truth, cand, strict=True)]
        collapsed.append(class_recall_rule(truth, gone, base, labels, gate).verdict)
    equal_rates, worse_rates = _rates(equal), _rates(worse)
    # Normal approximation of McNemar's power for the dropping class after Holm's strictest step.
    support = n // CLASSES
    z = NormalDist().inv_cdf(1 - gate.significance / (2 * CLASSES)) + NormalDist().inv_cdf(0.95)
    shift = drop * math.sqrt(support / (DISAGREEMENT + drop))
    return {
        "n": n,
        "per_class": support,
        "demonstrable": shift >= z,
        "collapse_detected": _rates(collapsed)["rejected"],
        "false_pass_of_2x_drop": worse_rates["passed"],
        "false_reject_of_equal": round(equal_rates["rejected"], 4),
        "equal": equal_rates,
        "regression": worse_rates,
    }


# ----------------------------------------------------------------------------- latency, real


@contextlib.contextmanager
def _proxy(upstream: str, slowdown: float) -> Iterator[str]:
    """Give the URL of a proxy to ``upstream`` that holds answers ``slowdown`` x longer."""
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from skillmaker.evaluation.launch import free_port

    client = httpx.AsyncClient(base_url=upstream, timeout=120)
    dropped = {"content-length", "transfer-encoding", "content-encoding", "connection"}

    async def forward(request: Request) -> Response:
        started = time.perf_counter()  # from the request's arrival: the server and this hop
        body = await request.body()
        answer = await client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=body,
            headers={"content-type": request.headers.get("content-type", "")},
        )
        if slowdown and request.url.path == "/predict":
            await asyncio.sleep((time.perf_counter() - started) * slowdown)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in dropped}
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def latency_runs(evaluations: int, images: int) -> dict[str, Any]:
    """Give the latency rule's A/A rejection and 30%-slower detection over real evaluations."""
    import keras

    from benchmarks.serve_latency import CLASSES as LABEL_COUNT
    from benchmarks.serve_latency import photo, small_cnn
    from skillmaker.domain.paired import p95_ratio_interval
    from skillmaker.evaluation.harness import TestItem, evaluate
    from skillmaker.evaluation.launch import ExistingServers, LocalProcessLauncher, ServerSpec
    from skillmaker.serving.bundle import write_bundle

    gate = GateConfig(latency_tolerance=0.05)
    keras.utils.set_random_seed(0)
    labels = [f"class-{i}" for i in range(LABEL_COUNT)]
    out: dict[str, Any] = {"evaluations": evaluations, "images": images, "tolerance": 0.05}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        bundle = root / "bundle"
        write_bundle(bundle, small_cnn(), labels, skill="bench", skill_version=1, code_version="b")
        picture = root / "photo.jpg"
        picture.write_bytes(photo())
        items = [TestItem(f"img-{i}", picture, i % LABEL_COUNT) for i in range(images)]
        specs = [ServerSpec.from_bundle(n, bundle) for n in ("candidate", "baseline")]
        with LocalProcessLauncher(log_dir=root / "logs").start(specs) as servers:
            urls = {s.spec.name: s.url for s in servers}
            for case, slowdown in (("aa", 0.0), ("slow", 0.3)):
                verdicts, ratios = [], []
                for run in range(evaluations):
                    with (
                        _proxy(urls["candidate"], slowdown) as cand_url,
                        _proxy(urls["baseline"], 0.0) as base_url,
                    ):
                        launcher = ExistingServers({"candidate": cand_url, "baseline": base_url})
                        record = evaluate(
                            specs[0], specs[1], items, labels, root / f"{case}-{run}",
                            launcher=launcher, concurrency=1, max_failures=0,
                        )  # fmt: skip
                    assert record["baseline"] is not None
                    rule = latency_rule(record["candidate"], record["baseline"], gate)
                    verdicts.append(rule.verdict)
                    ratios.append(
                        round(
                            p95_ratio_interval(
                                record["candidate"]["latency"]["samples_ms"],
                                record["baseline"]["latency"]["samples_ms"],
                            )[0],
                            3,
                        )
                    )
                rejected = verdicts.count("rejected")
                out[case] = {"rejected": rejected, "of": evaluations, "p95_ratios": ratios}
    out["aa_rejection_rate"] = out["aa"]["rejected"] / evaluations
    out["slow_detection_rate"] = out["slow"]["rejected"] / evaluations
    out["aa_target_met"] = out["aa_rejection_rate"] <= 0.1
    out["slow_target_met"] = out["slow_detection_rate"] >= 0.9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000, help="simulated trials per case")
    parser.add_argument("--class-trials", type=int, default=400, help="per-class trials per case")
    parser.add_argument("--evaluations", type=int, default=10, help="real latency evaluations")
    parser.add_argument("--images", type=int, default=200, help="test images per evaluation")
    args = parser.parse_args()
    gate = GateConfig(accuracy_tolerance=0.01, max_class_drop=0.05, significance=0.05)
    rng = np.random.default_rng(7)
    started = time.monotonic()
    accuracy = [simulate_accuracy(rng, n, args.trials, gate) for n in SIZES]
    classes = [simulate_classes(rng, n, args.class_trials, gate) for n in SIZES]
    result: dict[str, Any] = {
        "benchmark": "gate_noise",
        "tolerance": gate.accuracy_tolerance,
        "max_class_drop": gate.max_class_drop,
        "disagreement": DISAGREEMENT,
        "accuracy": accuracy,
        "class_recall": classes,
        "accuracy_targets_met": all(
            a["false_pass_of_2x_regression"] <= 0.05 and a["false_reject_of_equal"] <= 0.05
            for a in accuracy
            if a["demonstrable"]
        ),
        "class_recall_targets_met": all(
            c["false_pass_of_2x_drop"] <= 0.05 and c["false_reject_of_equal"] <= 0.05
            for c in classes
            if c["demonstrable"]
        ),
        "simulated_s": round(time.monotonic() - started, 1),
    }
    if args.evaluations > 0:
        result["latency"] = latency_runs(args.evaluations, args.images)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
