"""Config validation: every broken config names its key path, exits 2 and leaves nothing behind."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from skillmaker.cli import main
from skillmaker.config import config_hash, load_config, normalised_json
from skillmaker.config.model import SkillConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def car() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / "car.json").read_text(encoding="utf-8"))
    return raw


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


_DELETE = object()

# (change to car.json, the exact line the user must see)
BROKEN: list[tuple[str, Any, str]] = [
    (
        "model.network",
        "resnet",
        'car.json: model.network: must be one of small_cnn, mobilenet_v3_small, efficientnet_b0, resnet50 (got "resnet")',
    ),
    (
        "name",
        "Car_Skill",
        'car.json: name: must be 2 to 40 lowercase letters, digits and hyphens, starting and ending with a letter or digit (got "Car_Skill")',
    ),
    (
        "name",
        "x",
        'car.json: name: must be 2 to 40 lowercase letters, digits and hyphens, starting and ending with a letter or digit (got "x")',
    ),
    (
        "name",
        "a" * 41,
        'car.json: name: must be 2 to 40 lowercase letters, digits and hyphens, starting and ending with a letter or digit (got "'
        + "a" * 41
        + '")',
    ),
    ("name", _DELETE, "car.json: name: is required"),
    ("owner", "not-an-email", 'car.json: owner: must be an e-mail address (got "not-an-email")'),
    ("colour", "red", 'car.json: colour: is not a known key (got "red")'),
    (
        "data.source",
        "http://example.com/x",
        'car.json: data.source: must be a store URI: s3://bucket[/prefix] or file:///absolute/path (got "http://example.com/x")',
    ),
    ("data.layout", "tree", 'car.json: data.layout: must be one of folders, manifest (got "tree")'),
    (
        "data.min_examples_per_class",
        0,
        "car.json: data.min_examples_per_class: must be at least 1 (got 0)",
    ),
    ("image.channels", 4, "car.json: image.channels: must be one of 1, 3 (got 4)"),
    ("image.height", "224", 'car.json: image.height: must be an integer (got "224")'),
    ("image.width", 4, "car.json: image.width: must be at least 8 (got 4)"),
    ("split.train", 0.8, "car.json: split: train + val + test must sum to 1 (got 1.1)"),
    ("split.val", 0, "car.json: split.val: must be greater than 0.0 (got 0)"),
    ("split.test", 1.5, "car.json: split.test: must be less than 1.0 (got 1.5)"),
    (
        "model.weights",
        "weights.h5",
        'car.json: model.weights: must be "none", "imagenet", or the URI of a weights file (s3://… or file:///…) (got "weights.h5")',
    ),
    ("model.dropout", 1.0, "car.json: model.dropout: must be less than 1.0 (got 1.0)"),
    ("augment.rotation", 400, "car.json: augment.rotation: must be at most 180.0 (got 400)"),
    (
        "augment.horizontal_flip",
        "yes",
        'car.json: augment.horizontal_flip: must be true or false (got "yes")',
    ),
    (
        "train.optimizer",
        "adagrad",
        'car.json: train.optimizer: must be one of adam, adamw, sgd, rmsprop (got "adagrad")',
    ),
    ("train.batch_size", -1, "car.json: train.batch_size: must be at least 1 (got -1)"),
    (
        "train.monitor",
        "loss",
        'car.json: train.monitor: must be one of val_loss, val_accuracy (got "loss")',
    ),
    (
        "profiles.server.strategy",
        "tpu",
        'car.json: profiles.server.strategy: must be one of none, mirrored (got "tpu")',
    ),
    (
        "profiles.server.strategy",
        "multi_worker",
        'car.json: profiles.server.strategy: multi-worker training across machines is not supported: Keras 3 needs patches of its private API for it (keras-team/keras#20585); scale out by running many skills on many agents, or use mirrored (got "multi_worker")',
    ),
    (
        "profiles.xps.image.height",
        2,
        "car.json: profiles.xps.image.height: must be at least 8 (got 2)",
    ),
    (
        "gate.latency_tolerance",
        -0.1,
        "car.json: gate.latency_tolerance: must be at least 0.0 (got -0.1)",
    ),
    (
        "gate.accuracy_tolerance",
        2,
        "car.json: gate.accuracy_tolerance: must be at most 1.0 (got 2)",
    ),
    ("deploy", _DELETE, "car.json: deploy: is required"),
    (
        "deploy.artifacts",
        "s3://x",
        'car.json: deploy.artifacts: must be a store URI: s3://bucket[/prefix] or file:///absolute/path (got "s3://x")',
    ),
    (
        "notify.email",
        ["reviewer"],
        'car.json: notify.email[0]: must be an e-mail address (got "reviewer")',
    ),
    (
        "data.exclude_classes",
        ["golf-7-gti"],
        'car.json: data.exclude_classes: class is both required by data.class_file and excluded (got "golf-7-gti")',
    ),
    (
        "data.layout",
        "manifest",
        'car.json: data.manifest: is required when data.layout is "manifest"',
    ),
    (
        "model.network",
        "small_cnn",
        'car.json: model.weights: imagenet weights exist only for backbone networks (got "imagenet")',
    ),
    (
        "train.class_weights",
        {"golf-9": 2.0},
        'car.json: train.class_weights.golf-9: is not a class of data.class_file (got "golf-9")',
    ),
    (
        "model.fine_tune.epochs",
        0,
        "car.json: model.fine_tune.epochs: must be at least 1 when model.fine_tune.top_layers is set (got 0)",
    ),
    (
        "ci.agent_cache",
        "cache here",
        "car.json: ci.agent_cache: must be an absolute folder of letters, digits, '.', '_', '-' and '/' (got \"cache here\")",
    ),
    (
        "ci.profiles",
        {"gpu": "dgx"},
        'car.json: ci.profiles.gpu: names no entry of profiles (server, xps) (got "dgx")',
    ),
    (
        "ci.credentials",
        {"AWS_ACCESS_KEY_ID": "it's"},
        "car.json: ci.credentials.AWS_ACCESS_KEY_ID: must be a Jenkins credentials ID: letters, digits, '.', '_' and '-' (got \"it's\")",
    ),
]


def _write_config(folder: Path, raw: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.json").write_text((EXAMPLES / "classes.json").read_text(encoding="utf-8"))
    path = folder / "car.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_examples_are_valid() -> None:
    for name in ("car.json", "digits.json"):
        code, out, err = _run("validate", "--config", str(EXAMPLES / name))
        assert code == 0, err
        assert "valid skill config" in out


@pytest.mark.parametrize(
    ("path", "value", "expected"), BROKEN, ids=[f"{p}={v!r}"[:60] for p, v, _ in BROKEN]
)
def test_broken_config_names_the_key_path(
    tmp_path: Path, path: str, value: Any, expected: str
) -> None:
    config = _write_config(tmp_path / "in", _set(car(), path, value))
    code, _, err = _run("validate", "--config", str(config))
    assert code == 2
    assert expected in err.splitlines(), err
    assert "Traceback" not in err

    output = tmp_path / "out" / "car"
    code, _, err = _run("new", "--config", str(config), "--output", str(output))
    assert code == 2
    assert expected in err.splitlines()
    assert not (tmp_path / "out").exists(), "a refused config must leave no output folder"


def test_validate_states_what_a_local_test_split_can_show(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for label, count in (("cat", 1000), ("dog", 1000), ("fox", 20)):
        for index in range(count):
            path = images / label / f"g{index:04d}" / "a.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    raw = _set(_set(car(), "data.source", images.as_uri()), "data.class_file", None)
    raw = _set(raw, "gate.accuracy_tolerance", 0.01)
    code, out, err = _run("validate", "--config", str(_write_config(tmp_path / "in", raw)))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == (
        "gate: about 303 test images can show an accuracy tolerance of 4.63 points or more "
        "(if two equally good models disagree on 5% of images)"
    )
    assert lines[2] == (
        "WARNING gate.accuracy_tolerance 1.00 points is below what this test split can show: "
        "an equally good candidate is likely to be inconclusive (needs about 6,498 test images)"
    )
    assert lines[3] == (
        "WARNING 1 class(es) have fewer than 7 test images, too few for the per-class rule to "
        "judge: fox"
    )


def test_at_least_twenty_distinct_broken_configs() -> None:
    assert len({(p, json.dumps(v, default=str)) for p, v, _ in BROKEN}) >= 20


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    raw = _set(_set(car(), "model.network", "resnet"), "image.channels", 2)
    code, _, err = _run("validate", "--config", str(_write_config(tmp_path, raw)))
    assert code == 2
    assert err.splitlines() == [
        "car.json: image.channels: must be one of 1, 3 (got 2)",
        'car.json: model.network: must be one of small_cnn, mobilenet_v3_small, efficientnet_b0, resnet50 (got "resnet")',
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"name": "car",\n  "title": }',
            "car.json: line 2, column 12: invalid JSON: Expecting value",
        ),
        ("[1, 2]", "car.json: must be a JSON object (got [1, 2])"),
        ("", "car.json: line 1, column 1: invalid JSON: Expecting value"),
    ],
)
def test_unparsable_json_says_line_and_column(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "car.json"
    path.write_text(content, encoding="utf-8")
    code, _, err = _run("validate", "--config", str(path))
    assert code == 2
    assert err.strip() == expected


def test_missing_file_and_folder(tmp_path: Path) -> None:
    code, _, err = _run("validate", "--config", str(tmp_path / "nope.json"))
    assert (code, err.strip()) == (2, "nope.json: file not found")
    (tmp_path / "dir.json").mkdir()
    code, _, err = _run(
        "new", "--config", str(tmp_path / "dir.json"), "--output", str(tmp_path / "o")
    )
    assert (code, err.strip()) == (2, "dir.json: is a folder, expected a JSON file")
    assert not (tmp_path / "o").exists()


def test_missing_class_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "car.json"
    path.write_text(json.dumps(car()), encoding="utf-8")
    code, _, err = _run("validate", "--config", str(path))
    assert code == 2
    assert err.strip() == "car.json: data.class_file: classes.json: file not found"


def test_normalised_config_round_trips_and_hash_is_stable() -> None:
    loaded = load_config(EXAMPLES / "digits.json")
    again = SkillConfig.model_validate(json.loads(normalised_json(loaded.config)))
    assert again == loaded.config
    assert config_hash(again) == config_hash(loaded.config)
    assert len(config_hash(again)) == 64


def test_schema_documents_every_field() -> None:
    code, out, _ = _run("schema")
    assert code == 0
    schema = json.loads(out)
    missing: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        for key, prop in node.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{where}.{key}")

    walk(schema, "skill")
    for name, definition in schema.get("$defs", {}).items():
        walk(definition, name)
    assert not missing, missing
    assert set(schema["required"]) == {"name", "title", "ticket", "owner", "data", "deploy"}
