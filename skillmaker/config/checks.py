"""Cross-field checks of a skill config: small registered functions, each giving problems."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from skillmaker.config.model import STRATEGIES, SkillConfig


@dataclass(frozen=True)
class FieldProblem:
    """A problem at a key path of the config."""

    path: str
    message: str


Check = Callable[[SkillConfig, tuple[str, ...]], Iterator[FieldProblem]]
_CHECKS: list[Check] = []


def check(func: Check) -> Check:
    """Register a cross-field check."""
    _CHECKS.append(func)
    return func


def run_checks(config: SkillConfig, required_classes: tuple[str, ...] = ()) -> list[FieldProblem]:
    """Give every cross-field problem of a config that passed field validation."""
    return [p for func in _CHECKS for p in func(config, required_classes)]


def got(value: object) -> str:
    """Render an offending value the way error lines quote it."""
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@check
def _fractions_sum_to_one(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    s = config.split
    total = s.train + s.val + s.test
    if abs(total - 1.0) > 1e-6:
        yield FieldProblem("split", f"train + val + test must sum to 1 (got {round(total, 6)})")


@check
def _known_strategy(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    for name, profile in config.profiles.items():
        path = f"profiles.{name}.strategy"
        if profile.strategy in ("multi_worker", "multi-worker", "multiworker"):
            yield FieldProblem(
                path,
                "multi-worker training across machines is not supported: Keras 3 needs patches "
                "of its private API for it (keras-team/keras#20585); scale out by running many "
                f"skills on many agents, or use mirrored (got {got(profile.strategy)})",
            )
        elif profile.strategy not in STRATEGIES:
            yield FieldProblem(
                path, f"must be one of {', '.join(STRATEGIES)} (got {got(profile.strategy)})"
            )


@check
def _manifest_matches_layout(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    data = config.data
    if data.layout == "manifest" and not data.manifest:
        yield FieldProblem("data.manifest", 'is required when data.layout is "manifest"')
    if data.layout == "folders" and data.manifest:
        yield FieldProblem(
            "data.manifest",
            f'is only used with data.layout "manifest" (got {got(data.manifest)})',
        )


@check
def _excluded_not_required(
    config: SkillConfig, required: tuple[str, ...]
) -> Iterator[FieldProblem]:
    counts = Counter(config.data.exclude_classes)
    for name, count in counts.items():
        if count > 1:
            yield FieldProblem("data.exclude_classes", f"lists a class twice (got {got(name)})")
    for name in sorted(set(required) & set(counts)):
        yield FieldProblem(
            "data.exclude_classes",
            f"class is both required by data.class_file and excluded (got {got(name)})",
        )


@check
def _class_weights_known(config: SkillConfig, required: tuple[str, ...]) -> Iterator[FieldProblem]:
    weights = config.train.class_weights
    if not isinstance(weights, dict):
        return
    for name in weights:
        if name in config.data.exclude_classes:
            yield FieldProblem(
                f"train.class_weights.{name}", f"weights an excluded class (got {got(name)})"
            )
        elif required and name not in required:
            yield FieldProblem(
                f"train.class_weights.{name}",
                f"is not a class of data.class_file (got {got(name)})",
            )


@check
def _weights_fit_network(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    model = config.model
    if model.network == "small_cnn" and model.weights == "imagenet":
        yield FieldProblem(
            "model.weights", 'imagenet weights exist only for backbone networks (got "imagenet")'
        )
    if model.network == "small_cnn" and model.fine_tune.top_layers:
        yield FieldProblem(
            "model.fine_tune.top_layers",
            f"fine-tuning needs a backbone network (got {model.fine_tune.top_layers})",
        )
    if model.fine_tune.top_layers and not model.fine_tune.epochs:
        yield FieldProblem(
            "model.fine_tune.epochs",
            "must be at least 1 when model.fine_tune.top_layers is set (got 0)",
        )


@check
def _mixed_precision_profile(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    for name, profile in config.profiles.items():
        if (
            profile.strategy == "mirrored"
            and profile.batch_size is not None
            and profile.batch_size < 2
        ):
            yield FieldProblem(
                f"profiles.{name}.batch_size",
                f"must be at least 2 to be split over several GPUs (got {profile.batch_size})",
            )


@check
def _notify_channel(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    channel = config.notify.slack_channel
    if channel is not None and (not channel.strip() or " " in channel):
        yield FieldProblem(
            "notify.slack_channel", f"must be a channel name or id (got {got(channel)})"
        )


@check
def _ci_profiles_known(config: SkillConfig, _: tuple[str, ...]) -> Iterator[FieldProblem]:
    for label, name in config.ci.profiles.items():
        if name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none defined"
            yield FieldProblem(
                f"ci.profiles.{label}", f"names no entry of profiles ({known}) (got {got(name)})"
            )
