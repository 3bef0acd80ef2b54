"""The data stage end to end: a real store, a real skill repo, ``skillmaker data pull``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from skillmaker import cli
from skillmaker.adapters import git
from skillmaker.adapters.store import Store, open_store
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.data import images
from skillmaker.data.audit import manifest_hash
from skillmaker.data.dataset import DATASET, local_dataset, prepare, prepare_dataset
from skillmaker.data.definition import MISSING_FROM_STORE, NOT_IN_MANIFEST, OUTSIDE_LAYOUT
from skillmaker.data.ledger import read_ledger
from skillmaker.domain.assign import CROSS_SPLIT_DUPLICATE, check_split_invariants, too_few_groups
from skillmaker.domain.layout import ledger_key, run_key
from skillmaker.errors import ExitCode, ProblemsError
from skillmaker.records import AUDIT, DEFINITION
from tests.data.conftest import plant
from tests.data.pictures import encode, picture, png
from tests.data.test_images import BAD

CLASSES = ("cat", "dog", "fox")


def _put_class_images(store: Store, groups: range, *, per_group: int = 2) -> dict[str, bytes]:
    written = {}
    for c, label in enumerate(CLASSES):
        for g in groups:
            for k in range(per_group):
                key = f"{label}/{label}-ad{g:03d}/{k}.png"
                written[key] = png(10_000 * c + 10 * g + k, 32)
                store.put_bytes(key, written[key])
    return written


def _skill(
    tmp_path: Path, source: str, *, repo_name: str = "repo", version: int = 1, **sections: Any
) -> SkillContext:
    repo = tmp_path / repo_name
    repo.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "name": "pets",
        "title": "Pets",
        "ticket": "PET-1",
        "owner": "owner@example.com",
        "data": {"source": source, "min_examples_per_class": 5, "max_pixels": 2_000},
        "deploy": {"artifacts": (tmp_path / "artifacts").as_uri(), "infra_repo": "infra"},
    }
    for name, section in sections.items():
        config[name] = {**config.get(name, {}), **section}
    (repo / "skill.json").write_text(json.dumps(config), encoding="utf-8")
    # A run belongs to one commit: the stage commands refuse a run of another one.
    if (repo / ".git").exists():
        git.commit_all(repo, "change the config")
    else:
        git.init_and_commit(repo, "skill")
    ctx = load_skill(repo, out=io.StringIO())
    ctx.set_current_run(RunPointer(version, git.head_commit(repo)))
    return ctx


def test_the_data_stage_pulls_checks_splits_and_audits(store: Store, tmp_path: Path) -> None:
    originals = _put_class_images(store, range(24))
    # Bad files of every kind, in the layout, and files the layout cannot place.
    bad = {f"dog/bad-{i}/file.png": data for i, (data, _) in enumerate(BAD.values())}
    bad["fox/huge/big.png"] = encode(picture(7, 64))  # 4,096 pixels > max_pixels 2,000
    for key, data in bad.items():
        store.put_bytes(key, data)
    store.put_bytes("README.txt", b"about the data")
    store.put_bytes("owl/owl-ad1/a.png", png(90_001, 32))  # a class with 2 images: excluded
    store.put_bytes("owl/owl-ad2/a.png", png(90_002, 32))
    # Copies of cat/cat-ad003/0.png in other adverts, and one picture under two classes.
    copy_of = "cat/cat-ad003/0.png"
    store.put_bytes("cat/cat-ad900/copy.jpg", encode(picture(30, 32).resize((40, 40)), "JPEG"))
    store.put_bytes("cat/cat-ad901/same.png", originals[copy_of])
    store.put_bytes("dog/dog-ad500/x.png", png(77_777, 32))
    store.put_bytes("fox/fox-ad500/x.png", png(77_777, 32))
    plant(store, "cat/cat-ad1\\x/evil.png", png(5, 32))

    ctx = _skill(tmp_path, store.uri)
    prepared = prepare(ctx, workers=4)
    dataset, audit = prepared.dataset, prepared.audit

    assert dataset["labels"] == ["cat", "dog", "fox"]
    keys = [i["key"] for i in dataset["items"]]
    assert keys == sorted([*originals, "cat/cat-ad900/copy.jpg", "cat/cat-ad901/same.png"])
    raw = ctx.workspace.raw_cache
    for item in dataset["items"]:
        assert (raw / item["path"]).is_file()
    check_split_invariants(dataset["items"], dataset["labels"])
    split = {i["key"]: i["split"] for i in dataset["items"]}
    assert split["cat/cat-ad900/copy.jpg"] == split[copy_of]
    assert split["cat/cat-ad901/same.png"] == split[copy_of]

    reasons = {q["key"]: q["reason"] for q in audit["quarantined"]}
    for index, (_, reason) in enumerate(BAD.values()):
        assert reasons[f"dog/bad-{index}/file.png"] == reason
    assert reasons["fox/huge/big.png"] == images.TOO_LARGE
    assert reasons["README.txt"] == OUTSIDE_LAYOUT
    assert reasons["dog/dog-ad500/x.png"] == "same picture under different classes"
    assert reasons["fox/fox-ad500/x.png"] == "same picture under different classes"
    assert reasons["cat/cat-ad1\\x/evil.png"] == images.UNSAFE_KEY
    assert isinstance(ctx.out, io.StringIO)
    assert (
        "WARNING 'cat/cat-ad1\\\\x/evil.png': unsafe key, contains a backslash"
        in ctx.out.getvalue()
    )
    assert audit["excluded"] == [{"name": "owl", "count": 2, "reason": "too few examples"}]
    assert audit["images"] == len(dataset["items"])
    counts = [c["counts"] for c in audit["classes"]]
    assert sum(c["train"] + c["val"] + c["test"] for c in counts) == audit["images"]
    merged = [d for d in audit["duplicate_groups"] if copy_of in d["members"]]
    assert merged == [
        {
            "group": "cat-ad003",
            "kind": "near",
            "members": ["cat/cat-ad003/0.png", "cat/cat-ad900/copy.jpg", "cat/cat-ad901/same.png"],
        }
    ]

    artifacts = ctx.artifacts()
    ledger, _ = read_ledger(artifacts, ledger_key("pets"))
    assert audit["ledger_hash"] == ledger.ledger_hash()
    for item in dataset["items"]:
        assert ledger.split_of(item["group"]) == item["split"]
    run_dir = ctx.run_dir()
    for name in (DEFINITION, DATASET, AUDIT):
        local = (run_dir / name).read_bytes()
        assert artifacts.get_bytes(run_key("pets", 1, name)) == local
    assert json.loads((run_dir / DATASET).read_text()) == dataset
    definition = json.loads((run_dir / DEFINITION).read_text())
    assert [c["name"] for c in definition["classes"]] == ["cat", "dog", "fox"]
    assert definition["classes"][0]["count"] == 24 * 2 + 2


def test_more_data_and_new_fractions_never_move_a_group(store: Store, tmp_path: Path) -> None:
    _put_class_images(store, range(20))
    first = prepare_dataset(_skill(tmp_path, store.uri), workers=4)

    _put_class_images(store, range(20, 30))
    # Altered copies of first-pull pictures turn up in new adverts of the second pull.
    copies = {
        "dog/dog-ad700/reencoded.jpg": (
            "dog/dog-ad002/0.png",
            encode(picture(10_020, 32), "JPEG", quality=40),
        ),
        "dog/dog-ad701/resized.png": (
            "dog/dog-ad005/1.png",
            encode(picture(10_051, 32).resize((40, 40))),
        ),
        "fox/fox-ad702/recompressed.webp": (
            "fox/fox-ad009/0.png",
            encode(picture(20_090, 32), "WEBP", quality=50),
        ),
    }
    for key, (_, data) in copies.items():
        store.put_bytes(key, data)
    later = _skill(
        tmp_path, store.uri, version=2, split={"train": 0.5, "val": 0.25, "test": 0.25, "seed": 4}
    )
    second = prepare(later, workers=4)
    assert isinstance(later.out, io.StringIO)
    fetched = 10 * 6 + len(copies)
    assert f"({fetched} fetched, {20 * 6} already cached" in later.out.getvalue()
    before = {i["key"]: i["split"] for i in first["items"]}
    after = {i["key"]: i["split"] for i in second.dataset["items"]}
    assert {k: after[k] for k in before} == before
    assert len(after) == 30 * 6 + len(copies)
    for key, (original, _) in copies.items():
        assert after[key] == before[original], key
        assert any({key, original} <= set(d["members"]) for d in second.audit["duplicate_groups"])
    pairs = [(i["key"], i["sha256"]) for i in second.dataset["items"]]
    assert second.audit["manifest_hash"] == manifest_hash(pairs)


def test_a_picture_added_to_an_old_group_in_another_split_is_set_aside_loudly(
    tmp_path: Path,
) -> None:
    store = open_store((tmp_path / "images").as_uri())
    written = _put_class_images(store, range(20))
    first = prepare_dataset(_skill(tmp_path, store.uri))
    split_of = {i["key"]: i["split"] for i in first["items"]}
    source = next(k for k in sorted(split_of) if split_of[k] == "train")
    target = next(k for k in sorted(split_of) if split_of[k] == "test" and k[:3] == source[:3])
    leak = f"{target.rsplit('/', 1)[0]}/copy-of-a-training-image.png"
    store.put_bytes(leak, written[source])

    later = _skill(tmp_path, store.uri, version=2)
    second = prepare(later, workers=2)
    assert {"key": leak, "reason": CROSS_SPLIT_DUPLICATE} in second.audit["quarantined"]
    assert leak not in {i["key"] for i in second.dataset["items"]}
    after = {i["key"]: i["split"] for i in second.dataset["items"]}
    assert after == split_of  # nothing moved; the copy is set aside instead
    assert isinstance(later.out, io.StringIO)
    assert f"WARNING {leak}: {CROSS_SPLIT_DUPLICATE}" in later.out.getvalue()
    assert any({source, leak} <= set(d["members"]) for d in second.audit["duplicate_groups"])


def test_near_copies_under_another_class_and_mirrored_copies(tmp_path: Path) -> None:
    store = open_store((tmp_path / "images").as_uri())
    written = _put_class_images(store, range(12))
    resized = encode(picture(10_051, 32).resize((40, 40)))  # dog/dog-ad005/1.png, resized
    store.put_bytes("fox/fox-ad800/resized-dog.png", resized)
    mirrored = encode(picture(0, 32).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    store.put_bytes("cat/cat-ad801/mirrored.png", mirrored)  # cat/cat-ad000/0.png, mirrored
    ctx = _skill(tmp_path, store.uri, augment={"horizontal_flip": True})
    prepared = prepare(ctx, workers=2)
    reasons = {q["key"]: q["reason"] for q in prepared.audit["quarantined"]}
    assert reasons["fox/fox-ad800/resized-dog.png"] == (
        "label conflict: a near copy of dog/dog-ad005/1.png (class dog)"
    )
    assert reasons["dog/dog-ad005/1.png"] == (
        "label conflict: a near copy of fox/fox-ad800/resized-dog.png (class fox)"
    )
    split = {i["key"]: i["split"] for i in prepared.dataset["items"]}
    assert split["cat/cat-ad801/mirrored.png"] == split["cat/cat-ad000/0.png"]
    assert any(
        {"cat/cat-ad801/mirrored.png", "cat/cat-ad000/0.png"} <= set(d["members"])
        for d in prepared.audit["duplicate_groups"]
    )
    assert len(written) + 2 - 2 == len(split)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out, err)
    return code, out.getvalue(), err.getvalue()


def test_data_pull_command_prints_a_summary(tmp_path: Path) -> None:
    store = open_store((tmp_path / "images").as_uri())
    _put_class_images(store, range(20))
    store.put_bytes("cat/cat-ad000/empty.png", b"")
    ctx = _skill(tmp_path, store.uri)
    code, out, err = _run(["data", "pull", "--repo", str(ctx.repo), "--workers", "2"])
    assert (code, err) == (ExitCode.OK, "")
    assert "images: 120 in 3 classes" in out
    assert "quarantined (empty): 1" in out
    assert "duplicate groups merged: 0" in out
    assert "split: train " in out
    assert "test images can show an accuracy tolerance of" in out
    assert "WARNING gate.accuracy_tolerance" in out
    assert "too few for the per-class rule to judge: cat, dog, fox" in out


def test_a_missing_required_class_stops_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    store = open_store((tmp_path / "images").as_uri())
    _put_class_images(store, range(20))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "classes.json").write_text(json.dumps(["cat", "dog", "fox", "wolf"]))
    ctx = _skill(tmp_path, store.uri, data={"class_file": "classes.json"})
    code, _, err = _run(["data", "pull", "--repo", str(ctx.repo)])
    assert code == ExitCode.USER_ERROR
    assert "classes.json: class 'wolf': has 0 usable image(s)" in err
    assert "Traceback" not in err
    # Only the stage runner's record of the failure; none of the data stage's records.
    assert not [p.name for p in ctx.run_dir().iterdir() if not p.name.startswith("run.json")]
    assert ctx.artifacts().head(ledger_key("pets")) is None


def test_a_class_with_too_few_groups_is_excluded_and_the_stage_goes_on(tmp_path: Path) -> None:
    store = open_store((tmp_path / "images").as_uri())
    _put_class_images(store, range(10), per_group=1)
    for g in range(2):  # a rare variant: enough images, too few groups
        for k in range(4):
            store.put_bytes(f"owl/owl-ad{g}/{k}.png", png(50_000 + 10 * g + k, 32))
    ctx = _skill(tmp_path, store.uri)
    code, out, err = _run(["data", "pull", "--repo", str(ctx.repo)])
    assert (code, err) == (ExitCode.OK, "")
    reason = too_few_groups(2, 3)
    assert f"excluded class owl: 8 images, {reason}" in out
    audit = json.loads((ctx.run_dir() / AUDIT).read_text())
    assert {"name": "owl", "count": 8, "reason": reason} in audit["excluded"]
    dataset = json.loads((ctx.run_dir() / DATASET).read_text())
    assert dataset["labels"] == ["cat", "dog", "fox"]
    check_split_invariants(dataset["items"], dataset["labels"])


def test_renamed_folders_and_a_lost_ledger_move_no_image(store: Store, tmp_path: Path) -> None:
    written = _put_class_images(store, range(12))
    first = prepare_dataset(_skill(tmp_path, store.uri), workers=2)
    before = {i["sha256"]: i["split"] for i in first["items"]}
    for key, data in written.items():  # every advert folder renamed
        store.delete(key)
        label, group, name = key.split("/")
        store.put_bytes(f"{label}/renamed-{group}/{name}", data)
    ctx = _skill(
        tmp_path, store.uri, version=2, split={"seed": 8, "train": 0.4, "val": 0.3, "test": 0.3}
    )
    ctx.artifacts().delete(ledger_key("pets"))  # and the ledger lost
    second = prepare(ctx, workers=2)
    assert {i["sha256"]: i["split"] for i in second.dataset["items"]} == before
    assert isinstance(ctx.out, io.StringIO)
    assert "rebuilt it from 1 stored run(s)" in ctx.out.getvalue()


def test_a_later_batch_of_copies_of_test_images_never_shrinks_the_test_set(
    tmp_path: Path,
) -> None:
    store = open_store((tmp_path / "images").as_uri())
    _put_class_images(store, range(12))
    first = prepare_dataset(_skill(tmp_path, store.uri), workers=2)
    tested = [i for i in first["items"] if i["split"] == "test"]
    for n, item in enumerate(tested):  # re-encoded copies filed in new adverts
        label, group, name = item["key"].split("/")
        seed = 10_000 * CLASSES.index(label) + 10 * int(group[-3:]) + int(name[0])
        data = encode(picture(seed, 32), "JPEG", quality=50)
        store.put_bytes(f"{label}/{label}-late{n:03d}/copy.jpg", data)
    second = prepare(_skill(tmp_path, store.uri, version=2), workers=2)
    after = {i["key"]: i["split"] for i in second.dataset["items"]}
    assert all(after[i["key"]] == "test" for i in tested)  # the originals stay, in test
    copies = [k for k in after if "-late" in k]
    assert len(copies) == len(tested)
    assert all(after[k] == "test" for k in copies)  # the newcomers follow them


def _tamper(tmp_path: Path, store: Store, move: str) -> tuple[SkillContext, Path]:
    _put_class_images(store, range(12))
    ctx = _skill(tmp_path, store.uri)
    prepare(ctx, workers=2)
    path = ctx.run_dir() / DATASET
    dataset = json.loads(path.read_text())
    items = dataset["items"]
    tests = [i for i in items if i["split"] == "test"]
    if move == "val-replaced-by-test":
        vals = [i for i in items if i["split"] == "val"]
        for val, test in zip(vals, tests, strict=False):
            val.update({k: test[k] for k in ("sha256", "path")})
    else:
        for test in tests[: len(tests) // 2]:
            test["split"] = "train"
    path.write_text(json.dumps(dataset))
    return ctx, path


@pytest.mark.parametrize("move", ["val-replaced-by-test", "test-moved-to-train"])
def test_train_and_evaluate_refuse_a_split_that_disagrees_with_the_ledger(
    tmp_path: Path, move: str
) -> None:
    store = open_store((tmp_path / "images").as_uri())
    ctx, path = _tamper(tmp_path, store, move)
    with pytest.raises(ProblemsError) as caught:
        local_dataset(ctx, workers=1)  # what the train and evaluate stages read their data with
    assert caught.value.exit_code == ExitCode.USER_ERROR
    problems = [str(p) for p in caught.value.problems]
    listed = "val" if move == "val-replaced-by-test" else "train"
    assert problems[0].startswith(f"{path}: ")
    assert f"is listed in {listed}, the split ledger has it in test" in problems[0]


def _manifest_store(tmp_path: Path, rows: list[str]) -> Store:
    store = open_store((tmp_path / "images").as_uri())
    written = _put_class_images(store, range(20))
    lines = ["path,label,group"] + [f"{k},{k.split('/')[0]},{k.split('/')[1]}" for k in written]
    store.put_bytes("labels/manifest.csv", "\n".join([*lines, *rows]).encode() + b"\n")
    return store


def test_manifest_layout_labels_files_from_the_csv(tmp_path: Path) -> None:
    store = _manifest_store(tmp_path, ["cat/not-there.png,cat,x"])
    store.put_bytes("unlisted/a/b.png", png(1, 32))
    ctx = _skill(
        tmp_path, store.uri, data={"layout": "manifest", "manifest": "labels/manifest.csv"}
    )
    prepared = prepare(ctx)
    assert len(prepared.dataset["items"]) == 120
    reasons = {q["key"]: q["reason"] for q in prepared.audit["quarantined"]}
    assert reasons == {"cat/not-there.png": MISSING_FROM_STORE, "unlisted/a/b.png": NOT_IN_MANIFEST}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("cat/x.png,cat", "line 122: has 2 fields, the header has 3"),
        ("../up.png,cat,g", "line 122: path '../up.png' has a '..' component"),
    ],
)
def test_a_malformed_manifest_row_stops_with_exit_2(tmp_path: Path, row: str, message: str) -> None:
    store = _manifest_store(tmp_path, [row])
    ctx = _skill(
        tmp_path, store.uri, data={"layout": "manifest", "manifest": "labels/manifest.csv"}
    )
    code, _, err = _run(["data", "pull", "--repo", str(ctx.repo)])
    assert code == ExitCode.USER_ERROR
    assert f"{store.uri}/labels/manifest.csv: {message}" in err


def test_workers_must_be_a_positive_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _run(["data", "pull", "--repo", str(tmp_path), "--workers", "0"])
    assert code == ExitCode.USER_ERROR
    assert "--workers: must be a whole number of at least 1 (got '0')" in capsys.readouterr().err


def test_data_pull_outside_a_skill_repo_is_a_user_error(tmp_path: Path) -> None:
    code, _, err = _run(["data", "pull", "--repo", str(tmp_path)])
    assert code == ExitCode.USER_ERROR
    assert "not a skill repo" in err
