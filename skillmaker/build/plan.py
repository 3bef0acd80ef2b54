"""What a build makes: image names, tags, labels, which flavours and targets, and build.json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

from skillmaker import __version__
from skillmaker.config import SkillConfig
from skillmaker.context import RunPointer
from skillmaker.domain.versions import Flavor, ImageTag
from skillmaker.errors import UserError
from skillmaker.records import DEFINITION, LABELS, MODEL, NORMALISATION, STAMP

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


# -- the stage
