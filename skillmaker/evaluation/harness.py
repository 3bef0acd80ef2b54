"""The test harness: candidate and baseline served side by side, measured on the same images.

Both models run behind the real inference server (started by a ``ServerLauncher``) and receive the
same images over HTTP in alternating rounds at a fixed concurrency after a warm-up, so the
comparison is fair. Every answer's stamps are checked against the versions each server was started
with. ``metrics.json`` and the failure gallery are written only when the whole evaluation succeeded.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from skillmaker.data.images import decode
from skillmaker.domain import metrics
from skillmaker.domain.paired import round_bounds
from skillmaker.errors import UserError
from skillmaker.evaluation.client import Answer, predict_one, stamp_problems, version
from skillmaker.evaluation.gradcam import heatmap_fn, save_failure
from skillmaker.evaluation.launch import (
    LocalProcessLauncher,
    RunningServer,
    ServerLauncher,
    ServerSpec,
    as_spec,
)
from skillmaker.progress import Progress
from skillmaker.records import (
    METRICS,
    Failure,
    Latency,
    MetricsRecord,
    ModelResult,
    write_record,
)
from skillmaker.serving.bundle import input_size, load_model, read_bundle

CANDIDATE, BASELINE = "candidate", "baseline"
FAILURES = "failures"


class StampMismatchError(UserError):
    """A server answered with other versions than the model it was started with."""


@dataclass(frozen=True)
class TestItem:
    """A held-out image: its key in the data set, its file, and the index of its true label."""

    __test__ = False  # not a pytest test class

    key: str
    path: Path
    label: int


@dataclass
class _Measured:
    """What one server answered: one answer per test image, in item order."""

    server: RunningServer
    answers: list[Answer]
    problems: list[str]


def _read_items(items: Sequence[TestItem], labels: Sequence[str]) -> list[bytes]:
    if not items:
        raise UserError("evaluate: no test images (the test split is empty)")
    if not labels:
        raise UserError("evaluate: no labels")
    payloads: list[bytes] = []
    for item in items:
        if not 0 <= item.label < len(labels):
            raise UserError(
                f"{item.key}: label index {item.label} is not one of the {len(labels)} labels"
            )
        try:
            payloads.append(item.path.read_bytes())
        except OSError as exc:
            raise UserError(
                f"{item.key}: cannot read {item.path} ({exc.strerror or exc})"
            ) from None
    return payloads


def _check(answer: Answer, server: RunningServer, what: str, problems: list[str]) -> None:
    for problem in stamp_problems(answer, server.spec.stamp):
        problems.append(f"{server.spec.name} ({what}): {problem}")


async def _measure(
    servers: Sequence[RunningServer],
    payloads: Sequence[bytes],
    concurrency: int,
    top_k: int,
    warmup: int,
    *,
    progress: Progress | None = None,
) -> list[_Measured]:
    measured = [_Measured(s, [], []) for s in servers]
    answers: list[list[Answer | None]] = [[None] * len(payloads) for _ in servers]
    limits = httpx.Limits(max_connections=concurrency * len(servers) + 4)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        for entry in measured:
            _check(
                await version(client, entry.server.url), entry.server, "/version", entry.problems
            )
        # Warm-up: the first requests on new connections and batch shapes are not measured.
        for entry in measured:
            warm = [payloads[i % len(payloads)] for i in range(warmup)]
            for start in range(0, len(warm), concurrency):
                chunk = warm[start : start + concurrency]
                for answer in await asyncio.gather(
                    *(predict_one(client, entry.server.url, data, top_k) for data in chunk)
                ):
                    _check(answer, entry.server, "warm-up", entry.problems)
        # Alternating rounds (domain.paired.round_bounds): in each round one model answers the
        # round's images alone, then the other; the first model alternates from round to round.
        # So both are measured the same way, neither always second, and a slow spell of a shared
        # machine hits both; the gate's bootstrap resamples these rounds.

        async def turn(server: int, indices: range) -> None:
            gate = asyncio.Semaphore(concurrency)
            url = servers[server].url

            async def one(index: int) -> None:
                async with gate:
                    answers[server][index] = await predict_one(client, url, payloads[index], top_k)
                if progress is not None:
                    progress.advance()

            await asyncio.gather(*(one(index) for index in indices))

        for number, (start, stop) in enumerate(round_bounds(len(payloads))):
            order = range(len(servers)) if number % 2 == 0 else reversed(range(len(servers)))
            for server in order:
                await turn(server, range(start, stop))
    for entry, got in zip(measured, answers, strict=True):
        entry.answers = [a for a in got if a is not None]
        for index, answer in enumerate(entry.answers):
            _check(answer, entry.server, f"image {index}", entry.problems)
    return measured


def _stamp_failure(measured: Sequence[_Measured]) -> StampMismatchError | None:
    lines: list[str] = []
    total = 0
    for entry in measured:
        total += len(entry.problems)
        lines.extend(dict.fromkeys(entry.problems))  # distinct, in order
    if not total:
        return None
    shown = "\n".join(f"  {line}" for line in lines[:8])
    more = f"\n  ... and {len(lines) - 8} more" if len(lines) > 8 else ""
    return StampMismatchError(
        f"{total} answer(s) carried other versions than the model the server was started with:\n"
        f"{shown}{more}"
    )


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[-80:] or "image"


@dataclass(frozen=True)
class _TestSet:
    """The images under test and how results are computed and kept."""

    items: Sequence[TestItem]
    payloads: Sequence[bytes]
    labels: Sequence[str]
    top_k: int
    concurrency: int
    staging: Path
    max_failures: int


def _failures(
    spec: ServerSpec, test: _TestSet, predictions: Sequence[int], answers: Sequence[Answer]
) -> list[Failure]:
    """Give the misclassified images (up to the limit), saving pictures and Grad-CAM overlays."""
    wrong = [
        i
        for i, (item, p) in enumerate(zip(test.items, predictions, strict=True))
        if p >= 0 and p != item.label
    ][: test.max_failures]
    if not wrong:
        return []
    if spec.bundle is None:
        raise UserError(f"{spec.name}: Grad-CAM of failures needs the model bundle (none given)")
    bundle = read_bundle(spec.bundle, spec.env)
    model = load_model(bundle)
    height, width, channels = input_size(model)
    heat = heatmap_fn(model)
    results: list[Failure] = []
    for number, index in enumerate(wrong):
        item, predicted = test.items[index], predictions[index]
        pixels = decode(test.payloads[index], height, width, channels, max_pixels=1 << 62)
        # Grad-CAM of the class the model chose, in the model's own label order.
        own_index = bundle.labels.index(test.labels[predicted])
        cam = heat(pixels.astype("float32"), own_index)
        stem = f"{spec.name}/{number:04d}-{_slug(item.key)}"
        save_failure(
            pixels, cam, test.staging / f"{stem}.png", test.staging / f"{stem}-gradcam.png"
        )
        results.append(
            Failure(
                key=item.key,
                true=test.labels[item.label],
                predicted=test.labels[predicted],
                probability=answers[index].probabilities[0],
                image=f"{FAILURES}/{stem}.png",
                gradcam=f"{FAILURES}/{stem}-gradcam.png",
            )
        )
    return results


def _latency(answers: Sequence[Answer], concurrency: int) -> Latency:
    """Give the request latency, with the in-process model time when the server reported it."""
    result = metrics.latency([a.latency_ms for a in answers], concurrency)
    model = [a.model_ms for a in answers if a.model_ms is not None]
    if model and len(model) == len(answers):
        inner = metrics.latency(model, concurrency)
        result["model_p50"] = inner["p50"]
        result["model_p95"] = inner["p95"]
    return result


def _result(entry: _Measured, test: _TestSet) -> ModelResult:
    index_of = {label: i for i, label in enumerate(test.labels)}
    truth = [item.label for item in test.items]
    ranked = [[index_of.get(label, metrics.NO_ANSWER) for label in a.labels] for a in entry.answers]
    predictions = [
        r[0] if a.ok else metrics.NO_ANSWER for a, r in zip(entry.answers, ranked, strict=True)
    ]
    spec = entry.server.spec
    return ModelResult(
        skill_version=spec.stamp.skill_version,
        code_version=spec.stamp.code_version,
        model_hash=spec.stamp.model_hash,
        accuracy=metrics.accuracy(truth, predictions),
        top_k=test.top_k,
        top_k_accuracy=metrics.top_k_accuracy(truth, ranked, test.top_k),
        per_class=metrics.per_class(truth, predictions, test.labels),
        confusion_matrix=metrics.confusion_matrix(truth, predictions, len(test.labels)),
        latency=_latency(entry.answers, test.concurrency),
        predictions=predictions,
        failures=_failures(spec, test, predictions, entry.answers),
        errors=sum(not a.ok for a in entry.answers),
    )


def evaluate(
    candidate: ServerSpec | Path,
    baseline: ServerSpec | Path | None,
    items: Sequence[TestItem],
    labels: Sequence[str],
    run_dir: Path,
    *,
    launcher: ServerLauncher | None = None,
    concurrency: int = 4,
    top_k: int = 5,
    warmup: int = 16,
    max_failures: int = 50,
    say: Callable[[str], None] | None = None,
) -> MetricsRecord:
    """Give (and write to ``run_dir/metrics.json``) the candidate's and baseline's test results.

    ``candidate`` and ``baseline`` are bundle folders (expected to answer with their own stamps)
    or specs (a bundle or image, the environment to start it with, the stamp it must answer with).
    ``items`` are the held-out images with the index of their true label in ``labels``. The
    servers are named ``candidate`` and ``baseline`` (launchers and failure folders use the names).
    Raises ``StampMismatchError`` when any answer carries other versions than expected, and
    ``ServerStartError`` when a server does not become ready; nothing is written then.
    """
    if concurrency < 1:
        raise UserError(f"evaluate: concurrency must be at least 1 (got {concurrency})")
    tell = say or (lambda _message: None)
    payloads = _read_items(items, labels)
    top_k = max(1, min(top_k, len(labels)))
    specs = [as_spec(CANDIDATE, candidate)]
    if baseline is not None:
        specs.append(as_spec(BASELINE, baseline))
    launcher = launcher or LocalProcessLauncher(log_dir=run_dir / "logs")
    started = time.monotonic()
    tell(f"evaluate: starting {', '.join(s.name for s in specs)} model server(s)")
    with launcher.start(specs) as servers:
        tell(
            f"evaluate: servers ready in {time.monotonic() - started:.1f} s; "
            f"sending {len(items)} images to each"
        )
        progress = Progress.on("evaluate: requests", len(payloads) * len(servers), tell)
        measured = asyncio.run(
            _measure(servers, payloads, concurrency, top_k, warmup, progress=progress)
        )
    failure = _stamp_failure(measured)
    if failure is not None:
        raise failure
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".failures-", dir=run_dir))
    try:
        test = _TestSet(items, payloads, labels, top_k, concurrency, staging, max_failures)
        results = [_result(entry, test) for entry in measured]
        record = MetricsRecord(
            labels=list(labels),
            keys=[item.key for item in items],
            truth=[item.label for item in items],
            candidate=results[0],
            baseline=results[1] if len(results) > 1 else None,
        )
        target = run_dir / FAILURES
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_record(run_dir / METRICS, record)
    for name, result in zip((CANDIDATE, BASELINE), results, strict=False):
        tell(
            f"evaluate: {name} v{result['skill_version']}: accuracy {result['accuracy']:.4f}, "
            f"p95 {result['latency']['p95']:.1f} ms, {len(result['failures'])} failure(s) saved, "
            f"{result['errors']} error(s)"
        )
    return record
