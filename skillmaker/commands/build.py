"""Command ``skillmaker build``: flags here, the work in the library."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from skillmaker.commands.common import add_repo_flag, run_stage
from skillmaker.context import SkillContext
from skillmaker.domain.outcome import Outcome


def _cmd_build(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.build.stage import BuildOptions, build_images

    options = BuildOptions(
        flavors=[args.flavor] if args.flavor else None,
        model=args.model,
        wheelhouse=args.wheelhouse,
        base_image=args.base_image,
        network=args.network,
        push=args.push,
    )

    def body(ctx: SkillContext) -> Outcome:
        result = build_images(ctx, options)
        if result.skipped is not None:
            return Outcome.skipped(result.skipped)
        return Outcome.passed()

    return run_stage(args, out, "build", body).exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``build`` command."""
    p = sub.add_parser(
        "build",
        help="build the skill's container images (skipped when no Docker engine answers)",
        description=(
            "Build the images of the current run from Dockerfile.cpu/gpu with a wheelhouse, so "
            "the build needs no network. With a trained model the serving image is built and "
            "tagged <registry>/<skill>:<version>-<sha>-<flavor>; before training, the runtime "
            "image (tag suffix -runtime)."
        ),
    )
    add_repo_flag(p)
    p.add_argument(
        "--flavor",
        choices=("cpu", "gpu"),
        help="build one flavor (default: SKILLMAKER_BUILD_FLAVORS, else cpu and gpu)",
    )
    p.add_argument(
        "--model", type=Path, help="model bundle folder (default: the current run's model)"
    )
    p.add_argument(
        "--wheelhouse",
        type=Path,
        help="folder of wheels, or of cpu/ and gpu/ wheel folders (default: "
        "SKILLMAKER_WHEELHOUSE, else made under .skillmaker/cache/wheelhouse)",
    )
    p.add_argument(
        "--base-image",
        help="base image (default: SKILLMAKER_CPU_BASE/SKILLMAKER_GPU_BASE, else images.*_base)",
    )
    p.add_argument(
        "--network",
        choices=("none", "host"),
        default="none",
        help="network of the build's RUN steps (default: none)",
    )
    push = p.add_mutually_exclusive_group()
    push.add_argument(
        "--push",
        dest="push",
        action="store_true",
        default=None,
        help="push the serving image (default: when images.registry is set)",
    )
    push.add_argument("--no-push", dest="push", action="store_false", help="never push")
    p.set_defaults(handler=_cmd_build)
