"""The build stage: names and labels, the build context, the skip without an engine, and (marked
``docker``) a real CPU serving image built without network and run with network ``none``."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skillmaker import __version__
from skillmaker.adapters.docker import DockerEngine, DockerError
from skillmaker.adapters.git import head_commit
from skillmaker.build.context import (
    assemble_context,
    find_model_bundle,
    find_wheelhouse,
    make_wheelhouse,
    wheel_pins,
)
from skillmaker.build.plan import (
    BUILD,
    WHEELHOUSE_ENV,
    image_labels,
    image_ref,
    parse_flavors,
    plan_build,
    should_push,
)
from skillmaker.build.stage import BuildOptions, build_images
from skillmaker.cli import main
from skillmaker.config import SkillConfig
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.errors import UserError
from skillmaker.resources import examples_dir
from skillmaker.scaffold import new_skill
from tests.helpers import free_port

CHECKOUT = Path(__file__).resolve().parents[2]
LOCAL_BASE = "skillmaker/bookworm-python:local"
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


def _config(tmp_path: Path, **images: str) -> Path:
    raw = json.loads((examples_dir() / "digits.json").read_text())
    raw["data"]["source"] = (tmp_path / "data").as_uri()
    raw["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    raw["deploy"]["infra_repo"] = str(tmp_path / "infra")
    raw["images"] = {"cpu_base": "python:3.11-slim", **images}
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture
def skill(tmp_path: Path) -> SkillContext:
    """Give a stamped digits skill repo (real git) whose current run is version 3 of HEAD."""
    repo = new_skill(_config(tmp_path), output=tmp_path / "digits")
    context = load_skill(repo, env={}, out=io.StringIO())
    context.set_current_run(RunPointer(3, head_commit(repo)))
    return context


# -- names, labels and plans


def test_tags_name_version_commit_and_flavor() -> None:
    assert image_ref(None, "digits", 3, SHA, "gpu") == "digits:3-1a2b3c4-gpu"
    assert (
        image_ref("registry.example.com/vision/", "car-make", 12, SHA, "cpu")
        == "registry.example.com/vision/car-make:12-1a2b3c4-cpu"
    )


def test_labels_carry_the_skill_and_code_versions() -> None:
    labels = image_labels("digits", 3, SHA, "cpu")

    assert labels["org.opencontainers.image.revision"] == SHA
    assert labels["org.opencontainers.image.version"] == "3"
    assert (labels["skill.name"], labels["skill.version"], labels["code.version"]) == (
        "digits",
        "3",
        SHA,
    )


def test_a_plan_builds_the_serving_target_only_with_a_model(skill: SkillContext) -> None:
    config: SkillConfig = skill.config
    pointer = RunPointer(3, SHA)

    runtime = plan_build(config, pointer, "cpu", with_model=False)
    serving = plan_build(config, pointer, "cpu", with_model=True, base_image=LOCAL_BASE)

    assert (runtime.target, runtime.ref) == ("runtime", "digits:3-1a2b3c4-cpu-runtime")
    assert runtime.buildargs["BASE_IMAGE"] == "python:3.11-slim"
    assert (serving.target, serving.ref) == ("serving", "digits:3-1a2b3c4-cpu")
    assert serving.buildargs == {
        "BASE_IMAGE": LOCAL_BASE,
        "SKILL_VERSION": "3",
        "CODE_VERSION": SHA,
    }
    assert plan_build(config, pointer, "gpu", with_model=True).base_image == config.images.gpu_base


def test_serving_images_are_pushed_when_a_registry_is_configured() -> None:
    assert should_push("registry.example.com", None, "serving")
    assert not should_push(None, None, "serving")
    assert not should_push("registry.example.com", False, "serving")  # --no-push
    assert should_push(None, True, "serving")  # --push: to the name's own registry
    assert should_push("registry.example.com", None, "runtime")  # CI agents pull it
    assert not should_push(None, True, "runtime")
    assert not should_push("registry.example.com", False, "runtime")


def test_flavors_from_the_environment() -> None:
    assert parse_flavors("") == ("cpu", "gpu")
    assert parse_flavors(" cpu ") == ("cpu",)
    with pytest.raises(UserError, match="'arm' is not an image flavor"):
        parse_flavors("cpu,arm")


# -- model bundle, wheelhouse and context


def _bundle(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("model.keras", "weights"), ("labels.json", "[]"), ("stamp.json", "{}")):
        (folder / name).write_text(text)
    return folder


def test_the_model_bundle_is_found_in_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert find_model_bundle(run, None) is None
    _bundle(run)
    (run / "report.pdf").write_text("not part of the bundle")
    loose = find_model_bundle(run, None)
    assert isinstance(loose, list)
    assert sorted(p.name for p in loose) == ["labels.json", "model.keras", "stamp.json"]
    folder = _bundle(run / "model")
    assert find_model_bundle(run, None) == folder
    with pytest.raises(UserError, match="not a model bundle"):
        find_model_bundle(run, tmp_path / "nowhere")


def test_a_given_wheelhouse_must_hold_this_skillmakers_wheel(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    with pytest.raises(UserError, match=f"no skillmaker {__version__} wheel"):
        find_wheelhouse(tmp_path, "cpu", tmp_path / "cache")
    (tmp_path / "cpu" / f"skillmaker-{__version__}-py3-none-any.whl").write_text("wheel")
    assert find_wheelhouse(tmp_path, "cpu", tmp_path / "cache") == tmp_path / "cpu"


def test_the_context_holds_dockerfile_config_wheels_and_model(
    skill: SkillContext, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in (
        f"skillmaker-{__version__}-py3-none-any.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl",
        "typing_extensions-4.16.0-py3-none-any.whl",
    ):
        (wheels / name).write_bytes(b"zip")
    bundle = _bundle(tmp_path / "bundle")

    context = assemble_context(skill.repo, "Dockerfile.cpu", wheels, bundle, tmp_path / "ctx")

    files = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert files == [
        ".dockerignore",
        ".skillmaker/model/labels.json",
        ".skillmaker/model/model.keras",
        ".skillmaker/model/stamp.json",
        ".skillmaker/wheelhouse/deps/numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl",
        ".skillmaker/wheelhouse/deps/requirements.txt",
        ".skillmaker/wheelhouse/deps/typing_extensions-4.16.0-py3-none-any.whl",
        f".skillmaker/wheelhouse/skillmaker/skillmaker-{__version__}-py3-none-any.whl",
        "Dockerfile.cpu",
        "skill.json",
    ]
    requirements = (context / ".skillmaker/wheelhouse/deps/requirements.txt").read_text()
    assert requirements == "numpy==2.4.6\ntyping-extensions==4.16.0\n"
    with pytest.raises(UserError, match=r"Dockerfile\.arm: missing"):
        assemble_context(skill.repo, "Dockerfile.arm", wheels, None, tmp_path / "ctx")


def test_a_wheelhouse_with_two_versions_of_a_package_is_refused() -> None:
    assert wheel_pins(["a_b-1.0-py3-none-any.whl", "c-2.0-py3-none-any.whl"]) == [
        "a-b==1.0",
        "c==2.0",
    ]
    with pytest.raises(UserError, match=r"two versions of numpy \(1.26.4 and 2.4.6\)"):
        wheel_pins(["numpy-2.4.6-cp311-x.whl", "numpy-1.26.4-cp311-x.whl"])


def test_the_gpu_image_takes_tensorflow_and_cuda_from_its_base_only(skill: SkillContext) -> None:
    text = (skill.repo / "Dockerfile.gpu").read_text()
    assert "ARG BASE_IMAGE=tensorflow/tensorflow:" in text
    assert "python3 -m venv --system-site-packages /opt/skill/venv" in text
    assert f'"skillmaker=={__version__}"' in text
    assert "[gpu]" not in text and "and-cuda" not in text
    assert "USER 10001" in text and "USER 10001" in (skill.repo / "Dockerfile.cpu").read_text()


def test_the_stamped_dockerfiles_pass_hadolint(skill: SkillContext) -> None:
    for flavor in ("cpu", "gpu"):
        result = subprocess.run(
            [
                "hadolint",
                str(skill.repo / f"Dockerfile.{flavor}"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# -- no engine


def test_without_an_engine_the_build_is_skipped_with_a_notice(
    skill: SkillContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = f"unix://{skill.repo}/no-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", silent)
    out = io.StringIO()

    code = main(["build", "--repo", str(skill.repo)], out=out)

    assert code == 0
    assert f"build: skipped: no Docker engine answers at {silent}" in out.getvalue()
    record = json.loads((skill.run_dir() / BUILD).read_text())
    assert record["images"] == [] and "ci/docker-engine.sh" in record["skipped"]


# -- a real engine


@pytest.fixture(scope="module")
def engine() -> DockerEngine:
    """Give the engine DOCKER_HOST names, or skip: start one with ci/docker-engine.sh."""
    found = DockerEngine.connect(os.environ)
    if found is None:
        pytest.skip(
            f"no Docker engine answers at {DockerEngine.address(os.environ)} "
            '(eval "$(bash ci/docker-engine.sh start)")'
        )
    return found


@pytest.fixture(scope="module")
def base_image(engine: DockerEngine) -> str:
    """Give the registry-free base image, made by ci/base-image.sh when the engine lacks it."""
    name = os.environ.get("SKILLMAKER_CPU_BASE") or LOCAL_BASE
    if not engine.has_image(name):
        subprocess.run(
            ["bash", "ci/base-image.sh"],
            cwd=CHECKOUT,
            check=True,
            env={**os.environ, "BASE_IMAGE": name},
        )
    return name


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Give a wheelhouse root whose cpu/ folder holds the wheel of this checkout's code."""
    root = Path(os.environ.get(WHEELHOUSE_ENV) or CHECKOUT / ".tools" / "wheelhouse")
    make_wheelhouse(root / "cpu", "cpu")
    return root


