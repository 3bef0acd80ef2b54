"""Reading a model bundle: labels, stamp, environment overrides, and what a bad bundle says."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras
import pytest

from skillmaker.context import RunPointer, load_skill
from skillmaker.errors import UserError
from skillmaker.serving.bundle import load_model, read_bundle
from skillmaker.serving.serve import bundle_to_serve
from tests.serving import bundles


def test_stamp_comes_from_stamp_json_and_the_hash_from_the_model_bytes(digits_bundle: Path) -> None:
    info = read_bundle(digits_bundle)
    assert info.labels == tuple(bundles.DIGIT_LABELS)
    assert (info.stamp.skill, info.stamp.skill_version, info.stamp.code_version) == (
        "digits",
        3,
        "abc123",
    )
    assert (
        info.stamp.model_hash
        == hashlib.sha256((digits_bundle / "model.keras").read_bytes()).hexdigest()
    )
    assert info.stamp.headers()["X-Model-Hash"] == info.stamp.model_hash


def test_environment_overrides_the_stamp_as_docker_images_do(digits_bundle: Path) -> None:
    env = {"SKILL_VERSION": "12", "CODE_VERSION": "d00dfeed", "SKILL_NAME": "digits-eu"}
    stamp = read_bundle(digits_bundle, env).stamp
    assert (stamp.skill, stamp.skill_version, stamp.code_version) == ("digits-eu", 12, "d00dfeed")


def test_a_skill_version_that_is_not_a_number_is_a_user_error(digits_bundle: Path) -> None:
    with pytest.raises(UserError, match=r"SKILL_VERSION='v12': must be a whole number"):
        read_bundle(digits_bundle, {"SKILL_VERSION": "v12"})


def test_a_code_version_that_cannot_be_a_header_is_a_user_error(digits_bundle: Path) -> None:
    with pytest.raises(UserError, match=r"code version 'abc\\nX-Evil: 1': must be printable ASCII"):
        read_bundle(digits_bundle, {"CODE_VERSION": "abc\nX-Evil: 1"})


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("model.keras", None, r"model.keras: missing"),
        ("labels.json", None, r"labels.json: missing"),
        ("labels.json", "{}", r"labels.json: must be a non-empty JSON list"),
        ("labels.json", '["a", "a"]', r"labels.json: lists a class twice"),
        ("stamp.json", "[1", r"stamp.json: not valid JSON"),
        (
            "stamp.json",
            '{"skill": "x", "skill_version": "3", "code_version": "c"}',
            r"skill_version: must be a whole number",
        ),
    ],
)  # fmt: skip
def test_a_broken_bundle_names_the_file_and_the_problem(
    digits_bundle: Path, tmp_path: Path, file: str, content: str | None, message: str
) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(digits_bundle, folder)
    if content is None:
        (folder / file).unlink()
    else:
        (folder / file).write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_bundle(folder)


def test_serving_a_repo_uses_its_current_run_and_its_pixel_limit(
    digits_bundle: Path, tmp_path: Path
) -> None:
    config = json.loads(Path("examples/digits.json").read_text(encoding="utf-8"))
    config["data"]["max_pixels"] = 123_456
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "skill.json").write_text(json.dumps(config), encoding="utf-8")
    skill = load_skill(repo)
    skill.set_current_run(RunPointer(7, "feedbeef"))
    run_dir = skill.run_dir()
    for name in ("model.keras", "labels.json"):  # a run folder has no stamp.json
        shutil.copy(digits_bundle / name, run_dir / name)
    info, max_pixels = bundle_to_serve(repo, None, {})
    assert (info.stamp.skill, info.stamp.skill_version, info.stamp.code_version) == (
        "digits",
        7,
        "feedbeef",
    )
    assert max_pixels == 123_456


def _bundle(tmp_path: Path, head: str) -> Path:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    if head == "softmax layer after logits":
        x = keras.layers.Dense(10, name="logits")(x)
        outputs = keras.layers.Softmax(name="probabilities")(x)
    elif head == "softmax activation":
        outputs = keras.layers.Dense(10, activation="softmax", name="logits")(x)
    else:
        outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return bundles.save_bundle(tmp_path / "b", model, bundles.DIGIT_LABELS, "digits", 1, "c0ffee")


@pytest.mark.parametrize("head", ["softmax layer after logits", "softmax activation"])
def test_a_model_whose_outputs_already_sum_to_one_is_refused(tmp_path: Path, head: str) -> None:
    info = read_bundle(_bundle(tmp_path, head))
    with pytest.raises(UserError, match="the outputs of a probe batch already sum to 1"):
        load_model(info)


def test_a_model_that_outputs_logits_is_accepted(tmp_path: Path) -> None:
    info = read_bundle(_bundle(tmp_path, "logits"))
    assert load_model(info).outputs[0].shape[-1] == 10
