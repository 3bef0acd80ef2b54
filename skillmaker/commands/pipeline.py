"""Commands that run the pipeline: ``run``, ``cleanup`` and the push-triggered ``queue``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from skillmaker.commands.common import add_repo_flag, run_stage, skill_from
from skillmaker.commands.model import _none
from skillmaker.domain.stages import STAGE_NAMES
from skillmaker.errors import ExitCode


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.runner import exit_code_of, print_summary, run_pipeline

    ctx = skill_from(args, out)
    results = run_pipeline(
        ctx, start=args.start, until=args.until, profile=args.profile, wait=args.wait
    )
    print_summary(results, out)
    return exit_code_of(results)


def _cleanup(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.cleanup import cleanup

    return run_stage(
        args, out, "cleanup", lambda ctx: _none(cleanup(ctx, keep_cache=args.keep_cache))
    ).exit_code


def _queue_add(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import enqueue

    job = enqueue(args.remote, args.commit, args.ref)
    print(f"skillmaker: queued a run of {args.commit[:12]} ({job.name})", file=out)
    return ExitCode.OK


def _queue_work(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import work

    count = work(args.remote)
    print(f"ran {count} queued run(s)", file=out)
    return ExitCode.OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.demo import run_demo

    run_demo(args.workdir, out)
    return ExitCode.OK


def register(sub: Any) -> None:
    """Add the pipeline commands."""
    p = sub.add_parser("run", help="run the pipeline's stages locally, as CI runs them")
    add_repo_flag(p)
    p.add_argument("--from", dest="start", choices=STAGE_NAMES, help="first stage to run")
    p.add_argument("--until", choices=STAGE_NAMES, help="last stage to run")
    p.add_argument("--profile", help="hardware profile for training")
    p.add_argument("--wait", action="store_true", help="wait for another run of the skill to end")
    p.set_defaults(handler=_run)

    p = sub.add_parser("cleanup", help="delete the run's local data and caches")
    add_repo_flag(p)
    p.add_argument("--keep-cache", action="store_true", help="keep the pulled images and tensors")
    p.set_defaults(handler=_cleanup)

    p = sub.add_parser("demo", help="the whole pipeline on bundled real data, no account needed")
    p.add_argument(
        "--workdir", type=Path, default=Path("demo"), help="folder of the demo (made anew)"
    )
    p.set_defaults(handler=_demo)

    p = sub.add_parser("queue", help="push-triggered runs (used by the remote's git hook)")
    queue = p.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    q = queue.add_parser("add", help="queue a run of a pushed commit and start the worker")
    q.add_argument("--remote", type=Path, required=True, help="the bare repository")
    q.add_argument("--commit", required=True, help="the pushed commit")
    q.add_argument("--ref", default="refs/heads/main", help="the pushed ref")
    q.set_defaults(handler=_queue_add)
    q = queue.add_parser("work", help="run queued jobs one after the other")
    q.add_argument("--remote", type=Path, required=True, help="the bare repository")
    q.set_defaults(handler=_queue_work)
