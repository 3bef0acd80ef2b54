"""Benchmark the tensor cache and input pipeline against the naive loader seed projects used.

In one run: writes ``--images`` JPEGs of 500x500 (structured random content) to a temporary
folder, then measures

- images/s delivered by a naive loader (decode every file every epoch in a Python generator,
  one worker) and by skillmaker's pipeline (batches requested as Keras requests them, steady
  state from the second epoch);
- the training epoch time of a small CNN fed by the pipeline and fed synthetic in-memory batches
  of the same shape (efficiency = synthetic / pipeline);
- the time to build the cache with the process pool and with one process;
- the peak memory (RSS) of a cache build plus one training epoch at N and at 4N images, each in a
  fresh process,

and prints ONE JSON line with the figures, the ratios and whether each target is met.

    PYTHONPATH=$PWD python benchmarks/input_pipeline.py            # the full run (2,000 images)
    PYTHONPATH=$PWD python benchmarks/input_pipeline.py --images 200   # a quick trial
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from skillmaker.data.cache import TensorCache, build_cache
from skillmaker.data.images import decode_file

# _lazy_imports_note: Keras (and TensorFlow under it) is imported inside the functions that use
# it. The cache's worker processes import this script as their main module; importing Keras
# there would cost each worker seconds and hundreds of MiB and distort the build timings.

SOURCE_SIDE = 500
SIDE = 128
CHANNELS = 3
CLASSES = 10
MAX_PIXELS = 40_000_000
SEED = 0

TARGET_DELIVERY = 50.0
TARGET_EFFICIENCY = 0.95
TARGET_BUILD_SPEEDUP = 1.6
TARGET_MEMORY_GROWTH = 1.5


# ---------------------------------------------------------------------------------------------
# Data


def _write_images(job: tuple[Path, int, int]) -> list[tuple[Path, int]]:
    """Give (file, label) of JPEGs number ``start`` .. ``stop - 1`` written into ``folder``."""
    folder, start, stop = job
    written = []
    noise = np.random.default_rng(SEED).normal(0, 10, (SOURCE_SIDE + 64, SOURCE_SIDE + 64, 3))
    for number in range(start, stop):
        rng = np.random.default_rng([SEED, number])
        label = number % CLASSES
        # A smooth background (a coarse colour grid blown up), shapes whose kind and count depend
        # on the class, and sensor-like noise: JPEGs of realistic size and decoding cost.
        grid = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), mode="RGB")
        image = grid.resize((SOURCE_SIDE, SOURCE_SIDE), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(2 + label % 4):
            x, y = rng.integers(0, SOURCE_SIDE - 120, 2)
            w, h = rng.integers(40, 120, 2)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            box = (int(x), int(y), int(x + w), int(y + h))
            if label < CLASSES // 2:
                draw.ellipse(box, fill=colour)
            else:
                draw.rectangle(box, fill=colour)
        dy, dx = rng.integers(0, 64, 2)
        pixels = (
            np.asarray(image, dtype=np.float32)
            + noise[dy : dy + SOURCE_SIDE, dx : dx + SOURCE_SIDE]
        )
        path = folder / f"{number:06d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        written.append((path, label))
    return written


def write_images(folder: Path, start: int, stop: int) -> list[tuple[Path, int]]:
    """Give (file, label) of JPEGs ``start`` .. ``stop - 1``, written by a process pool."""
    folder.mkdir(parents=True, exist_ok=True)
    step = 50
    jobs = [(folder, low, min(low + step, stop)) for low in range(start, stop, step)]
    with ProcessPoolExecutor() as pool:
        return [item for part in pool.map(_write_images, jobs) for item in part]


def content_hashes(files: Sequence[Path]) -> list[str]:
    """Give the sha256 of each file's bytes."""
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]


# ---------------------------------------------------------------------------------------------
# The naive loader (what seed projects did; not part of skillmaker)


