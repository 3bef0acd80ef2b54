"""The rendered Jenkinsfile, read as a Jenkins engineer would: agents, stashes, gate, post, secrets.

npm-groovy-lint checks the syntax (tests/test_generated_lint.py); these tests check what each stage
does, on the example config and on one with credentials, a release branch and timeouts set.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skillmaker import __version__
from skillmaker.cli import main
from skillmaker.config import load_config
from skillmaker.domain.ci import ci_stages, groovy, release_branch
from skillmaker.scaffold import new_skill

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _stamp(tmp_path: Path, **ci: Any) -> Path:
    raw = json.loads((EXAMPLES / "car.json").read_text())
    raw["ci"] = {**raw.get("ci", {}), **ci}
    (tmp_path / "classes.json").write_text((EXAMPLES / "classes.json").read_text())
    (tmp_path / "car.json").write_text(json.dumps(raw))
    return new_skill(tmp_path / "car.json", tmp_path / "car")


def _stage(text: str, name: str) -> str:
    """Give the block of one stage of a rendered Jenkinsfile."""
    start = text.index(f"        stage('{name}') {{")
    end = text.find("\n        stage('", start + 1)
    return text[start : end if end != -1 else text.index("\n    post {")]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (_stamp(tmp_path_factory.mktemp("plain")) / "Jenkinsfile").read_text()


def test_training_runs_in_the_gpu_image_with_all_gpus_and_the_gpu_profile(plain: str) -> None:
    train = _stage(plain, "train")
    assert 'image "${env.SKILL_IMAGE_GPU}"' in train
    assert "label 'gpu'" in train and "--gpus all" in train
    assert "sh 'skillmaker run --from train --until train --profile server'" in train
    cache = "/var/cache/skillmaker/vw-golf-variant"
    assert f"-v {cache}:{cache}" in train, "the agent's data cache is mounted"
    for name in ("data", "gate"):
        block = _stage(plain, name)
        assert 'image "${env.SKILL_IMAGE_CPU}"' in block and "--gpus" not in block


def test_stages_outside_the_image_run_the_pinned_skillmaker_on_the_agent(plain: str) -> None:
    # evaluate and stack-test serve the models in their images through the agent's Docker.
    for name in ("version", "build", "evaluate", "stack-test", "report", "deploy"):
        block = _stage(plain, name)
        assert "docker {" not in block and "label 'cpu'" in block
        assert f"sh 'sh ci/skillmaker-agent.sh run --from {name} --until {name}'" in block
    assert "env.SKILL_IMAGE_CPU = sh(returnStdout: true" in _stage(plain, "build")
    assert f"SKILLMAKER_VERSION = '{__version__}'" in plain


def test_every_stage_starts_clean_and_stashes_only_small_files(plain: str) -> None:
    for item in ci_stages(load_config(EXAMPLES / "car.json").config):
        block = _stage(plain, item.name)
        assert (
            "steps {\n                sh 'rm -rf .skillmaker/current.json .skillmaker/runs'"
            in block
        )
        assert "checkout scm" not in block, (
            "images have no git: Declarative checks out on the agent"
        )
        assert f"timeout(time: {item.timeout_minutes}, unit: 'MINUTES')" in block
    includes = re.findall(r"includes: '([^']+)'", plain)
    assert includes == [
        ".skillmaker/current.json",
        ".skillmaker/runs/*/junit/evaluate.xml",
        ".skillmaker/runs/*/junit/stack-test.xml",
        ".skillmaker/runs/*/report.pdf",
    ]


def test_a_gate_rejection_is_unstable_and_asks_a_person(plain: str) -> None:
    gate = _stage(plain, "gate")
    assert (
        "int code = sh(returnStatus: true, script: 'skillmaker run --from gate --until gate')"
        in gate
    )
    assert "unstable(message:" in gate and 'error("gate: skillmaker exited with ${code}")' in gate
    override = _stage(plain, "override")
    assert "beforeInput true" in override and "branch 'main'" in override
    assert "submitterParameter 'SKILLMAKER_APPROVER'" in override
    assert "string(name: 'SKILLMAKER_OVERRIDE_REASON'" in override
    assert 'skillmaker gate --accept-regression --reason "$SKILLMAKER_OVERRIDE_REASON"' in override
    deploy = _stage(plain, "deploy")
    assert "beforeAgent true\n                branch 'main'" in deploy


def test_post_checks_out_then_unstashes_what_exists_and_always_notifies(plain: str) -> None:
    post = plain[plain.index("\n    post {") :]
    assert post.index("checkout scm") < post.index("unstash")
    for name in ("run", "junit-evaluate", "junit-stack-test", "report"):
        assert re.search(
            rf"catchError\(buildResult: 'SUCCESS', stageResult: 'SUCCESS', message: '[^']+'\) {{\n\s+unstash '{name}'",
            post,
        )
    assert "junit allowEmptyResults: true, skipMarkingBuildUnstable: true" in post
    assert "archiveArtifacts artifacts: '.skillmaker/runs/*/report.pdf'" in post
    assert "SKILLMAKER_BUILD_RESULT=${currentBuild.currentResult}" in post
    assert post.index("notify --build-result") < post.index("skillmaker-agent.sh cleanup'")


def test_no_credentials_unless_configured(plain: str, tmp_path: Path) -> None:
    assert "withCredentials" not in plain and "credentials(" not in plain
    text = (
        _stamp(
            tmp_path,
            credentials={"AWS_ACCESS_KEY_ID": "aws-id", "SLACK_BOT_TOKEN": "slack-bot"},
            timeouts={"train": 600},
        )
        / "Jenkinsfile"
    ).read_text()
    aws = "string(credentialsId: 'aws-id', variable: 'AWS_ACCESS_KEY_ID')"
    slack = "string(credentialsId: 'slack-bot', variable: 'SLACK_BOT_TOKEN')"
    for name in ("version", "train", "gate", "deploy"):
        block = _stage(text, name)
        assert f"withCredentials([{aws}])" in block and slack not in block
    post = text[text.index("\n    post {") :]
    assert f"withCredentials([{aws}, {slack}])" in post
    assert "timeout(time: 600, unit: 'MINUTES')" in _stage(text, "train")


def test_groovy_literals_are_data() -> None:
    assert groovy("it's a \\ path\n") == "'it\\'s a \\\\ path\\n'"
    config = load_config(EXAMPLES / "car.json").config
    assert release_branch(config) == "main"


def test_image_command_names_the_runtime_image_of_the_run(tmp_path: Path) -> None:
    repo = _stamp(tmp_path)
    (repo / ".skillmaker" / "current.json").write_text(
        json.dumps({"skill_version": 4, "code_version": "1a2b3c4d5e"})
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["image", "--flavor", "gpu", "--repo", str(repo)], out=out, err=err) == 0, err
    assert (
        out.getvalue().strip()
        == "registry.example.com/vision/vw-golf-variant:4-1a2b3c4-gpu-runtime"
    )


def test_agent_script_runs_the_pinned_skillmaker_or_installs_it(tmp_path: Path) -> None:
    repo = _stamp(tmp_path)
    env = {
        **os.environ,
        "SKILLMAKER_PYTHON": sys.executable,
        "SKILLMAKER_AGENT_CACHE": str(tmp_path / "agent"),
    }
    done = subprocess.run(
        ["sh", "ci/skillmaker-agent.sh", "--version"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip() == f"skillmaker {__version__}", done.stderr
    assert not (tmp_path / "agent").exists(), "the pinned version on PATH is used as it is"

    # Another pin, and wheels only from an empty folder: the script tries to install that pin.
    script = (repo / "ci" / "skillmaker-agent.sh").read_text().replace(__version__, "99.0.0")
    (repo / "ci" / "skillmaker-agent.sh").write_text(script)
    (repo / "requirements.txt").write_text("skillmaker==99.0.0\n")
    (tmp_path / "wheels").mkdir()
    offline = {**env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "wheels")}
    done = subprocess.run(
        ["sh", "ci/skillmaker-agent.sh", "--version"],
        cwd=repo,
        env=offline,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "skillmaker==99.0.0" in done.stdout + done.stderr
    assert not (tmp_path / "agent" / "venv" / "99.0.0" / "bin" / "skillmaker").exists()
