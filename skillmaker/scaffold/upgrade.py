"""``skillmaker upgrade``: three-way merge of a new render with the user's edits, then one commit.

For each owned file there are three versions: the base (what skillmaker rendered last time,
kept under ``.skillmaker/base/``), the user's file, and the new render. A file the user did not
touch takes the new render; a file skillmaker did not change keeps the user's edits; a file both
changed is merged with ``git merge-file``, and only lines both changed become an inline conflict.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from skillmaker import __version__
from skillmaker.adapters import git
from skillmaker.config import load_config, user_json
from skillmaker.errors import UserError
from skillmaker.fileio import sha256_file, write_atomic
from skillmaker.scaffold.manifest import CONFIG_FILE, MANIFEST, Manifest, read_base, write_bases
from skillmaker.scaffold.notes import NOTES_FILE, carry_notes
from skillmaker.scaffold.render import owned_hashes, render_owned_files, scratch


@dataclass(frozen=True)
class UpgradeResult:
    """What ``upgrade`` changed (or, with ``check``, would change) in a skill repo."""

    from_version: str
    changed: tuple[str, ...] = ()
    """Owned files the user had not edited, now the new render."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    merged: tuple[str, ...] = ()
    """Owned files with edits of the user's and of skillmaker's, merged cleanly."""
    conflicts: tuple[str, ...] = ()
    """Owned files whose merge has inline conflict markers to resolve."""
    overwritten: tuple[str, ...] = ()
    """Owned files edited by hand and replaced by the new render (``--force``)."""
    kept: tuple[str, ...] = ()
    """Files no longer owned that the user had edited: left in place, now the user's."""
    unresolved: tuple[str, ...] = ()
    """Owned files still holding an earlier upgrade's conflict markers (left as they are)."""
    migrations: tuple[str, ...] = ()
    """Changes made to skill.json to bring it to the current schema."""
    commit: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def out_of_date(self) -> bool:
        """Give whether the repo is behind this skillmaker (something would be written)."""
        return bool(
            self.changed
            or self.added
            or self.removed
            or self.merged
            or self.conflicts
            or self.overwritten
            or self.kept
            or self.unresolved
            or self.migrations
            or self.from_version != __version__
        )

    def summary_lines(self) -> list[str]:
        """Give one line per file or config change, as printed and put in the commit message."""
        lines = [f"skill.json: {m}" for m in self.migrations]
        for label, names in (
            ("rewritten", self.changed),
            ("added", self.added),
            ("removed", self.removed),
            ("merged with your edits", self.merged),
            ("CONFLICT: resolve the <<<<<<< markers", self.conflicts),
            ("edited by hand, overwritten (--force)", self.overwritten),
            ("no longer owned; kept (you had edited it)", self.kept),
            ("UNRESOLVED: conflict markers of an earlier upgrade", self.unresolved),
        ):
            lines += [f"{name}: {label}" for name in names]
        return lines


def _refuse_downgrade(manifest: Manifest, repo: Path) -> None:
    if manifest.version() > Version(__version__):
        raise UserError(
            f"{repo}: stamped by skillmaker {manifest.skillmaker_version}, newer than this "
            f"{__version__}: install skillmaker {manifest.skillmaker_version} or later "
            "(upgrade never downgrades a skill)"
        )


def _refuse_dirty(repo: Path) -> None:
    if not git.is_repo(repo):
        raise UserError(f"{repo}: not a git repository (upgrade commits its result)")
    dirty = git.modified_tracked(repo)
    if dirty:
        listed = ", ".join(line[3:] for line in dirty[:5])
        raise UserError(
            f"{repo}: uncommitted changes ({listed}): commit or stash them before upgrading"
        )


