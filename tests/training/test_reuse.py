"""No retraining when the model cannot have changed: the deployed model is taken, and said so."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from skillmaker.config import SkillConfig
from skillmaker.context import load_skill
from skillmaker.domain.layout import run_key
from skillmaker.domain.records import TrainRecord
from skillmaker.records import HISTORY, LABELS, MODEL, NORMALISATION, STAMP, TRAIN, write_record
from skillmaker.registry import mark_deployed
from skillmaker.training.reuse import model_fingerprint, reuse_deployed_model
from tests.skill_repos import SkillFactory, skill_config

HASHES = {"manifest_hash": "m" * 64, "ledger_hash": "l" * 64}


def _config(**changes: Any) -> SkillConfig:
    raw = skill_config("digits", "file:///tmp/artifacts", "/tmp/infra")
    raw["profiles"] = {"laptop": {"batch_size": 16}, "server": {"batch_size": 256}}
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return SkillConfig.model_validate(raw)


def test_the_fingerprint_ignores_what_cannot_change_the_model() -> None:
    base = model_fingerprint(_config(), "laptop", **HASHES)
    assert model_fingerprint(_config(), "laptop", **HASHES) == base
    for harmless in (
        {"title": "Another title"},
        {"gate__min_accuracy": 0.99},
        {"ci": {"timeout_hours": 3}},
        {"images": {"extra_run": ["true"]}},
        {"deploy__stack_name": "other"},
        {"profiles__server": {"batch_size": 512}},  # a profile not in use
    ):
        assert model_fingerprint(_config(**harmless), "laptop", **HASHES) == base, harmless
    for relevant in ({"train__epochs": 3}, {"image": {"height": 32}}, {"split__seed": 9}):
        assert model_fingerprint(_config(**relevant), "laptop", **HASHES) != base, relevant
    assert model_fingerprint(_config(), "server", **HASHES) != base
    assert model_fingerprint(_config(), "laptop", **{**HASHES, "ledger_hash": "x" * 64}) != base


def _train_record(fingerprint: str) -> TrainRecord:
    return {
        "config_hash": "c" * 64,
        "manifest_hash": HASHES["manifest_hash"],
        "ledger_hash": HASHES["ledger_hash"],
        "profile": None,
        "network": "small_cnn",
        "batch_size": 32,
        "image_size": [16, 16, 1],
        "mixed_precision": False,
        "strategy": "none",
        "epochs_run": 4,
        "best_epoch": 3,
        "seconds": 12.5,
        "hardware": {},
        "libraries": {},
        "model_fingerprint": fingerprint,
    }


def _deploy_version_1(skill_repo: Path, fingerprint: str) -> dict[str, bytes]:
    """Store version 1's files as its train stage would, and mark it deployed."""
    ctx = load_skill(skill_repo)
    store = ctx.artifacts()
    folder = skill_repo / "v1-files"
    folder.mkdir()
    files = {
        MODEL: b"weights of version 1",
        LABELS: json.dumps(["a", "b"]).encode(),
        NORMALISATION: json.dumps({"mean": [0.5], "std": [0.2]}).encode(),
        HISTORY: json.dumps({"epochs": []}).encode(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
        store.upload(folder / name, run_key(ctx.name, 1, name))
    write_record(folder / TRAIN, _train_record(fingerprint))
    store.upload(folder / TRAIN, run_key(ctx.name, 1, TRAIN))
    mark_deployed(
        store, ctx.name, skill_version=1, code_version="a" * 40, image_tag="digits:1",
        gate="passed", infra_commit=None,
    )  # fmt: skip
    return files


def test_a_run_with_the_deployed_fingerprint_reuses_its_model(make_skill: SkillFactory) -> None:
    skill = make_skill("digits")
    assert skill.run("version").code == 0  # version 1
    files = _deploy_version_1(skill.repo, "f" * 64)
    assert skill.run("version").code == 0  # version 2: a README-only upgrade, say
    out = io.StringIO()
    ctx = load_skill(skill.repo, out=out)
    assert ctx.current_run().skill_version == 2

    assert reuse_deployed_model(ctx, "f" * 64) == 1
    assert "not retrained" in out.getvalue() and "deployed v1" in out.getvalue()
    store = ctx.artifacts()
    for name, data in files.items():
        assert store.get_bytes(run_key("digits", 2, name)) == data
    train = json.loads(store.get_bytes(run_key("digits", 2, TRAIN)))
    assert train["reused_from"] == 1 and train["model_fingerprint"] == "f" * 64
    stamp = json.loads(store.get_bytes(run_key("digits", 2, STAMP)))
    assert stamp["skill_version"] == 2  # the reused model answers as the new version


def test_a_changed_fingerprint_trains(make_skill: SkillFactory) -> None:
    skill = make_skill("digits")
    assert skill.run("version").code == 0
    _deploy_version_1(skill.repo, "f" * 64)
    assert skill.run("version").code == 0
    ctx = load_skill(skill.repo, out=io.StringIO())
    assert reuse_deployed_model(ctx, "e" * 64) is None
    assert not (ctx.run_dir() / MODEL).exists()


def test_nothing_deployed_trains(make_skill: SkillFactory) -> None:
    skill = make_skill("digits")
    assert skill.run("version").code == 0
    ctx = load_skill(skill.repo, out=io.StringIO())
    assert reuse_deployed_model(ctx, "f" * 64) is None


def _write_small_digits(root: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    taken: dict[int, int] = {}
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        if label > 2 or taken.get(int(label), 0) >= 40:
            continue
        taken[int(label)] = taken.get(int(label), 0) + 1
        folder = root / str(int(label)) / f"writer-{index:05d}"
        folder.mkdir(parents=True)
        Image.fromarray((pixels * 15).astype("uint8"), mode="L").save(folder / f"{index}.png")


def test_the_train_stage_reuses_the_deployed_model_and_retrains_after_a_change(
    tmp_path: Path, make_skill: SkillFactory
) -> None:
    data = tmp_path / "small-digits"
    _write_small_digits(data)
    skill = make_skill(
        "digits",
        data={"source": data.as_uri(), "min_examples_per_class": 5},
        image={"height": 8, "width": 8, "channels": 1},
        split={"near_duplicate_distance": 0},
        model={"filters": [4], "dense_units": 8},
        train={"epochs": 1, "batch_size": 16},
    )
    for stage in ("version", "data", "train"):
        result = skill.run(*(("data", "pull") if stage == "data" else (stage,)))
        assert result.code == 0, result.err
    ctx = load_skill(skill.repo, out=io.StringIO())
    store = ctx.artifacts()
    first = json.loads(store.get_bytes(run_key("digits", 1, TRAIN)))
    assert len(first["model_fingerprint"]) == 64 and "reused_from" not in first
    mark_deployed(
        store, "digits", skill_version=1, code_version=ctx.current_run().code_version,
        image_tag="digits:1", gate="passed", infra_commit=None,
    )  # fmt: skip

    skill.new_commit()  # a change that cannot touch the model (NOTES.md)
    for argv in (("version",), ("data", "pull")):
        assert skill.run(*argv).code == 0
    result = skill.run("train")
    assert result.code == 0, result.err
    assert "not retrained" in result.out and "deployed v1" in result.out
    second = json.loads(store.get_bytes(run_key("digits", 2, TRAIN)))
    assert second["reused_from"] == 1
    assert store.get_bytes(run_key("digits", 2, MODEL)) == store.get_bytes(
        run_key("digits", 1, MODEL)
    )

    config = json.loads((skill.repo / "skill.json").read_text())
    config["train"]["epochs"] = 2
    (skill.repo / "skill.json").write_text(json.dumps(config))
    skill.new_commit()
    for argv in (("version",), ("data", "pull")):
        assert skill.run(*argv).code == 0
    result = skill.run("train")
    assert result.code == 0, result.err
    assert "not retrained" not in result.out
    third = json.loads(store.get_bytes(run_key("digits", 3, TRAIN)))
    assert "reused_from" not in third and third["model_fingerprint"] != first["model_fingerprint"]
