"""Class definitions from the folders layout or a CSV manifest; small classes left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from skillmaker.config.model import DataConfig
from skillmaker.data.definition import (
    EXCLUDED_BY_CONFIG,
    MISSING_FROM_STORE,
    NOT_IN_MANIFEST,
    OUTSIDE_LAYOUT,
    TOO_FEW,
    SourceFile,
    define_classes,
    files_from_folders,
    files_from_manifest,
    parse_manifest,
)
from skillmaker.data.pull import CachedObject
from skillmaker.errors import ExitCode, ProblemsError, UserError

WHERE = "file:///data/manifest.csv"


def _objects(*keys: str) -> list[CachedObject]:
    return [
        CachedObject(k, 1, "etag", f"sha-{k}", Path("/cache/objects") / k) for k in sorted(keys)
    ]


def _data(**fields: object) -> DataConfig:
    return DataConfig.model_validate({"source": "file:///data", **fields})


def _files(counts: dict[str, int]) -> list[SourceFile]:
    return [
        SourceFile(f"{label}/g{i}/{i}.png", label, f"{label}-g{i}", f"{label}{i}", "p")
        for label, count in counts.items()
        for i in range(count)
    ]


def test_folders_layout_gives_class_and_group_from_the_path() -> None:
    files, misfits = files_from_folders(
        _objects(
            "cat/advert-1/a.jpg",
            "cat/advert-1/b.jpg",
            "dog/advert-2/c.png",
            "README.md",
            "cat/loose.jpg",
            "cat/advert-1/deeper/d.jpg",
            ".git/x/y",
        )
    )
    assert [(f.key, f.label, f.group) for f in files] == [
        ("cat/advert-1/a.jpg", "cat", "advert-1"),
        ("cat/advert-1/b.jpg", "cat", "advert-1"),
        ("dog/advert-2/c.png", "dog", "advert-2"),
    ]
    assert files[0].sha256 == "sha-cat/advert-1/a.jpg"
    assert files[0].path == "objects/cat/advert-1/a.jpg"
    assert sorted(m["key"] for m in misfits) == [
        ".git/x/y",
        "README.md",
        "cat/advert-1/deeper/d.jpg",
        "cat/loose.jpg",
    ]
    assert {m["reason"] for m in misfits} == {OUTSIDE_LAYOUT}


def test_manifest_rows_are_read_in_any_column_order() -> None:
    text = "\ufeffGroup, path ,Label,notes\nad1,img/a.jpg,cat,x\n\nad2, img/b.jpg ,dog,\n"
    rows = parse_manifest(text, WHERE)
    assert [(r.line, r.path, r.label, r.group) for r in rows] == [
        (2, "img/a.jpg", "cat", "ad1"),
        (4, "img/b.jpg", "dog", "ad2"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the header must name the columns path,label,group (got an empty file)"),
        ("path,label\na,b\n", "line 1: the header must name the columns path,label,group"),
        ("path,label,group\na.jpg,cat\n", "line 2: has 2 fields, the header has 3"),
        ("path,label,group\na.jpg,cat,g\nb.jpg,,g\n", "line 3: empty label"),
        ("path,label,group\n,,\n,cat,\n", "line 3: empty path and group"),
        ("path,label,group\n../etc/passwd,cat,g\n", "line 2: path '../etc/passwd' has a '..'"),
        ("path,label,group\n/abs.jpg,cat,g\n", "line 2: path '/abs.jpg' is an absolute path"),
        (
            "path,label,group\na.jpg,cat,g\nb.jpg,cat,g\na.jpg,dog,h\n",
            "line 4: path 'a.jpg' is listed again (first on line 2)",
        ),
    ],
)
def test_malformed_manifests_name_the_file_and_line(text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_manifest(text, WHERE)
    assert f"{WHERE}: {message}" in str(caught.value)
    assert caught.value.exit_code == ExitCode.USER_ERROR


def test_every_malformed_row_is_reported_at_once() -> None:
    text = "path,label,group\na.jpg,cat\nb.jpg,dog,g\nc.jpg,,g\n"
    with pytest.raises(ProblemsError) as caught:
        parse_manifest(text, WHERE)
    assert [str(p) for p in caught.value.problems] == [
        f"{WHERE}: line 2: has 2 fields, the header has 3",
        f"{WHERE}: line 4: empty label",
    ]


def test_manifest_files_and_what_it_leaves_out() -> None:
    rows = parse_manifest("path,label,group\nimg/a.jpg,cat,1\nimg/gone.jpg,dog,2\n", WHERE)
    files, unplaced = files_from_manifest(
        rows, "manifest.csv", _objects("img/a.jpg", "img/extra.jpg", "manifest.csv")
    )
    assert [(f.key, f.label, f.group) for f in files] == [("img/a.jpg", "cat", "1")]
    assert unplaced == [
        {"key": "img/extra.jpg", "reason": NOT_IN_MANIFEST},
        {"key": "img/gone.jpg", "reason": MISSING_FROM_STORE},
    ]


def test_small_and_excluded_classes_are_listed_with_their_counts() -> None:
    definition = define_classes(
        _files({"cat": 5, "dog": 4, "fox": 3, "owl": 6}),
        _data(min_examples_per_class=4, exclude_classes=["owl"]),
    )
    assert definition.labels == ["cat", "dog"]
    assert [f.key for f in definition.classes["dog"]] == [f"dog/g{i}/{i}.png" for i in range(4)]
    assert list(definition.excluded) == [
        {"name": "fox", "count": 3, "reason": TOO_FEW},
        {"name": "owl", "count": 6, "reason": EXCLUDED_BY_CONFIG},
    ]
    record = definition.record()
    assert record["layout"] == "folders"
    assert [(c["name"], c["count"]) for c in record["classes"]] == [("cat", 5), ("dog", 4)]
    assert record["classes"][0]["files"][0] == {
        "key": "cat/g0/0.png",
        "sha256": "cat0",
        "group": "cat-g0",
    }


def test_a_required_class_that_is_missing_or_small_is_a_user_error() -> None:
    with pytest.raises(ProblemsError) as caught:
        define_classes(
            _files({"cat": 5, "dog": 5, "fox": 2}),
            _data(min_examples_per_class=4),
            required=["cat", "fox", "wolf"],
            class_file="classes.json",
        )
    assert [str(p) for p in caught.value.problems] == [
        "classes.json: class 'fox': has 2 usable image(s) in file:///data, "
        "needs at least 4 (data.min_examples_per_class)",
        "classes.json: class 'wolf': has 0 usable image(s) in file:///data, "
        "needs at least 4 (data.min_examples_per_class)",
    ]
    assert caught.value.exit_code == ExitCode.USER_ERROR


def test_fewer_than_two_kept_classes_is_a_user_error() -> None:
    with pytest.raises(
        UserError, match=r"at least two classes .*\(kept: cat; left out: dog \(1\)\)"
    ):
        define_classes(_files({"cat": 5, "dog": 1}), _data(min_examples_per_class=2))