def naive_batches(
    files: Sequence[Path], labels: np.ndarray, batch_size: int, epoch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Give batches decoded from the image files, every file decoded again every epoch."""
    order = np.random.default_rng([SEED, epoch]).permutation(len(files))
    for low in range(0, len(files), batch_size):
        picks = order[low : low + batch_size]
        images = [decode_file(files[i], SIDE, SIDE, CHANNELS, MAX_PIXELS) for i in picks]
        yield np.stack(images), labels[picks].astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Models


def small_cnn() -> Any:
    """Give a small CNN on 128x128x3 uint8 input (the cast to float happens inside the model)."""
    import keras

    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((SIDE, SIDE, CHANNELS), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def epoch_times(model: Any, data: Any, epochs: int, **fit: Any) -> list[tuple[float, float]]:
    """Give the wall and CPU seconds (all threads of this process) of each epoch of ``fit``."""
    import keras

    times: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            wall, cpu = self.start
            times.append((time.perf_counter() - wall, time.process_time() - cpu))

    model.fit(data, epochs=epochs, verbose=0, callbacks=[Clock()], **fit)
    return times


# ---------------------------------------------------------------------------------------------
# Measurements


def build_seconds(items: list[tuple[str, Path]], root: Path, workers: int) -> tuple[float, float]:
    """Give the wall and CPU seconds (all processes) a fresh cache build takes with ``workers``."""
    # CPU is read before and after, not sampled: a sampling thread would take CPU from the
    # workers it watches.
    cpu = cpu_seconds()
    start = time.perf_counter()
    built = build_cache(
        items,
        root,
        height=SIDE,
        width=SIDE,
        channels=CHANNELS,
        max_pixels=MAX_PIXELS,
        workers=workers,
    )
    seconds = time.perf_counter() - start
    time.sleep(0.2)  # let the fork server reap the workers that just ended
    cpu = cpu_seconds() - cpu
    if built.failed or len(built.decoded) != len(items):
        raise SystemExit(f"cache build failed: {built.failed}")
    return seconds, cpu


def naive_rate(files: Sequence[Path], labels: np.ndarray, batch_size: int) -> float:
    """Give the images per second the naive loader delivers over one epoch."""
    start = time.perf_counter()
    count = sum(len(y) for _, y in naive_batches(files, labels, batch_size, epoch=0))
    return count / (time.perf_counter() - start)


def pipeline(
    cache: Any, labels: np.ndarray, batch_size: int, workers: int | None, queue: int
) -> Any:
    """Give skillmaker's pipeline over the whole cache."""
    from skillmaker.data.feed import CacheBatches

    return CacheBatches(
        cache,
        np.arange(len(cache)),
        labels,
        batch_size=batch_size,
        seed=SEED,
        workers=workers,
        max_queue_size=queue,
    )


def delivery_times(data: Any, epochs: int) -> list[float]:
    """Give the seconds each epoch takes to hand over every batch as Keras asks for them."""
    times = []
    data.on_epoch_begin()
    for _ in range(epochs):
        start = time.perf_counter()
        for index in range(len(data)):
            data[index]
        times.append(time.perf_counter() - start)
        data.on_epoch_end()
    return times


def cpu_seconds() -> float:
    """Give the CPU seconds used so far by this process and every descendant, live or ended."""
    import psutil

    def used(process: Any) -> float:
        # A process's own time plus that of the children it has reaped: the cache's workers are
        # children of the fork server, which reaps them as they exit.
        times = process.cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    me = psutil.Process()
    total = used(me)
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += used(child)
    return total


class MemorySampler:
    """Sample the resident memory of this process and all its descendants (the cache workers)."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._me = psutil.Process()
        self._error = psutil.Error
        self._interval = interval
        self._stop = threading.Event()
        self.peak_total = 0
        self.peak_workers = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        own = self._me.memory_info().rss
        workers = 0
        for child in self._me.children(recursive=True):
            with contextlib.suppress(self._error):
                workers += child.memory_info().rss
        self.peak_total = max(self.peak_total, own + workers)
        self.peak_workers = max(self.peak_workers, workers)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def memory_probe(args: argparse.Namespace) -> int:
    """Print the peak RSS (MiB) of a cache build plus one training epoch, in this fresh process."""
    sampler = MemorySampler()
    files = sorted(Path(args.probe_images).glob("*.jpg"))[: args.images]
    labels = np.array([int(p.stem) % CLASSES for p in files])
    items = list(zip(content_hashes(files), files, strict=True))
    root = Path(args.probe_cache)
    build_seconds(items, root, workers=os.cpu_count() or 1)
    cache = TensorCache.open(root, SIDE, SIDE, CHANNELS)
    data = pipeline(cache, labels, args.batch_size, args.pipeline_workers, args.queue)
    epoch_times(small_cnn(), data, epochs=1, shuffle=False)
    sampler.stop()
    mib = 2**20
    figures = {
        # The kernel's exact peak of this process; the sampled total adds every descendant
        # (the decoding workers, their fork server) alive at the same moment.
        "own": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "total": max(
            sampler.peak_total / mib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ),
        "workers": sampler.peak_workers / mib,
        "cache": sum(p.stat().st_size for p in cache.folder.glob("shard-*")) / mib,
    }
    print(json.dumps(figures))
    return 0


def run_probe(script: Path, images: Path, count: int, cache: Path, args: argparse.Namespace) -> Any:
    """Give the memory probe's figures for ``count`` images, run in a fresh process."""
    command = [
        sys.executable,
        str(script),
        "--memory-probe",
        "--images", str(count),
        "--probe-images", str(images),
        "--probe-cache", str(cache),
        "--batch-size", str(args.batch_size),
        "--queue", str(args.queue),
    ]  # fmt: skip
    if args.pipeline_workers is not None:
        command += ["--pipeline-workers", str(args.pipeline_workers)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_pressure() -> str | None:
    """Give the kernel's CPU pressure line (share of time tasks waited for a CPU), if it has one."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Give every figure of the benchmark, measured in ``work``."""
    import keras

    n = args.images
    load_before = os.getloadavg()[0]
    pressure_before = cpu_pressure()
    start = time.perf_counter()
    written = write_images(work / "images", 0, n)
    generate_seconds = time.perf_counter() - start
    files = [path for path, _ in written]
    labels = np.array([label for _, label in written])
    items = list(zip(content_hashes(files), files, strict=True))

    naive = naive_rate(files, labels, args.batch_size)

    # Alternate the two builds (one, pool, pool, one) so a burst of load from other users of
    # the machine does not land on one side only; the best of each pair is the figure.
    cores = os.cpu_count() or 1
    builds: dict[int, list[float]] = {1: [], cores: []}
    build_cpu: dict[int, list[float]] = {1: [], cores: []}
    for round_number, workers in enumerate((1, cores, cores, 1)[: 2 * args.build_rounds]):
        wall, cpu = build_seconds(items, work / f"cache-{round_number}", workers)
        builds[workers].append(wall)
        build_cpu[workers].append(cpu)
    single, pooled = min(builds[1]), min(builds[cores])
    cache = TensorCache.open(work / "cache-1", SIDE, SIDE, CHANNELS)

    def feed() -> Any:
        return pipeline(cache, labels, args.batch_size, args.pipeline_workers, args.queue)

    delivery = delivery_times(feed(), args.epochs + 1)[1:]
    pipeline_rate = n / min(delivery)

    # Interleave the two feeds round by round for the same reason as the builds; the fastest
    # steady-state epoch of each is the one least disturbed by other work on the machine.
    rng = np.random.default_rng(SEED)
    synthetic_x = rng.integers(0, 256, (n, SIDE, SIDE, CHANNELS), dtype=np.uint8)
    synthetic_y = rng.integers(0, CLASSES, n).astype(np.int32)
    fed: dict[str, list[tuple[float, float]]] = {"pipeline": [], "synthetic": []}

    def train(name: str) -> None:
        if name == "pipeline":
            times = epoch_times(small_cnn(), feed(), args.epochs + 1, shuffle=False)
        else:
            times = epoch_times(
                small_cnn(),
                synthetic_x,
                args.epochs + 1,
                y=synthetic_y,
                batch_size=args.batch_size,
                shuffle=True,
            )
        fed[name] += times[1:]  # the first epoch traces the model
        keras.backend.clear_session()

    for round_number in range(args.train_rounds):
        for name in ("pipeline", "synthetic")[:: 1 if round_number % 2 == 0 else -1]:
            train(name)
    train_pipeline = min(wall for wall, _ in fed["pipeline"])
    train_synthetic = min(wall for wall, _ in fed["synthetic"])
    cpu_pipeline = statistics.median(cpu for _, cpu in fed["pipeline"])
    cpu_synthetic = statistics.median(cpu for _, cpu in fed["synthetic"])

    memory: dict[int, Any] = {}
    if not args.skip_memory:
        write_images(work / "images", n, 4 * n)
        script = Path(__file__).resolve()
        for count in (n, 4 * n):
            memory[count] = run_probe(script, work / "images", count, work / f"probe-{count}", args)

    result: dict[str, Any] = {
        "benchmark": "input_pipeline",
        "images": n,
        "source_size": [SOURCE_SIDE, SOURCE_SIDE],
        "input_shape": [SIDE, SIDE, CHANNELS],
        "batch_size": args.batch_size,
        "cores": cores,
        "pipeline_workers": feed().workers,
        "queue": args.queue,
        "load_average_before": round(load_before, 2),
        "cpu_pressure_before": pressure_before,
        "generate_s": round(generate_seconds, 2),
        "naive_images_per_s": round(naive, 1),
        "pipeline_images_per_s": round(pipeline_rate, 1),
        "pipeline_delivery_epochs_s": [round(t, 4) for t in delivery],
        "delivery_ratio": round(pipeline_rate / naive, 1),
        "train_epoch_s_pipeline": round(train_pipeline, 3),
        "train_epoch_s_synthetic": round(train_synthetic, 3),
        "train_epoch_s_median": {
            k: round(statistics.median(wall for wall, _ in v), 3) for k, v in fed.items()
        },
        "train_epochs_s": {k: [round(wall, 3) for wall, _ in v] for k, v in fed.items()},
        "training_efficiency": round(train_synthetic / train_pipeline, 3),
        # The same ratio on CPU seconds per epoch (median): what the feed costs in work, which
        # other users of the machine disturb far less than wall time.
        "train_epoch_cpu_s_median": {
            "pipeline": round(cpu_pipeline, 3),
            "synthetic": round(cpu_synthetic, 3),
        },
        "training_efficiency_cpu": round(cpu_synthetic / cpu_pipeline, 3),
        "build_s_one_process": round(single, 2),
        "build_s_pool": round(pooled, 2),
        "build_s_all": {str(k): [round(t, 2) for t in v] for k, v in builds.items()},
        # CPU seconds of all processes per build, and cores busy on average (CPU / wall): with
        # other users on the machine, a build gets only its share, pool or not.
        "build_cpu_s_all": {str(k): [round(t, 2) for t in v] for k, v in build_cpu.items()},
        "build_cores_busy": {
            str(k): [round(c / w, 2) for c, w in zip(build_cpu[k], v, strict=True)]
            for k, v in builds.items()
        },
        "build_speedup": round(single / pooled, 2),
    }
    if memory:
        peak = {c: m["total"] for c, m in memory.items()}
        result |= {
            "peak_rss_mib_n": round(peak[n], 1),
            "peak_rss_mib_4n": round(peak[4 * n], 1),
            "peak_rss_detail_mib": {
                str(c): {k: round(v, 1) for k, v in m.items()} for c, m in memory.items()
            },
            "memory_growth_4x": round(peak[4 * n] / peak[n], 3),
        }
    result["load_average_after"] = round(os.getloadavg()[0], 2)
    result["cpu_pressure_after"] = cpu_pressure()
    result["targets_met"] = {
        "delivery_ratio>=50": result["delivery_ratio"] >= TARGET_DELIVERY,
        "training_efficiency>=0.95": result["training_efficiency"] >= TARGET_EFFICIENCY,
        "build_speedup>=1.6": result["build_speedup"] >= TARGET_BUILD_SPEEDUP,
    }
    if memory:
        growth_ok = result["memory_growth_4x"] < TARGET_MEMORY_GROWTH
        result["targets_met"]["memory_growth_4x<1.5"] = growth_ok
    return result


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Give the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="N, the number of JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="steady-state epochs measured")
    parser.add_argument("--train-rounds", type=int, default=3)
    parser.add_argument("--build-rounds", type=int, default=2, choices=(1, 2))
    parser.add_argument("--pipeline-workers", type=int, help="default: the pipeline's own")
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temp dir)")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-images", help=argparse.SUPPRESS)
    parser.add_argument("--probe-cache", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse(argv)
    if args.memory_probe:
        return memory_probe(args)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = measure(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="skillmaker-bench-") as work:
            result = measure(args, Path(work))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
