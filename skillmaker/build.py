"""The build stage: the skill's container images, from its Dockerfiles, through the Docker engine.

An image is built from a context folder assembled for it: the flavour's Dockerfile, ``skill.json``,
a wheelhouse (skillmaker's wheel and its dependencies, so the build needs no network) and, for the
serving image, the trained model bundle in ``.skillmaker/model``. Before training there is no model:
the stage builds the ``runtime`` target, which checks the Dockerfile and the wheelhouse early and
leaves every expensive layer in the engine's cache for the serving build after training.

Tags are ``<registry>/<skill>:<skill_version>-<short sha>-<flavor>`` (the runtime image adds
``-runtime``); labels and the environment carry the skill and code versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TextIO, TypedDict, cast

from skillmaker import __version__
from skillmaker.adapters.docker import DockerEngine
from skillmaker.config import SkillConfig
from skillmaker.context import RunPointer, SkillContext
from skillmaker.errors import UserError
from skillmaker.pipeline.outcome import mark_skipped
from skillmaker.records import DEFINITION, LABELS, MODEL, NORMALISATION, STAMP, write_record
from skillmaker.versioning import Flavor, ImageTag

Target = Literal["runtime", "serving"]
FLAVORS: tuple[Flavor, ...] = ("cpu", "gpu")
BUILD = "build.json"
# Files of a model bundle when it lies loose in the run folder rather than in a model/ folder.
BUNDLE_FILES = (MODEL, LABELS, NORMALISATION, STAMP, DEFINITION)
WHEELHOUSE_ENV = "SKILLMAKER_WHEELHOUSE"
FLAVORS_ENV = "SKILLMAKER_BUILD_FLAVORS"


def base_image_env(flavor: Flavor) -> str:
    """Give the variable that overrides a flavour's base image (``SKILLMAKER_CPU_BASE``, ...)."""
    return f"SKILLMAKER_{flavor.upper()}_BASE"


# -- names, labels, arguments: pure


def image_ref(
    registry: str | None, skill: str, skill_version: int, code_version: str, flavor: Flavor
) -> str:
    """Give the full image name ``<registry>/<skill>:<skill_version>-<short sha>-<flavor>``."""
    return ImageTag.of(skill_version, code_version, flavor).image(skill, registry)


def image_labels(skill: str, skill_version: int, code_version: str, flavor: str) -> dict[str, str]:
    """Give the labels of a skill image: OCI revision and version, and the ``skill.*`` labels."""
    return {
        "org.opencontainers.image.title": skill,
        "org.opencontainers.image.revision": code_version,
        "org.opencontainers.image.version": str(skill_version),
        "skill.name": skill,
        "skill.version": str(skill_version),
        "skill.flavor": flavor,
        "code.version": code_version,
        "skillmaker.version": __version__,
    }


@dataclass(frozen=True)
class BuildPlan:
    """One image to build: from which Dockerfile and base, with which name, labels and arguments."""

    flavor: Flavor
    dockerfile: str
    base_image: str
    ref: str
    target: Target
    labels: Mapping[str, str]
    buildargs: Mapping[str, str]


def plan_build(
    config: SkillConfig,
    pointer: RunPointer,
    flavor: Flavor,
    *,
    with_model: bool,
    base_image: str | None = None,
) -> BuildPlan:
    """Give the plan of one image; without a model it is the ``runtime`` target."""
    base = base_image or (config.images.cpu_base if flavor == "cpu" else config.images.gpu_base)
    ref = image_ref(
        config.images.registry, config.name, pointer.skill_version, pointer.code_version, flavor
    )
    return BuildPlan(
        flavor=flavor,
        dockerfile=f"Dockerfile.{flavor}",
        base_image=base,
        ref=ref if with_model else f"{ref}-runtime",
        target="serving" if with_model else "runtime",
        labels=image_labels(config.name, pointer.skill_version, pointer.code_version, flavor),
        buildargs={
            "BASE_IMAGE": base,
            "SKILL_VERSION": str(pointer.skill_version),
            "CODE_VERSION": pointer.code_version,
        },
    )


def should_push(registry: str | None, asked: bool | None, target: Target) -> bool:
    """Give whether an image is pushed: when asked, or when a registry is configured.

    A runtime image (no model) is never deployed, but CI stages on other agents run in it, so
    it goes to the configured registry too; it is never pushed to a name without one.
    """
    if target != "serving":
        return bool(registry) and asked is not False
    return bool(registry) if asked is None else asked


