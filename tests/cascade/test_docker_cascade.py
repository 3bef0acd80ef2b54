"""The three-skill cascade with every step in its own container (marked ``docker``).

Each step's image is the skill runtime image built by ``skillmaker build`` plus that step's model,
so the full-stack test talks to three real containers on the host network.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmaker.adapters.docker import DockerEngine
from skillmaker.adapters.git import head_commit
from skillmaker.build.plan import WHEELHOUSE_ENV
from skillmaker.build.stage import BuildOptions, build_images
from skillmaker.cascade.runner import StackCase, run_stack_test
from skillmaker.context import RunPointer, load_skill
from skillmaker.evaluation.docker_launch import DockerLauncher
from skillmaker.evaluation.launch import ServerSpec
from skillmaker.scaffold import new_skill
from skillmaker.serving.bundle import read_bundle
from tests.build.test_stage import _config, base_image, engine, wheelhouse
from tests.cascade.test_runner import CASCADE, cascade_bundles, cases

__all__ = ["base_image", "cascade_bundles", "cases", "engine", "wheelhouse"]  # shared fixtures


@pytest.fixture(scope="module")
def step_images(
    tmp_path_factory: pytest.TempPathFactory,
    engine: DockerEngine,
    base_image: str,
    wheelhouse: Path,
    cascade_bundles: dict[str, Path],
) -> Iterator[dict[str, str]]:
    """Give an image per cascade step: the skill runtime image with the step's model added."""
    folder = tmp_path_factory.mktemp("docker-cascade")
    repo = new_skill(_config(folder), output=folder / "skill")
    env = {**os.environ, "SKILLMAKER_CPU_BASE": base_image, WHEELHOUSE_ENV: str(wheelhouse)}
    context = load_skill(repo, env=env, out=io.StringIO())
    context.set_current_run(RunPointer(1, head_commit(repo)))
    [runtime] = build_images(context, BuildOptions(flavors=["cpu"]), engine).images
    images: dict[str, str] = {}
    try:
        for skill, bundle in cascade_bundles.items():
            stamp = read_bundle(bundle).stamp
            build = folder / f"context-{skill}"
            shutil.copytree(bundle, build / "model")
            (build / "Dockerfile").write_text(
                f"FROM {runtime['ref']}\n"
                "COPY model /opt/skill/model\n"
                f"ENV SKILL_NAME={stamp.skill} SKILL_VERSION={stamp.skill_version} "
                f"CODE_VERSION={stamp.code_version}\n",
                encoding="utf-8",
            )
            tag = f"cascade-{skill}:{stamp.skill_version}"
            engine.build(build, dockerfile="Dockerfile", tag=tag, labels={}, buildargs={})
            images[skill] = tag
        yield images
    finally:
        for ref in [*images.values(), runtime["ref"]]:
            engine.remove_image(ref)


@pytest.mark.docker
def test_three_skill_cascade_in_containers(
    engine: DockerEngine,
    step_images: dict[str, str],
    cascade_bundles: dict[str, Path],
    cases: list[StackCase],
    tmp_path: Path,
) -> None:
    servers = {
        skill: ServerSpec(skill, read_bundle(bundle).stamp, image=step_images[skill])
        for skill, bundle in cascade_bundles.items()
    }
    record = run_stack_test(
        CASCADE,
        servers,
        cases,
        launcher=DockerLauncher(engine, log_dir=tmp_path / "logs"),
        run_dir=tmp_path,
    )
    assert (tmp_path / "stack.json").is_file()
    assert record["inputs"] == len(cases)
    assert [s["skill"] for s in record["steps"]] == ["detector", "size", "low-digit"]
    answered = {s["skill"]: (s["skill_version"], s["code_version"]) for s in record["steps"]}
    assert answered == {
        skill: (read_bundle(b).stamp.skill_version, read_bundle(b).stamp.code_version)
        for skill, b in cascade_bundles.items()
    }
    assert record["end_to_end_accuracy"] > 0.5
    assert record["latency"]["p50"] > 0