def _train_bundle(folder: Path, skill: str, version: int, commit: str) -> None:
    """Write a small digits model trained here (16x16 greyscale in, logits out) as a bundle."""
    # Imported here: only the Docker test trains, and TensorFlow takes seconds to import.
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.kron(digits.images, np.ones((2, 2)))[..., None].astype("float32") * (255.0 / 16.0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten(name="features")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, digits.target, epochs=2, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    (folder / "labels.json").write_text(json.dumps([str(d) for d in range(10)]))
    stamp = {"skill": skill, "skill_version": version, "code_version": commit}
    (folder / "stamp.json").write_text(json.dumps(stamp))


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    engine: DockerEngine,
    base_image: str,
    wheelhouse: Path,
) -> Iterator[tuple[SkillContext, str]]:
    """Give a stamped skill whose run 3 built its runtime image, then its CPU serving image."""
    folder = tmp_path_factory.mktemp("docker-skill")
    repo = new_skill(_config(folder), output=folder / "digits")
    env = {**os.environ, "SKILLMAKER_CPU_BASE": base_image, WHEELHOUSE_ENV: str(wheelhouse)}
    context = load_skill(repo, env=env, out=io.StringIO())
    context.set_current_run(RunPointer(3, head_commit(repo)))

    runtime = build_images(context, BuildOptions(flavors=["cpu"]), engine)
    _train_bundle(context.run_dir() / "model", context.name, 3, head_commit(repo))
    serving = build_images(context, BuildOptions(flavors=["cpu"]), engine)

    [before] = runtime.images
    [image] = serving.images
    assert before["target"] == "runtime" and before["ref"] == image["ref"] + "-runtime"
    try:
        yield context, image["ref"]
    finally:
        for ref in (image["ref"], before["ref"]):
            engine.remove_image(ref)