def parse_flavors(text: str) -> tuple[Flavor, ...]:
    """Give the flavours named in a comma-separated list, or a user error naming the bad one."""
    chosen: list[Flavor] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        flavor = next((f for f in FLAVORS if f == item), None)
        if flavor is None:
            raise UserError(f"{FLAVORS_ENV}: {item!r} is not an image flavor (cpu or gpu)")
        chosen.append(flavor)
    return tuple(chosen) or FLAVORS


# -- the build record


class BuiltImageRecord(TypedDict):
    """One image the build stage made."""

    flavor: str
    ref: str
    id: str
    target: str
    base_image: str
    labels: dict[str, str]
    pushed: bool
    digest: str | None
    seconds: float
    size_bytes: NotRequired[int]


class BuildRecord(TypedDict):
    """``build.json``: the images of a run (none when no engine answered)."""

    skipped: NotRequired[str | None]
    engine: str | None
    images: list[BuiltImageRecord]


# -- wheelhouse


def _source_checkout() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "template").is_dir() else None


def has_skillmaker_wheel(folder: Path) -> bool:
    """Give whether a wheelhouse holds this skillmaker version's wheel."""
    return any(folder.glob(f"skillmaker-{__version__}-*.whl"))


def _pip(command: list[str], dest: Path, flavor: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(
            f"cannot make the {flavor} wheelhouse in {dest}: pip failed:\n"
            + result.stderr.strip()[-2000:]
        )


def _dependencies_fingerprint(source: Path | None, flavor: Flavor) -> str:
    if source is None:
        return f"skillmaker {__version__} [{flavor}]"
    digest = hashlib.sha256((source / "pyproject.toml").read_bytes()).hexdigest()
    return f"pyproject.toml {digest} [{flavor}]"


def make_wheelhouse(dest: Path, flavor: Flavor) -> Path:
    """Give a folder of wheels: skillmaker's own and its dependencies (``[cpu]`` for the CPU image).

    skillmaker's wheel is rebuilt from its source checkout when it runs from one (so an image
    always holds the code being tested), otherwise downloaded once from the package index. The
    dependencies are fetched through pip (its cache, then the index) only when they changed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    source = _source_checkout()
    if source is not None or not has_skillmaker_wheel(dest):
        for old in dest.glob("skillmaker-*.whl"):
            old.unlink()
        own = [*pip, "wheel", "--no-deps", "--wheel-dir", str(dest)]
        _pip([*own, str(source) if source else f"skillmaker=={__version__}"], dest, flavor)
    marker = dest / ".dependencies"
    fingerprint = _dependencies_fingerprint(source, flavor)
    if not marker.is_file() or marker.read_text(encoding="utf-8") != fingerprint:
        # Start from an empty folder so that no wheel of an older dependency set stays behind.
        for stale in dest.glob("*.whl"):
            if not stale.name.startswith("skillmaker-"):
                stale.unlink()
        [wheel] = sorted(dest.glob("skillmaker-*.whl"))
        deps = [*pip, "wheel", "--wheel-dir", str(dest), "--find-links", str(dest)]
        # The GPU image takes TensorFlow and CUDA from its base image: no second copy here.
        extra = "[cpu]" if flavor == "cpu" else ""
        _pip([*deps, f"{wheel}{extra}"], dest, flavor)
        marker.write_text(fingerprint, encoding="utf-8")
    return dest


def find_wheelhouse(root: Path | None, flavor: Flavor, cache: Path) -> Path:
    """Give the wheelhouse of a flavour: ``<root>/<flavor>`` or ``<root>``, made when there is none.

    ``root`` comes from ``--wheelhouse`` or ``SKILLMAKER_WHEELHOUSE``; without one the wheelhouse
    is made once under ``cache`` and reused by later builds of the same skillmaker version.
    """
    if root is not None:
        for candidate in (root / flavor, root):
            if candidate.is_dir() and has_skillmaker_wheel(candidate):
                return candidate
        raise UserError(
            f"{root}: no skillmaker {__version__} wheel in {root / flavor} or {root}; "
            f"make one with `bash ci/wheelhouse.sh --flavor {flavor} {root}`"
        )
    folder = cache / __version__ / flavor
    if not has_skillmaker_wheel(folder):
        make_wheelhouse(folder, flavor)
    return folder


# -- model bundle and build context


def find_model_bundle(run_dir: Path, model: Path | None) -> Path | list[Path] | None:
    """Give the trained model bundle: a folder, the bundle files of the run folder, or none.

    An explicit ``model`` must be a folder holding ``model.keras``.
    """
    if model is not None:
        if not (model / MODEL).is_file():
            raise UserError(f"{model}: not a model bundle (no {MODEL} in it)")
        return model
    if (run_dir / "model" / MODEL).is_file():
        return run_dir / "model"
    if (run_dir / MODEL).is_file():
        return [run_dir / name for name in BUNDLE_FILES if (run_dir / name).is_file()]
    return None


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copy2(source, dest)


def wheel_pins(names: Iterable[str]) -> list[str]:
    """Give ``name==version`` for each wheel file name, or a user error when a name repeats."""
    pins: dict[str, str] = {}
    for name in sorted(names):
        dist, version = name.split("-")[:2]
        key = dist.lower().replace("_", "-")
        if key in pins:
            raise UserError(
                f"the wheelhouse holds two versions of {dist} ({pins[key]} and {version}); "
                "remake it with ci/wheelhouse.sh"
            )
        pins[key] = version
    return [f"{dist}=={version}" for dist, version in pins.items()]


def assemble_context(
    repo: Path, dockerfile: str, wheelhouse: Path, model: Path | list[Path] | None, dest: Path
) -> Path:
    """Give a build context folder: Dockerfile, skill.json, wheels and the model bundle.

    The wheels are split as the Dockerfiles install them: ``.skillmaker/wheelhouse/deps`` (the
    dependencies, pinned in its ``requirements.txt``) and ``.skillmaker/wheelhouse/skillmaker``.
    """
    if not (repo / dockerfile).is_file():
        raise UserError(f"{repo / dockerfile}: missing (run `skillmaker upgrade` to restore it)")
    if dest.exists():
        shutil.rmtree(dest)
    deps = dest / ".skillmaker" / "wheelhouse" / "deps"
    own = dest / ".skillmaker" / "wheelhouse" / "skillmaker"
    for folder in (deps, own, dest / ".skillmaker" / "model"):
        folder.mkdir(parents=True)
    for name in (dockerfile, ".dockerignore", "skill.json"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, dest / name)
    wheels = sorted(wheelhouse.glob("*.whl"))
    for wheel in wheels:
        mine = wheel.name.startswith("skillmaker-")
        _link_or_copy(wheel, (own if mine else deps) / wheel.name)
    pins = wheel_pins(w.name for w in wheels if not w.name.startswith("skillmaker-"))
    (deps / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    if isinstance(model, Path):
        shutil.copytree(model, dest / ".skillmaker" / "model", dirs_exist_ok=True)
    elif model:
        for item in model:
            shutil.copy2(item, dest / ".skillmaker" / "model" / item.name)
    return dest


# -- the stage


@dataclass(frozen=True)
class BuildOptions:
    """How the build stage is asked to run (flags and environment)."""

    flavors: Sequence[Flavor] | None = None
    model: Path | None = None
    wheelhouse: Path | None = None
    base_image: str | None = None
    network: Literal["none", "host"] = "none"
    push: bool | None = None
    """None: push when ``images.registry`` is configured."""


@dataclass(frozen=True)
class BuildResult:
    """What the build stage made, or why it made nothing."""

    images: tuple[BuiltImageRecord, ...] = ()
    skipped: str | None = None


def _flavors(ctx: SkillContext, options: BuildOptions) -> tuple[Flavor, ...]:
    if options.flavors:
        return tuple(options.flavors)
    return parse_flavors(ctx.env.get(FLAVORS_ENV, ""))


class _BuildLog:
    """Writes each line of ``docker build`` to the log with the seconds since the build began,
    and shows the ``Step n/m`` lines as progress."""

    def __init__(self, ctx: SkillContext, log: TextIO, started: float) -> None:
        self.ctx, self.log, self.started = ctx, log, started

    def __call__(self, line: str) -> None:
        print(f"{time.monotonic() - self.started:8.1f}s {line}", file=self.log, flush=True)
        if line.startswith("Step "):
            self.ctx.say(f"  {line}")


def build_images(
    ctx: SkillContext, options: BuildOptions, engine: DockerEngine | None = None
) -> BuildResult:
    """Give the images built for the current run, or a skip notice when no engine answers."""
    pointer = ctx.current_run()
    run_dir = ctx.run_dir()
    flavors = _flavors(ctx, options)
    engine = engine or DockerEngine.connect(ctx.env)
    if engine is None:
        reason = (
            f"no Docker engine answers at {DockerEngine.address(ctx.env)} "
            "(start one with `bash ci/docker-engine.sh start` and export DOCKER_HOST)"
        )
        ctx.say(f"build: skipped: {reason}")
        write_record(run_dir / BUILD, {"skipped": reason, "engine": None, "images": []})
        mark_skipped(run_dir, "build", reason)
        return BuildResult(skipped=reason)

    model = find_model_bundle(run_dir, options.model)
    if model is None:
        ctx.say("build: no trained model yet: building the runtime image (rerun after `train`)")
    root = options.wheelhouse or (
        Path(ctx.env[WHEELHOUSE_ENV]) if ctx.env.get(WHEELHOUSE_ENV) else None
    )
    built: list[BuiltImageRecord] = []
    for flavor in flavors:
        base = options.base_image or ctx.env.get(base_image_env(flavor)) or None
        plan = plan_build(
            ctx.config, pointer, flavor, with_model=model is not None, base_image=base
        )
        started = time.monotonic()
        wheelhouse = find_wheelhouse(root, flavor, ctx.workspace.root / "cache" / "wheelhouse")
        context = ctx.workspace.root / "cache" / "build" / flavor
        assemble_context(ctx.repo, plan.dockerfile, wheelhouse, model, context)
        ctx.say(f"build: {plan.ref} from {plan.dockerfile} on {plan.base_image}")
        log_path = run_dir / f"build-{flavor}-{plan.target}.log"
        try:
            with log_path.open("w", encoding="utf-8") as log:
                image_id = engine.build(
                    context,
                    dockerfile=plan.dockerfile,
                    tag=plan.ref,
                    labels=plan.labels,
                    buildargs=plan.buildargs,
                    target=plan.target,
                    network=options.network,
                    on_line=_BuildLog(ctx, log, started),
                )
        finally:
            shutil.rmtree(context, ignore_errors=True)
        digest = None
        pushed = should_push(ctx.config.images.registry, options.push, plan.target)
        if pushed:
            digest = engine.push(plan.ref) or None
            ctx.say(f"build: pushed {plan.ref} {digest or ''}".rstrip())
        seconds = round(time.monotonic() - started, 3)
        size = engine.inspect(image_id).size_bytes
        ctx.say(
            f"build: {plan.ref} ({image_id[:19]}) {size / 1e6:.0f} MB in {seconds:.0f} s; "
            f"log {log_path}"
        )
        built.append(
            {
                "flavor": flavor,
                "ref": plan.ref,
                "id": image_id,
                "target": plan.target,
                "base_image": plan.base_image,
                "labels": dict(plan.labels),
                "pushed": pushed,
                "digest": digest,
                "seconds": seconds,
                "size_bytes": size,
            }
        )
    # A later build of some flavours (the evaluate stage's CPU serving image) keeps the others.
    kept = [image for image in _recorded_images(run_dir) if image["flavor"] not in flavors]
    record: BuildRecord = {"skipped": None, "engine": engine.version(), "images": kept + built}
    write_record(run_dir / BUILD, record)
    return BuildResult(images=tuple(built))


def _recorded_images(run_dir: Path) -> list[BuiltImageRecord]:
    path = run_dir / BUILD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    images = record.get("images") if isinstance(record, dict) else None
    if not isinstance(images, list):
        return []
    return [cast(BuiltImageRecord, i) for i in images if isinstance(i, dict) and "flavor" in i]


def build_serving_image(
    ctx: SkillContext, engine: DockerEngine, flavor: Flavor = "cpu"
) -> BuiltImageRecord:
    """Give the serving image of the current run's trained model, built (from cache) now."""
    if find_model_bundle(ctx.run_dir(), None) is None:
        raise UserError(f"{ctx.run_dir()}: no trained model to build a serving image with")
    [image] = build_images(ctx, BuildOptions(flavors=(flavor,)), engine).images
    return image