@dataclass
class _Plan:
    writes: dict[str, bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def put(self, group: str, name: str) -> None:
        self.groups.setdefault(group, []).append(name)


def _merge(work: Path, name: str, mine: bytes, base: bytes, new: bytes) -> tuple[bytes, int]:
    files = []
    for label, data in (("mine", mine), ("base", base), ("new", new)):
        path = work / "merge" / label
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(path)
    labels = (f"{name} (yours)", f"{name} (last upgrade)", f"{name} (skillmaker {__version__})")
    return git.merge_file(files[0], files[1], files[2], labels)


def _base_from_history(repo: Path, name: str, digest: str) -> bytes | None:
    """Give the base of a repo stamped before base copies were kept: the committed render."""
    for version in git.file_history(repo, name):
        if hashlib.sha256(version).hexdigest() == digest:
            return version
    return None


def _decide(
    work: Path, name: str, mine: bytes | None, base: bytes | None, new: bytes, *, force: bool
) -> tuple[str, bytes] | None:
    """Give the group of an owned file and its new content, or None to leave it as it is."""
    if mine == new:
        return None
    if mine is None:
        return "changed", new
    if base is not None and mine == base:
        return "changed", new  # untouched since the last upgrade
    if base == new:
        return None  # skillmaker changed nothing here; the user's edits stay
    if force:
        return "overwritten", new
    merged, conflicts = _merge(work, name, mine, base or b"", new)
    if merged == mine:
        return None
    return ("conflicts" if conflicts else "merged"), merged


def _plan(repo: Path, manifest: Manifest, rendered: Path, work: Path, force: bool) -> _Plan:
    plan = _Plan()
    for name in owned_hashes(rendered):
        path = repo / name
        new = (rendered / name).read_bytes()
        mine = path.read_bytes() if path.is_file() else None
        base = read_base(repo, manifest.files.get(name))
        if base is None and mine is not None and name in manifest.files:
            base = _base_from_history(repo, name, manifest.files[name])
        if name == NOTES_FILE and mine is not None:
            new = carry_notes(mine, new)
            base = None if base is None else carry_notes(mine, base)
        if mine is not None and f"<<<<<<< {name} (yours)".encode() in mine:
            plan.put("unresolved", name)  # an earlier upgrade's conflict, still marked
            continue
        decision = _decide(work, name, mine, base, new, force=force)
        if decision is not None:
            group, data = decision
            plan.writes[name] = data
            fresh_file = group == "changed" and name not in manifest.files
            plan.put("added" if fresh_file else group, name)
    fresh = owned_hashes(rendered)
    for name, digest in manifest.files.items():
        path = repo / name
        if name in fresh or not path.is_file():
            continue
        if sha256_file(path) == digest or force:
            plan.deletes.append(name)
            plan.put("removed", name)
        else:
            plan.put("kept", name)
    return plan


def upgrade_skill(repo: Path, force: bool = False, check: bool = False) -> UpgradeResult:
    """Give what changed after merging this skillmaker's render into a skill repo.

    With ``check`` nothing is written: the result says what would change. Otherwise the repo
    must be clean; the result is committed unless a merge left conflicts to resolve.
    """
    repo = repo.absolute()
    manifest = Manifest.read(repo)
    _refuse_downgrade(manifest, repo)
    if not check:
        _refuse_dirty(repo)
    loaded = load_config(repo / CONFIG_FILE)
    with scratch(repo / ".skillmaker") as work:
        rendered = render_owned_files(loaded.config, work)
        plan = _plan(repo, manifest, rendered, work, force)
        fresh = owned_hashes(rendered)
        g = plan.groups
        result = UpgradeResult(
            from_version=manifest.skillmaker_version,
            changed=tuple(g.get("changed", ())),
            added=tuple(g.get("added", ())),
            removed=tuple(g.get("removed", ())),
            merged=tuple(g.get("merged", ())),
            conflicts=tuple(g.get("conflicts", ())),
            overwritten=tuple(g.get("overwritten", ())),
            kept=tuple(g.get("kept", ())),
            unresolved=tuple(g.get("unresolved", ())),
            migrations=loaded.migrations,
        )
        missing_bases = any(read_base(repo, digest) is None for digest in fresh.values())
        if check or not (result.out_of_date or fresh != manifest.files or missing_bases):
            return result
        touched = _apply(repo, plan, rendered)
        touched += write_bases(repo, rendered, fresh)
        write_atomic(repo / MANIFEST, Manifest(__version__, fresh).to_json())
        touched.append(MANIFEST.as_posix())
        if loaded.migrations:
            write_atomic(repo / CONFIG_FILE, user_json(loaded))
            touched.append(CONFIG_FILE)
    if result.conflicts or result.unresolved:
        return result
    message = "\n".join(
        [
            f"Upgrade skill {loaded.config.name} to skillmaker {__version__} "
            f"(from {manifest.skillmaker_version})",
            "",
            *(result.summary_lines() or ["owned files unchanged"]),
        ]
    )
    commit = git.commit_paths(repo, sorted(set(touched)), message)
    return UpgradeResult(**{**result.__dict__, "commit": commit})


def _apply(repo: Path, plan: _Plan, rendered: Path) -> list[str]:
    for name, data in plan.writes.items():
        target = repo / name
        write_atomic(target, data)
        source = rendered / name
        if source.is_file():
            shutil.copymode(source, target)
    for name in plan.deletes:
        (repo / name).unlink()
    return [*plan.writes, *plan.deletes]