@pytest.mark.docker
def test_the_cpu_serving_image_carries_versions_and_runs_without_network(
    built: tuple[SkillContext, str], engine: DockerEngine
) -> None:
    context, ref = built
    commit = context.current_run().code_version
    facts = engine.inspect(ref)

    assert ref == f"digits:3-{commit[:7]}-cpu" and ref in facts.tags
    assert facts.labels["org.opencontainers.image.revision"] == commit
    assert facts.labels["org.opencontainers.image.version"] == "3"
    assert facts.labels["skill.name"] == "digits" and facts.labels["skill.version"] == "3"
    assert facts.labels["code.version"] == commit
    assert (facts.env["SKILL_NAME"], facts.env["SKILL_VERSION"]) == ("digits", "3")
    assert facts.env["CODE_VERSION"] == commit
    assert any("/health" in part for part in facts.healthcheck)

    code, output = engine.run_once(
        ref,
        [
            "sh",
            "-c",
            'echo "env $SKILL_NAME $SKILL_VERSION $CODE_VERSION"; '
            'echo "net $(ls /sys/class/net)"; echo "user $(id -un)"; '
            'echo "stamp $(cat model/stamp.json)"; '
            'python -c "import skillmaker, keras;'
            "print('python', skillmaker.__version__, keras.__version__)\"",
        ],
        network="none",
    )

    assert code == 0, output
    said = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in output.splitlines() if " " in line
    }
    assert said["env"] == f"digits 3 {commit}"
    assert said["net"] == "lo"  # network none: loopback only
    assert said["user"] == "skill"  # not root
    assert json.loads(said["stamp"])["code_version"] == commit
    assert said["python"].startswith(f"{__version__} 3.")
    record = json.loads((context.run_dir() / BUILD).read_text())
    assert record["images"][0]["ref"] == ref and record["images"][0]["target"] == "serving"
    assert record["images"][0]["size_bytes"] > 10_000_000, "the build records each image's size"


