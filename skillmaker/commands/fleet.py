"""``skillmaker fleet status|upgrade|validate``: many skill repos in one command."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from skillmaker.errors import ExitCode


def _repos(args: argparse.Namespace) -> list[Path]:
    from skillmaker.scaffold.fleet import find_skills

    paths: list[Path] = list(args.paths)
    if args.list is not None:
        text = args.list.read_text(encoding="utf-8")
        paths += [Path(line.strip()) for line in text.splitlines() if line.strip()]
    return find_skills(paths or [Path()])


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.scaffold.fleet import skill_status, status_table

    rows = [skill_status(repo, dict(os.environ)) for repo in _repos(args)]
    print(status_table(rows), file=out)
    stale = [r for r in rows if not r.current]
    print(f"{len(rows)} skill(s): {len(rows) - len(stale)} up to date, {len(stale)} not", file=out)
    if any(r.state.startswith("error") for r in rows):
        return ExitCode.USER_ERROR
    return ExitCode.INTERNAL_ERROR if stale else ExitCode.OK  # 1: something is out of date


def _cmd_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.scaffold.fleet import upgrade_fleet

    done = upgrade_fleet(_repos(args), check=args.check)
    for item in done:
        print(item.line, file=out)
        if item.result is not None:
            for name in (*item.result.conflicts, *item.result.unresolved):
                print(f"  {item.repo / name}: resolve the <<<<<<< markers, then commit", file=out)
    refused = [d for d in done if d.error is not None]
    conflicts = [
        d for d in done if d.result is not None and (d.result.conflicts or d.result.unresolved)
    ]
    changed = [d for d in done if d.result is not None and d.result.out_of_date]
    verb = "would upgrade" if args.check else "upgraded"
    print(
        f"{len(done)} skill(s): {len(changed) - len(conflicts)} {verb}, "
        f"{len(done) - len(changed) - len(refused)} up to date, "
        f"{len(conflicts)} with conflicts, {len(refused)} refused",
        file=out,
    )
    if refused or conflicts:
        return ExitCode.USER_ERROR
    return ExitCode.INTERNAL_ERROR if args.check and changed else ExitCode.OK


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from skillmaker.scaffold.fleet import validate_fleet

    results = validate_fleet(_repos(args))
    bad = 0
    for repo, lines in results:
        errors = [line for line in lines if not line.startswith("warning: ")]
        bad += bool(errors)
        print(f"{repo.name}: {'invalid' if errors else 'valid'}", file=out)
        for line in lines:
            print(f"  {line}", file=out)
    print(f"{len(results)} skill(s): {len(results) - bad} valid, {bad} invalid", file=out)
    return ExitCode.USER_ERROR if bad else ExitCode.OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fleet`` command and its subcommands."""
    fleet = sub.add_parser("fleet", help="status, upgrade or validate many skill repos at once")
    actions = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    for name, handler, summary in (
        ("status", _cmd_status, "a table: skillmaker, schema, up to date, last run, deployed"),
        ("upgrade", _cmd_upgrade, "upgrade every skill; a summary; conflicts listed (exit 2)"),
        ("validate", _cmd_validate, "validate every skill's config"),
    ):
        p = actions.add_parser(name, help=summary)
        p.add_argument(
            "paths", nargs="*", type=Path, help="skill repos or folders of them (default: .)"
        )
        p.add_argument("--list", type=Path, help="a file naming one skill repo per line")
        if name == "upgrade":
            p.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
        p.set_defaults(handler=handler)
