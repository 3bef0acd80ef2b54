"""Class definitions: which files belong to which class and group, and which classes are kept.

Two layouts give each file its class (label) and group: ``folders`` (``<class>/<group>/<file>``)
and ``manifest`` (a CSV of ``path,label,group``). Classes with too few usable images, or excluded
by the config, are left out and listed with their counts; classes the class file requires must be
there with enough images.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from skillmaker.adapters.store import key_problem
from skillmaker.config.model import DataConfig
from skillmaker.data.pull import CachedObject
from skillmaker.errors import Problem, ProblemsError, UserError
from skillmaker.records import ExcludedClass, Quarantined

# Quarantine reasons of files the layout cannot place.
OUTSIDE_LAYOUT = "not in the <class>/<group>/<file> layout"
NOT_IN_MANIFEST = "not listed in the manifest"
MISSING_FROM_STORE = "listed in the manifest but not in the store"

# Reasons of excluded classes (records.ExcludedClass).
TOO_FEW = "too few examples"
EXCLUDED_BY_CONFIG = "excluded by config"

MANIFEST_COLUMNS = ("path", "label", "group")


@dataclass(frozen=True)
class SourceFile:
    """A file of the data set with the class and group its layout gives it."""

    key: str
    label: str
    group: str
    sha256: str
    path: str
    """Where the file sits, relative to the raw cache folder."""


class DefinitionFile(TypedDict):
    """A file of a class in ``definition.json``."""

    key: str
    sha256: str
    group: str


class DefinitionClass(TypedDict):
    """A kept class in ``definition.json``."""

    name: str
    count: int
    files: list[DefinitionFile]


class DefinitionRecord(TypedDict):
    """``definition.json``: the kept classes with their files, and the classes left out."""

    layout: str
    source: str
    classes: list[DefinitionClass]
    excluded: list[ExcludedClass]


@dataclass(frozen=True)
class ClassDefinition:
    """The kept classes (name -> files, in key order) and the excluded ones."""

    layout: str
    source: str
    classes: dict[str, tuple[SourceFile, ...]]
    excluded: tuple[ExcludedClass, ...]

    @property
    def labels(self) -> list[str]:
        """Give the kept class names, sorted (the label index order)."""
        return sorted(self.classes)

    def record(self) -> DefinitionRecord:
        """Give ``definition.json``."""
        return {
            "layout": self.layout,
            "source": self.source,
            "classes": [
                {
                    "name": name,
                    "count": len(self.classes[name]),
                    "files": [
                        {"key": f.key, "sha256": f.sha256, "group": f.group}
                        for f in self.classes[name]
                    ],
                }
                for name in self.labels
            ],
            "excluded": list(self.excluded),
        }


def _source_file(obj: CachedObject, label: str, group: str) -> SourceFile:
    return SourceFile(obj.key, label, group, obj.sha256, obj.relative_path)


def files_from_folders(
    objects: Iterable[CachedObject],
) -> tuple[list[SourceFile], list[Quarantined]]:
    """Give the files of the ``folders`` layout and the objects that do not fit it."""
    files: list[SourceFile] = []
    misfits: list[Quarantined] = []
    for obj in objects:
        parts = obj.key.split("/")
        if len(parts) != 3 or any(p.startswith(".") for p in parts[:2]):
            misfits.append({"key": obj.key, "reason": OUTSIDE_LAYOUT})
        else:
            files.append(_source_file(obj, parts[0], parts[1]))
    return files, misfits


@dataclass(frozen=True)
class ManifestRow:
    """One row of a manifest and the line it was read from."""

    line: int
    path: str
    label: str
    group: str


def parse_manifest(text: str, where: str) -> list[ManifestRow]:
    """Give the rows of a ``path,label,group`` CSV manifest, or a user error naming the line."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UserError(f"{where}: line 1: not valid CSV: {exc}") from None
    columns = [name.strip().lower() for name in header or []]
    missing = [name for name in MANIFEST_COLUMNS if name not in columns]
    if header is None or missing or len(set(columns)) != len(columns):
        raise UserError(
            f"{where}: line 1: the header must name the columns path,label,group "
            f"(got {','.join(header or []) or 'an empty file'})"
        )
    position = {name: columns.index(name) for name in MANIFEST_COLUMNS}
    rows: list[ManifestRow] = []
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            raise UserError(f"{where}: line {reader.line_num}: not valid CSV: {exc}") from None
        if fields is None:
            break
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue  # blank lines are allowed
        at = f"{where}: line {line}"
        if len(fields) != len(columns):
            problems.append(Problem(at, f"has {len(fields)} fields, the header has {len(columns)}"))
            continue
        path, label, group = (fields[position[name]].strip() for name in MANIFEST_COLUMNS)
        empty = [
            name
            for name, value in zip(MANIFEST_COLUMNS, (path, label, group), strict=True)
            if not value
        ]
        if empty:
            problems.append(Problem(at, f"empty {' and '.join(empty)}"))
            continue
        problem = key_problem(path)
        if problem is not None:
            problems.append(Problem(at, f"path {path!r} {problem}"))
            continue
        if path in first_line:
            problems.append(
                Problem(at, f"path {path!r} is listed again (first on line {first_line[path]})")
            )
            continue
        first_line[path] = line
        rows.append(ManifestRow(line, path, label, group))
    if problems:
        raise ProblemsError(problems)
    return rows


