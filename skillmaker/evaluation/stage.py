"""The evaluate stage: candidate and deployed baseline on the run's held-out test split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from skillmaker.adapters.docker import DockerEngine
from skillmaker.build.plan import image_ref
from skillmaker.build.stage import build_serving_image
from skillmaker.context import SkillContext
from skillmaker.data.dataset import local_dataset
from skillmaker.domain.layout import run_key
from skillmaker.errors import UserError
from skillmaker.evaluation.docker_launch import DockerLauncher
from skillmaker.evaluation.harness import TestItem, evaluate
from skillmaker.evaluation.junit import evaluate_cases, write_junit
from skillmaker.evaluation.launch import LocalProcessLauncher, ServerLauncher, ServerSpec
from skillmaker.records import LABELS, METRICS, MODEL, STAMP, MetricsRecord
from skillmaker.registry import deployed_version
from skillmaker.serving.bundle import read_labels


def fetch_bundle(ctx: SkillContext, skill: str, version: int, folder: Path | None = None) -> Path:
    """Give a local folder (by default in the workspace cache) holding a stored run's bundle."""
    folder = folder or ctx.workspace.root / "cache" / "bundles" / skill / str(version)
    missing = [name for name in (MODEL, LABELS, STAMP) if not (folder / name).is_file()]
    if missing:
        store = ctx.artifacts()
        for name in missing:
            store.download(run_key(skill, version, name), folder / name)
    return folder


def from_image(ctx: SkillContext, engine: DockerEngine, spec: ServerSpec, what: str) -> ServerSpec:
    """Give a spec served from its CPU serving image when the engine holds it, else as it was."""
    stamp = spec.stamp
    ref = image_ref(
        ctx.config.images.registry, stamp.skill, stamp.skill_version, stamp.code_version, "cpu"
    )
    if engine.has_image(ref):
        ctx.say(f"{what} served in its container {ref}")
        return replace(spec, image=ref)
    ctx.say(f"{what} served as a local process (the engine has no image {ref})")
    return spec


def in_containers(
    ctx: SkillContext, engine: DockerEngine, candidate: ServerSpec, baseline: ServerSpec | None
) -> tuple[ServerSpec, ServerSpec | None]:
    """Give the candidate and baseline specs served from their CPU serving images where possible.

    The candidate's image is built now from the run's trained model (the build stage ran before
    training; the engine's cache makes this quick) and recorded in ``build.json``. When the engine
    no longer holds the baseline's serving image, both are served as local processes, so their
    latencies are measured the same way.
    """
    image = build_serving_image(ctx, engine, "cpu")
    if baseline is not None:
        baseline = from_image(ctx, engine, baseline, "evaluate: baseline")
        if baseline.image is None:
            # Latency is compared only between models served the same way: both local processes.
            ctx.say(
                "evaluate: candidate served as a local process too, so both models are measured "
                "the same way"
            )
            return candidate, baseline
    ctx.say(f"evaluate: candidate served in its container {image['ref']}")
    return replace(candidate, image=image["ref"]), baseline


def evaluate_stage(
    ctx: SkillContext, *, launcher: ServerLauncher | None = None, concurrency: int = 4
) -> MetricsRecord:
    """Give the test results of the current run's candidate and the deployed baseline.

    Without a ``launcher``, the models are served in their containers when a Docker engine
    answers at ``DOCKER_HOST`` (see ``in_containers``), otherwise as local processes.
    """
    run = ctx.current_run()
    run_dir = ctx.run_dir()
    fetch_bundle(ctx, ctx.name, run.skill_version, run_dir)  # when trained on another agent
    dataset, raw = local_dataset(ctx)
    labels = list(dataset["labels"])
    index = {name: i for i, name in enumerate(labels)}
    items = [
        TestItem(item["key"], raw / item["path"], index[item["label"]])
        for item in dataset["items"]
        if item["split"] == "test"
    ]
    if not items:
        raise UserError(f"{run_dir / 'dataset.json'}: the test split is empty")

    candidate = ServerSpec.from_bundle("candidate", run_dir)
    baseline: ServerSpec | None = None
    deployed = deployed_version(ctx.artifacts(), ctx.name)
    if deployed is not None and deployed["skill_version"] != run.skill_version:
        folder = fetch_bundle(ctx, ctx.name, deployed["skill_version"])
        if list(read_labels(folder / LABELS)) != labels:
            raise UserError(
                f"baseline version {deployed['skill_version']} knows other classes than this run "
                "(the data set's classes changed): the gate cannot compare them; accept the "
                "candidate knowingly with `skillmaker gate --accept-regression --reason ...`"
            )
        baseline = ServerSpec.from_bundle("baseline", folder)
        ctx.say(f"evaluate: baseline is deployed version {deployed['skill_version']}")
    else:
        ctx.say("evaluate: no deployed baseline; the gate will judge this as a first model")

    engine = DockerEngine.connect(ctx.env) if launcher is None else None
    if engine is not None:
        candidate, baseline = in_containers(ctx, engine, candidate, baseline)
        logs = run_dir / "logs"
        launcher = DockerLauncher(engine, fallback=LocalProcessLauncher(log_dir=logs), log_dir=logs)
    elif launcher is None:
        ctx.say(
            f"evaluate: serving as local processes (no Docker engine answers at "
            f"{DockerEngine.address(ctx.env)})"
        )

    metrics = evaluate(
        candidate,
        baseline,
        items,
        labels,
        run_dir,
        launcher=launcher,
        concurrency=concurrency,
        say=ctx.say,
    )
    write_junit(run_dir, "evaluate", evaluate_cases(metrics, ctx.config.gate))
    store = ctx.artifacts()
    store.upload(run_dir / METRICS, run_key(ctx.name, run.skill_version, METRICS))
    failures = run_dir / "failures"
    if failures.is_dir():
        for path in sorted(failures.rglob("*.png")):
            key = run_key(ctx.name, run.skill_version, path.relative_to(run_dir).as_posix())
            store.upload(path, key)
    cand = metrics["candidate"]
    ctx.say(
        f"evaluate: candidate accuracy {cand['accuracy']:.4f}, p95 {cand['latency']['p95']:.1f} ms"
        + (
            f"; baseline accuracy {metrics['baseline']['accuracy']:.4f}, "
            f"p95 {metrics['baseline']['latency']['p95']:.1f} ms"
            if metrics["baseline"] is not None
            else ""
        )
    )
    return metrics
