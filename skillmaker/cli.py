"""The ``skillmaker`` command: parses flags, calls library functions, maps errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from skillmaker import __version__
from skillmaker.domain.redact import redact, secrets_in
from skillmaker.errors import (
    ExitCode,
    ProblemsError,
    SkillmakerError,
    UserError,
    describe,
    exit_code_of,
)

Handler = Callable[[argparse.Namespace, TextIO], int]

# Each module registers its subcommands with ``register(subparsers)``; add new areas here.
COMMAND_MODULES: tuple[str, ...] = (
    "skillmaker.commands.data",
    "skillmaker.commands.model",
    "skillmaker.commands.build",
    "skillmaker.commands.notify",
    "skillmaker.commands.pipeline",
    "skillmaker.commands.release",
    "skillmaker.commands.report",
    "skillmaker.commands.serve",
)


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.config import load_config

    loaded = load_config(args.config)
    print(f"{args.config}: valid skill config for {loaded.config.name!r}", file=out)
    return ExitCode.OK


def _cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.config import json_schema

    print(json.dumps(json_schema(), indent=2), file=out)
    return ExitCode.OK


def _cmd_new(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.scaffold import new_skill

    if args.remote is not None and args.remote.exists() and any(args.remote.iterdir()):
        raise UserError(f"--remote: {args.remote} exists and is not empty")
    target = new_skill(args.config, output=args.output, force=args.force)
    print(f"stamped skill repo {target}", file=out)
    if args.remote is not None:
        from skillmaker.pipeline.queue import create_remote

        remote = create_remote(target, args.remote)
        print(
            f"pushes to {remote} now queue runs (logs in {remote / 'skillmaker' / 'logs'})",
            file=out,
        )
    return ExitCode.OK


def _cmd_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.scaffold import upgrade_skill

    result = upgrade_skill(args.repo, force=args.force, check=args.check)
    verb = "would be" if args.check else "were"
    for label, names in (
        ("rewritten", result.changed),
        ("added", result.added),
        ("removed", result.removed),
    ):
        for name in names:
            print(f"{name}: {label}" if not args.check else f"{name}: {verb} {label}", file=out)
    for name in result.edited:
        print(f"{name}: edited by hand, overwritten (--force)", file=out)
    if not (result.changed or result.added or result.removed):
        print("owned files are up to date", file=out)
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    """Give the argument parser of the ``skillmaker`` command."""
    parser = argparse.ArgumentParser(
        prog="skillmaker",
        description="Turn a JSON config into a tested, reported, gated and deployed image classifier.",
    )
    parser.add_argument("--version", action="version", version=f"skillmaker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("new", help="stamp a skill repo from a config, git init + first commit")
    p.add_argument("--config", type=Path, required=True, help="the skill config (JSON)")
    p.add_argument("--output", type=Path, help="folder of the new repo (default: ./<name>)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--remote", type=Path, help="also make a bare repo whose pushes queue runs")
    p.set_defaults(handler=_cmd_new)

    p = sub.add_parser("upgrade", help="regenerate the skillmaker-owned files of a skill repo")
    p.add_argument("--repo", type=Path, default=Path(), help="the skill repo (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite owned files edited by hand")
    p.add_argument("--check", action="store_true", help="only report; write nothing")
    p.set_defaults(handler=_cmd_upgrade)

    p = sub.add_parser("validate", help="validate a skill config")
    p.add_argument("--config", type=Path, required=True, help="the skill config (JSON)")
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the skill config")
    p.set_defaults(handler=_cmd_schema)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line and give its exit code; the one place errors become exit codes."""
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage message
        return ExitCode.OK if exc.code == 0 else ExitCode.USER_ERROR
    handler: Handler = args.handler
    secrets = secrets_in(os.environ)  # what is printed here is redacted (credentials, tokens)
    try:
        return handler(args, stdout)
    except ProblemsError as exc:
        for problem in exc.problems:
            print(redact(str(problem), secrets), file=stderr)
        return exc.exit_code
    except SkillmakerError as exc:
        print(f"skillmaker: {redact(str(exc), secrets)}", file=stderr)
        if exc.exit_code == ExitCode.INTERNAL_ERROR:
            print(redact(traceback.format_exc(), secrets), file=stderr, end="")
        return exc.exit_code
    except KeyboardInterrupt:
        print("skillmaker: interrupted", file=stderr)
        return 130
    except OSError as exc:
        if exit_code_of(exc) != ExitCode.USER_ERROR:
            return _internal_error(stderr, secrets)
        print(f"skillmaker: {redact(describe(exc), secrets)}", file=stderr)
        return ExitCode.USER_ERROR
    except Exception:
        return _internal_error(stderr, secrets)


def _internal_error(stderr: TextIO, secrets: tuple[str, ...]) -> int:
    print("skillmaker: internal error (a bug; please report it with this traceback):", file=stderr)
    print(redact(traceback.format_exc(), secrets), file=stderr, end="")
    return ExitCode.INTERNAL_ERROR
