"""Evaluating through containers (marked ``docker``): the candidate in its serving image built
after training; with a baseline whose image is gone, both served as local processes."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmaker.adapters.docker import DockerEngine
from skillmaker.adapters.git import head_commit
from skillmaker.build.plan import BUILD, FLAVORS_ENV, WHEELHOUSE_ENV
from skillmaker.context import RunPointer, SkillContext, load_skill
from skillmaker.evaluation.docker_launch import DockerLauncher
from skillmaker.evaluation.harness import TestItem, evaluate
from skillmaker.evaluation.launch import LocalProcessLauncher, ServerSpec, ServerStartError
from skillmaker.evaluation.stage import in_containers
from skillmaker.scaffold import new_skill
from tests.build.test_stage import _config, base_image, engine, wheelhouse
from tests.serving import bundles

__all__ = ["base_image", "engine", "wheelhouse"]  # fixtures shared with the build tests


@pytest.fixture(scope="module")
def in_images(
    tmp_path_factory: pytest.TempPathFactory,
    engine: DockerEngine,
    base_image: str,
    wheelhouse: Path,
    two_bundles: tuple[Path, Path],
) -> Iterator[tuple[SkillContext, ServerSpec, tuple[ServerSpec, ServerSpec | None]]]:
    """Give a digits skill whose run 5 holds a trained model, and the specs ``in_containers``
    made for it alone (candidate image built now) and with a baseline that has no image."""
    folder = tmp_path_factory.mktemp("docker-eval")
    repo = new_skill(_config(folder), output=folder / "digits")
    # A CPU-only agent: no GPU base image can be pulled here, so only the CPU images are built.
    env = {
        **os.environ,
        "SKILLMAKER_CPU_BASE": base_image,
        WHEELHOUSE_ENV: str(wheelhouse),
        FLAVORS_ENV: "cpu",
    }
    out = io.StringIO()
    context = load_skill(repo, env=env, out=out)
    commit = head_commit(repo)
    context.set_current_run(RunPointer(5, commit))
    run_dir = context.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "labels.json"):
        shutil.copy2(two_bundles[0] / name, run_dir / name)
    stamp = {"skill": "digits", "skill_version": 5, "code_version": commit}
    (run_dir / "stamp.json").write_text(json.dumps(stamp))

    both_local = in_containers(
        context,
        engine,
        ServerSpec.from_bundle("candidate", run_dir),
        ServerSpec.from_bundle("baseline", two_bundles[1]),
    )
    candidate, _ = in_containers(
        context, engine, ServerSpec.from_bundle("candidate", run_dir), None
    )
    try:
        yield context, candidate, both_local
    finally:
        if candidate.image:
            engine.remove_image(candidate.image)
            engine.remove_image(candidate.image + "-runtime")


@pytest.mark.docker
def test_the_candidate_answers_from_its_image_with_the_images_versions(
    in_images: tuple[SkillContext, ServerSpec, tuple[ServerSpec, ServerSpec | None]],
    engine: DockerEngine,
    test_items: list[TestItem],
    tmp_path: Path,
) -> None:
    context, candidate, (local_candidate, baseline) = in_images
    commit = context.current_run().code_version
    assert candidate.image == f"digits:5-{commit[:7]}-cpu"
    # A baseline without its image: both are local processes, measured the same way.
    assert baseline is not None and baseline.image is None and local_candidate.image is None
    said = context.out.getvalue() if isinstance(context.out, io.StringIO) else ""
    assert f"evaluate: candidate served in its container {candidate.image}" in said
    assert "baseline served as a local process (the engine has no image digits:4-ba5e111-cpu)" in (
        said
    )
    assert "candidate served as a local process too, so both models are measured" in said
    facts = engine.inspect(candidate.image)
    launcher = DockerLauncher(
        engine, fallback=LocalProcessLauncher(log_dir=tmp_path / "logs"), log_dir=tmp_path / "logs"
    )

    metrics = evaluate(
        candidate, baseline, test_items, bundles.DIGIT_LABELS, tmp_path, launcher=launcher
    )

    # Every answer was checked against these stamps; the image's labels say the same versions.
    cand, base = metrics["candidate"], metrics["baseline"]
    assert (cand["skill_version"], cand["code_version"]) == (5, commit)
    assert facts.labels["skill.version"] == "5" and facts.labels["code.version"] == commit
    assert cand["model_hash"] == candidate.stamp.model_hash
    assert cand["accuracy"] > 0.9 and cand["errors"] == 0
    assert base is not None and (base["skill_version"], base["code_version"]) == (4, "ba5e1111e")
    assert (tmp_path / "logs" / "candidate.log").read_text()  # the container's log was kept
    record = json.loads((context.run_dir() / BUILD).read_text())
    assert [(i["ref"], i["target"]) for i in record["images"]] == [(candidate.image, "serving")]
    assert engine.has_image(candidate.image)  # the deployable image stays after the test run


@pytest.mark.docker
def test_a_container_that_stops_is_reported_with_the_end_of_its_log(
    in_images: tuple[SkillContext, ServerSpec, tuple[ServerSpec, ServerSpec | None]],
    engine: DockerEngine,
) -> None:
    _, candidate, _ = in_images
    broken = ServerSpec(
        "candidate", candidate.stamp, image=candidate.image, env={"SKILL_VERSION": "five"}
    )

    with (
        pytest.raises(ServerStartError) as caught,
        DockerLauncher(engine, startup_timeout=120).start([broken]),
    ):
        pass

    message = str(caught.value)
    assert f"model server 'candidate' (container of {candidate.image}) stopped" in message
    assert "SKILL_VERSION='five': must be a whole number" in message