@pytest.mark.docker
def test_the_serving_image_answers_version_with_the_run_versions(
    built: tuple[SkillContext, str], engine: DockerEngine
) -> None:
    if importlib.util.find_spec("skillmaker.serving") is None:
        pytest.skip("`skillmaker serve` is not in this checkout yet")
    context, ref = built
    commit = context.current_run().code_version
    probe = (
        "import json, urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:8080/version', timeout=5).read().decode())"
    )
    with engine.running(ref, network="none") as container:
        deadline = time.monotonic() + 180
        code, output = 1, ""
        while time.monotonic() < deadline and container.status() == "running":
            code, output = container.exec(["python", "-c", probe])
            if code == 0:
                break
            time.sleep(2)
        assert code == 0, container.logs() + output
    version = json.loads(output)
    assert (version["skill"], version["skill_version"], version["code_version"]) == (
        "digits",
        3,
        commit,
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Give the address of a Docker registry (Debian's docker-registry) on 127.0.0.1."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (ci/install-deps.sh installs it)")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'blobs'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    server = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.docker
def test_an_image_is_pushed_to_the_configured_registry(
    engine: DockerEngine, base_image: str, registry: str
) -> None:
    # The engine treats registries on 127.0.0.0/8 as insecure, so plain HTTP is accepted.
    ref = image_ref(f"{registry}/skills", "digits", 3, SHA, "cpu")
    engine.tag(base_image, ref)
    try:
        digest = engine.push(ref)
    finally:
        engine.remove_image(ref)

    assert digest.startswith("sha256:")
    with urllib.request.urlopen(f"http://{registry}/v2/skills/digits/tags/list") as answer:
        assert json.loads(answer.read()) == {"name": "skills/digits", "tags": ["3-1a2b3c4-cpu"]}


@pytest.mark.docker
def test_a_push_to_a_registry_that_is_down_fails_with_dockers_words(
    engine: DockerEngine, base_image: str
) -> None:
    ref = image_ref(f"127.0.0.1:{free_port()}/skills", "digits", 3, SHA, "cpu")
    engine.tag(base_image, ref)
    try:
        with pytest.raises(DockerError, match=f"docker push {ref} failed: .*connection refused"):
            engine.push(ref)
    finally:
        engine.remove_image(ref)
