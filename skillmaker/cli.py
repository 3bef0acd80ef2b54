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
from typing import TYPE_CHECKING, TextIO

from skillmaker import __version__
from skillmaker.domain.redact import redact, secrets_in
from skillmaker.errors import (
    ExitCode,
    ProblemsError,
    SkillmakerError,
    UserError,
    environment_problem,
)

if TYPE_CHECKING:
    from skillmaker.config import SkillConfig

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
    "skillmaker.commands.fleet",
)


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.config import load_config

    loaded = load_config(args.config)
    print(f"{args.config}: valid skill config for {loaded.config.name!r}", file=out)
    for line in loaded.deprecated:
        print(f"{args.config}: {line}", file=out)
    for line in loaded.migrations:
        print(f"{args.config}: migrated on upgrade: {line}", file=out)
    for line in _test_split_adequacy(loaded.config):
        print(line, file=out)
    return ExitCode.OK


def _test_split_adequacy(config: SkillConfig) -> list[str]:
    """Give what the test split can show, where the data is known here (a local folders store)."""
    from skillmaker.adapters.store import open_store
    from skillmaker.domain.gate_text import adequacy_lines

    data = config.data
    if not data.source.startswith("file://") or data.layout != "folders":
        return []
    counts: dict[str, int] = {}
    for info in open_store(data.source).list():
        label = info.key.split("/", 1)[0]
        if "/" in info.key:
            counts[label] = counts.get(label, 0) + 1
    kept = {k: v for k, v in counts.items() if v >= data.min_examples_per_class}
    if not kept:
        return []
    support = {k: round(v * config.split.test) for k, v in kept.items()}
    gate = config.gate
    return adequacy_lines(
        sum(support.values()),
        gate.accuracy_tolerance,
        support,
        gate.significance,
        estimated=True,
    )


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
    prefix = "would change: " if args.check else ""
    for line in result.summary_lines():
        print(prefix + line, file=out)
    if not result.out_of_date:
        print(f"up to date with skillmaker {__version__}", file=out)
        return ExitCode.OK
    if args.check:
        print(f"out of date: run `skillmaker upgrade` (stamped by {result.from_version})", file=out)
        return ExitCode.INTERNAL_ERROR  # 1: out of date, as `cruft check`; CI gates on it
    if result.conflicts or result.unresolved:
        count = len(result.conflicts) + len(result.unresolved)
        print(f"{count} conflict(s): resolve the markers, then commit", file=out)
        return ExitCode.USER_ERROR
    if result.commit is not None:
        print(f"committed {result.commit[:12]}", file=out)
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
    p.add_argument(
        "--force",
        action="store_true",
        help="stamp into a non-empty folder: writes owned files only, keeps history and the rest",
    )
    p.add_argument("--remote", type=Path, help="also make a bare repo whose pushes queue runs")
    p.set_defaults(handler=_cmd_new)

    p = sub.add_parser(
        "upgrade", help="merge this skillmaker's owned files and config schema into a skill repo"
    )
    p.add_argument("--repo", type=Path, default=Path(), help="the skill repo (default: .)")
    p.add_argument(
        "--force", action="store_true", help="overwrite hand edits of owned files (no merge)"
    )
    p.add_argument(
        "--check", action="store_true", help="only report; write nothing; exit 1 if out of date"
    )
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
        machine = environment_problem(exc) if exc.exit_code == ExitCode.INTERNAL_ERROR else None
        if machine is not None:
            print(f"skillmaker: {redact(str(exc), secrets)}: {machine}", file=stderr)
            return ExitCode.USER_ERROR
        print(f"skillmaker: {redact(str(exc), secrets)}", file=stderr)
        if exc.exit_code == ExitCode.INTERNAL_ERROR:
            print(redact(traceback.format_exc(), secrets), file=stderr, end="")
        return exc.exit_code
    except KeyboardInterrupt:
        print("skillmaker: interrupted", file=stderr)
        return 130
    except Exception as exc:
        machine = environment_problem(exc)
        if machine is not None:  # the machine's fault, not a bug: say where, no traceback
            print(f"skillmaker: {redact(machine, secrets)}", file=stderr)
            return ExitCode.USER_ERROR
        return _internal_error(stderr, secrets)


def _internal_error(stderr: TextIO, secrets: tuple[str, ...]) -> int:
    print("skillmaker: internal error (a bug; please report it with this traceback):", file=stderr)
    print(redact(traceback.format_exc(), secrets), file=stderr, end="")
    return ExitCode.INTERNAL_ERROR
