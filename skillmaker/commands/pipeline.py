"""Commands that run the pipeline: ``run``, ``cleanup`` and the push-triggered ``queue``."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from skillmaker.commands.common import add_repo_flag, run_stage, skill_from
from skillmaker.commands.model import _none
from skillmaker.domain.stages import STAGE_NAMES
from skillmaker.errors import ExitCode, UserError

if TYPE_CHECKING:
    from skillmaker.context import SkillContext


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.runner import exit_code_of, print_summary, run_pipeline

    ctx = skill_from(args, out)
    if args.isolated:
        return _run_isolated(args, ctx, out)
    if args.accept_regression or args.reason or args.workdir or args.branch:
        raise UserError("--accept-regression, --reason, --workdir and --branch go with --isolated")
    results = run_pipeline(
        ctx, start=args.start, until=args.until, profile=args.profile, wait=args.wait
    )
    print_summary(results, out)
    return exit_code_of(results)


def _run_isolated(args: argparse.Namespace, ctx: SkillContext, out: TextIO) -> int:
    from skillmaker.gate.stage import who
    from skillmaker.pipeline.isolated import Override, run_isolated
    from skillmaker.pipeline.runner import exit_code_of, print_summary

    if args.start or args.until or args.profile:
        raise UserError("--isolated runs every stage as CI does: no --from, --until or --profile")
    if bool(args.accept_regression) != bool(args.reason and args.reason.strip()):
        raise UserError('--accept-regression needs --reason "why the regression is acceptable"')
    override = Override(who(ctx), args.reason.strip()) if args.accept_regression else None
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="skillmaker-isolated-"))
        )
        run = run_isolated(
            ctx.repo,
            ctx.config,
            workdir=workdir,
            out=out,
            env=ctx.env,
            branch=args.branch,
            override=override,
        )
        print_summary(run.results, out)
        print(f"build result: {run.build_result}", file=out)
        for path in run.junit + run.archived:
            print(f"published: {path}", file=out)
    return exit_code_of(run.results)


def _cleanup(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.cleanup import cleanup

    return run_stage(
        args, out, "cleanup", lambda ctx: _none(cleanup(ctx, caches=args.caches))
    ).exit_code


def _queue_add(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import enqueue

    job = enqueue(args.remote, args.commit, args.ref)
    print(f"skillmaker: queued a run of {args.commit[:12]} ({job.name})", file=out)
    return ExitCode.OK


def _queue_check(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import check_push

    check_push(args.remote, args.commit, args.ref)
    return ExitCode.OK


def _queue_work(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import work

    count = work(args.remote)
    print(f"ran {count} queued run(s)", file=out)
    return ExitCode.OK


def _remote(args: argparse.Namespace) -> Path:
    """Give the queue's bare repository: --remote, else the origin of the skill repo."""
    if args.remote is not None:
        return Path(args.remote).absolute()
    from skillmaker.adapters import git

    url = git.remote_url(args.repo) if git.is_repo(args.repo) else None
    if url is None or not (Path(url) / "skillmaker" / "settings.json").is_file():
        raise UserError(
            f"--remote: {args.repo.absolute()} has no origin made by `skillmaker new --remote`"
        )
    return Path(url).absolute()


def _queue_status(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import status_lines

    for line in status_lines(_remote(args)):
        print(line, file=out)
    return ExitCode.OK


def _queue_log(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import log_text

    out.write(log_text(_remote(args), args.job))
    return ExitCode.OK


def _queue_cancel(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.pipeline.queue import cancel

    print(cancel(_remote(args), args.job), file=out)
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
    p.add_argument(
        "--isolated",
        action="store_true",
        help="replay the Jenkinsfile: each stage in a fresh clone with only what it unstashes",
    )
    p.add_argument("--workdir", type=Path, help="--isolated: keep the clones and logs here")
    p.add_argument("--branch", help="--isolated: the branch CI builds (default: the current one)")
    p.add_argument(
        "--accept-regression",
        action="store_true",
        help="--isolated: answer the gate's input step by accepting a rejection",
    )
    p.add_argument("--reason", help="--isolated: why the regression is acceptable")
    p.set_defaults(handler=_run)

    p = sub.add_parser("cleanup", help="delete the run's local data (the caches stay)")
    add_repo_flag(p)
    p.add_argument(
        "--caches",
        action="store_true",
        help="also delete the content-addressed caches (pulled images, tensors, wheels)",
    )
    p.set_defaults(handler=_cleanup)

    p = sub.add_parser("demo", help="the whole pipeline on bundled real data, no account needed")
    p.add_argument(
        "--workdir", type=Path, default=Path("demo"), help="folder of the demo (made anew)"
    )
    p.set_defaults(handler=_demo)

    p = sub.add_parser("queue", help="push-triggered runs of a `new --remote` repository")
    queue = p.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    for name, handler, helptext in (
        ("add", _queue_add, "queue a run of a pushed commit and start the worker (post-receive)"),
        ("check", _queue_check, "refuse a pushed commit whose skill.json is invalid (pre-receive)"),
    ):
        q = queue.add_parser(name, help=helptext)
        q.add_argument("--remote", type=Path, required=True, help="the bare repository")
        q.add_argument("--commit", required=True, help="the pushed commit")
        q.add_argument("--ref", default="refs/heads/main", help="the pushed ref")
        q.set_defaults(handler=handler)
    q = queue.add_parser("work", help="run queued jobs one after the other")
    q.add_argument("--remote", type=Path, required=True, help="the bare repository")
    q.set_defaults(handler=_queue_work)
    for name, handler, helptext in (
        ("status", _queue_status, "the running run, the queued ones and the last results"),
        ("log", _queue_log, "the log of a run (default: the running one, else the last)"),
        ("cancel", _queue_cancel, "drop a queued run or stop the running one (default)"),
    ):
        q = queue.add_parser(name, help=helptext)
        add_repo_flag(q)
        q.add_argument("--remote", type=Path, help="the bare repository (default: origin)")
        if name != "status":
            q.add_argument("job", nargs="?", help="the job's name (see `queue status`)")
        q.set_defaults(handler=handler)