def files_from_manifest(
    rows: Sequence[ManifestRow], manifest_key: str, objects: Iterable[CachedObject]
) -> tuple[list[SourceFile], list[Quarantined]]:
    """Give the files a manifest lists, with the objects it leaves out and the rows it misses."""
    by_key = {obj.key: obj for obj in objects}
    listed = {row.path for row in rows}
    files = [_source_file(by_key[r.path], r.label, r.group) for r in rows if r.path in by_key]
    unplaced: list[Quarantined] = [
        {"key": r.path, "reason": MISSING_FROM_STORE} for r in rows if r.path not in by_key
    ]
    unplaced += [
        {"key": key, "reason": NOT_IN_MANIFEST}
        for key in by_key
        if key not in listed and key != manifest_key
    ]
    return sorted(files, key=lambda f: f.key), sorted(unplaced, key=lambda q: q["key"])


def define_classes(
    files: Iterable[SourceFile],
    data: DataConfig,
    *,
    required: Sequence[str] = (),
    class_file: str = "data.class_file",
) -> ClassDefinition:
    """Give the kept and excluded classes of usable files, or a user error for required ones."""
    by_class: dict[str, list[SourceFile]] = defaultdict(list)
    for item in files:
        by_class[item.label].append(item)
    kept: dict[str, tuple[SourceFile, ...]] = {}
    excluded: list[ExcludedClass] = []
    for name in sorted(by_class):
        members = tuple(sorted(by_class[name], key=lambda f: f.key))
        if name in data.exclude_classes:
            excluded.append({"name": name, "count": len(members), "reason": EXCLUDED_BY_CONFIG})
        elif len(members) < data.min_examples_per_class:
            excluded.append({"name": name, "count": len(members), "reason": TOO_FEW})
        else:
            kept[name] = members
    problems = []
    for name in required:
        count = len(by_class.get(name, ()))
        if name not in kept:
            problems.append(
                Problem(
                    f"{class_file}: class {name!r}",
                    f"has {count} usable image(s) in {data.source}, "
                    f"needs at least {data.min_examples_per_class} (data.min_examples_per_class)",
                )
            )
    if problems:
        raise ProblemsError(problems)
    if len(kept) < 2:
        found = ", ".join(f"{e['name']} ({e['count']})" for e in excluded) or "none"
        raise UserError(
            f"{data.source}: a classifier needs at least two classes with "
            f"{data.min_examples_per_class} or more usable images "
            f"(kept: {', '.join(kept) or 'none'}; left out: {found})"
        )
    layout = data.layout
    return ClassDefinition(layout, data.source, kept, tuple(excluded))
