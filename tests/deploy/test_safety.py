"""What ships is what was built and approved: release branch, built images, one deploy per stack,
revert on any failure after the push, templates of any size, no secret written."""

from __future__ import annotations

import difflib
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from skillmaker.adapters import git
from skillmaker.adapters.infra_repo import init_infra_repo
from skillmaker.adapters.store import open_store
from skillmaker.context import load_skill
from skillmaker.domain.cfn_template import add_skill, skill_entry
from skillmaker.registry import read_registry
from skillmaker.resources import infra_dir
from tests.helpers import MotoServer, free_port
from tests.skill_repos import Skill, SkillFactory, skill_config, tree_bytes

TEMPLATE = "skills.yaml"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def _tag(remote: Path, skill: str) -> str | None:
    entry = skill_entry(_git(remote, "show", f"main:{TEMPLATE}"), TEMPLATE, "SkillImages", skill)
    return entry.tag if entry else None


def _outputs(endpoint: str | None = None) -> dict[str, str]:
    client = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=endpoint)
    stack = client.describe_stacks(StackName="skills")["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """Give the shared infra repo: a bare git remote holding the bundled template."""
    return init_infra_repo(tmp_path / "infra.git", bare=True)


def _skill(
    make_skill: SkillFactory, tmp_path: Path, remote: Path, name: str = "digits", **deploy: Any
) -> Skill:
    settings = skill_config(name, (tmp_path / "artifacts").as_uri(), str(remote))["deploy"]
    return make_skill(name, infra=remote, deploy={**settings, **deploy})


# -- built and pushed images only


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (None, "no cpu serving image 1-{sha}-cpu was built in this run"),
        ("skipped", "the build was skipped (no Docker engine answers), so no cpu serving image"),
        ("unpushed", "the cpu serving image registry.test/digits:1-{sha}-cpu was built but never"),
    ],
    ids=["no-build", "build-skipped", "not-pushed"],
)
def test_a_tag_whose_serving_image_was_not_built_and_pushed_is_refused(
    make_skill: SkillFactory, remote: Path, build: str | None, reason: str
) -> None:
    skill = make_skill(infra=remote)
    skill.passed_run(baseline=None, built=False)
    if build == "unpushed":
        skill.built(pushed=False)
    elif build == "skipped":
        run_dir = skill.repo / ".skillmaker/runs/1"
        (run_dir / "build.json").write_text(
            json.dumps({"skipped": "no Docker engine answers", "engine": None, "images": []})
        )
    before = tree_bytes(remote)
    result = skill.run("deploy")
    assert result.code == 2
    sha = git.head_commit(skill.repo)[:7]
    assert reason.format(sha=sha) in result.err
    assert '"require_built_image": false' in result.err
    assert tree_bytes(remote) == before
    assert read_registry(load_skill(skill.repo).artifacts(), "digits")["deployed"] is None


def test_opting_out_of_built_images_is_said_in_output_record_and_commit(
    make_skill: SkillFactory, remote: Path, tmp_path: Path
) -> None:
    skill = _skill(make_skill, tmp_path, remote, require_built_image=False)
    skill.passed_run(baseline=None, built=False)
    result = skill.run("deploy", "--no-stack")
    assert result.code == 0, result.err
    tag = f"1-{git.head_commit(skill.repo)[:7]}-cpu"
    note = f"image {tag} not checked as built and pushed (deploy.require_built_image is false"
    assert f"warning: {note}" in result.out
    record = json.loads((skill.repo / ".skillmaker/runs/1/deploy.json").read_text())
    assert record["image_check"].startswith(note)
    assert note in record["message"]
    assert f"image: {note}" in _git(remote, "log", "-1", "--format=%B", "main")


# -- the release branch only


def test_a_deploy_from_another_branch_is_refused(make_skill: SkillFactory, remote: Path) -> None:
    skill = make_skill(infra=remote)
    subprocess.run(["git", "checkout", "-q", "-b", "experiment"], cwd=skill.repo, check=True)
    skill.passed_run(baseline=None)
    before = tree_bytes(remote)
    result = skill.run("deploy")
    assert result.code == 2
    assert (
        "the run is of branch 'experiment', not of the release branch 'main' (deploy.branch)"
        in result.err
    )
    assert tree_bytes(remote) == before


# -- a failure after the push reverts


class _Refusing(BaseHTTPRequestHandler):
    """Forwards CloudFormation calls to moto but refuses every UpdateStack with an AWS error."""

    upstream = ""
    code = "Throttling"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if b"Action=UpdateStack" in body:
            reply = (
                '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                f"<Error><Type>Sender</Type><Code>{self.code}</Code><Message>Rate exceeded"
                "</Message></Error><RequestId>1</RequestId></ErrorResponse>"
            ).encode()
            self.send_response(400)
        else:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            request = urllib.request.Request(self.upstream + self.path, body, headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = response.read()
            self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_proxy(aws_env: MotoServer) -> Iterator[str]:
    """Give the URL of a CloudFormation proxy in front of moto that refuses stack updates."""
    handler = type("Handler", (_Refusing,), {"upstream": aws_env.endpoint})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fault", ["unreachable", "throttled"])
def test_a_failure_after_the_push_reverts_and_keeps_the_deployed_version(
    aws_env: MotoServer,
    make_skill: SkillFactory,
    remote: Path,
    refusing_proxy: str,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    skill = make_skill(infra=remote)
    first = skill.passed_run(baseline=None)
    assert skill.run("deploy").code == 0
    first_tag = _tag(remote, "digits")
    skill.new_commit()
    skill.passed_run(baseline=first)
    endpoint = f"http://127.0.0.1:{free_port()}" if fault == "unreachable" else refusing_proxy
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    result = skill.run("deploy")
    assert result.code == 2, result.err
    cause = "CloudFormation unreachable" if fault == "unreachable" else "Throttling: Rate exceeded"
    assert cause in result.err
    assert "the infra commit is reverted and digits stays at version 1" in result.err
    assert "Traceback" not in result.err
    subjects = _git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects[0].startswith(f"Revert digits to {first_tag}: deploy failed")
    assert subjects[1].startswith("Deploy digits skill version 2")
    assert _tag(remote, "digits") == first_tag
    registry = read_registry(load_skill(skill.repo).artifacts(), "digits")
    assert registry["deployed"] is not None
    assert registry["deployed"]["skill_version"] == first
    assert registry["history"][-1]["decision"] == "deploy failed"
    assert cause in registry["history"][-1]["message"]
    record = json.loads((skill.repo / ".skillmaker/runs/2/deploy.json").read_text())
    assert record["outcome"] == "failed" and cause in record["message"]
    assert _outputs(aws_env.endpoint)["DigitsImageTag"] == first_tag

    monkeypatch.delenv("AWS_ENDPOINT_URL_CLOUDFORMATION")
    again = skill.run("deploy")  # the lease was released: the next deploy goes through
    assert again.code == 0, again.err
    assert _outputs()["DigitsImageTag"] == _tag(remote, "digits") != first_tag


# -- the stack lease


def test_a_deploy_waits_for_the_lease_and_reverts_what_a_crashed_deployer_pushed(
    aws_env: MotoServer, make_skill: SkillFactory, remote: Path, tmp_path: Path
) -> None:
    skill = make_skill(infra=remote)
    skill.passed_run(baseline=None)
    # A deployer of another skill pushed an untested tag, then crashed holding the lease.
    seed = tmp_path / "crashed"
    git.clone(str(remote), seed)
    text = (seed / TEMPLATE).read_text()
    (seed / TEMPLATE).write_text(text.replace("Tag: 0-0000000-gpu", "Tag: 9-dead000-gpu", 1))
    orphan = git.commit_all(seed, "Deploy vw-golf-variant skill version 9") or ""
    assert git.push(seed, "origin", "main")
    lease = {
        "holder": "vw-golf-variant v9 on ci-7 pid 42",
        "skill": "vw-golf-variant",
        "skill_version": 9,
        "acquired_at": time.time() - 60,
        "expires_at": time.time() + 2,
        "state": "held",
        "pushed": orphan,
    }
    store = open_store((tmp_path / "artifacts").as_uri())
    store.put_bytes("stacks/skills/deploy-lease.json", json.dumps(lease).encode())

    result = skill.run("deploy")
    assert result.code == 0, result.err
    assert (
        "stack 'skills' is being deployed by vw-golf-variant v9 on ci-7 pid 42 "
        "(deploying vw-golf-variant version 9" in result.out
    )
    assert f"vw-golf-variant v9 on ci-7 pid 42 pushed {orphan[:7]} and never verified it" in (
        result.out
    )
    assert _tag(remote, "vw-golf-variant") == "0-0000000-gpu"
    assert _outputs()["VwGolfVariantImageTag"] == "0-0000000-gpu"
    assert _outputs()["DigitsImageTag"] == _tag(remote, "digits")
    stored = json.loads(store.get_bytes("stacks/skills/deploy-lease.json"))
    assert (stored["state"], stored["pushed"], stored["skill"]) == ("released", None, "digits")


# -- templates of any size


def fleet_template(skills: int) -> str:
    """Give the bundled template with ``skills`` more skills, each as ``add_skill`` writes one.

    One skill is added by ``add_skill``; its lines are then repeated under the other names (a
    round trip through the YAML library per skill would take minutes for a hundred).
    """
    base = (infra_dir() / TEMPLATE).read_text()
    one = add_skill(base, TEMPLATE, "SkillImages", "skill-000", tag="1-abcdef0-cpu", flavor="cpu")
    old, new = base.splitlines(keepends=True), one.splitlines(keepends=True)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        assert op in ("equal", "insert"), op
        if op == "equal":
            out += old[i1:i2]
            continue
        block = "".join(new[j1:j2])
        for index in range(skills):
            out.append(
                block.replace("skill-000", f"skill-{index:03d}").replace(
                    "Skill000", f"Skill{index:03d}"
                )
            )
    return "".join(out)


def _fleet_remote(tmp_path: Path, skills: int) -> Path:
    seed = tmp_path / "fleet"
    init_infra_repo(seed)
    (seed / TEMPLATE).write_text(fleet_template(skills))
    git.commit_all(seed, f"{skills} skills")
    remote = tmp_path / "fleet.git"
    git.clone_bare(seed, remote)
    return remote


def test_a_template_over_the_inline_limit_goes_by_s3(
    aws_env: MotoServer, make_skill: SkillFactory, tmp_path: Path
) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="skill-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    remote = _fleet_remote(tmp_path, 98)  # with the template's own two: 100 skills
    skill = make_skill(artifacts="s3://skill-artifacts/team", infra=remote)
    skill.passed_run(baseline=None)
    result = skill.run("deploy")
    assert result.code == 0, result.err
    assert "bytes: sent to CloudFormation as https://skill-artifacts.s3.eu-west-1." in result.out
    outputs = _outputs()
    assert outputs["DigitsImageTag"] == _tag(remote, "digits")
    assert len([key for key in outputs if key.endswith("ImageTag")]) == 100
    record = json.loads((skill.repo / ".skillmaker/runs/1/deploy.json").read_text())
    assert record["template_url"].endswith(".yaml")


def test_a_big_template_without_an_s3_store_is_refused_before_the_push(
    aws_env: MotoServer, make_skill: SkillFactory, tmp_path: Path
) -> None:
    remote = _fleet_remote(tmp_path, 60)
    skill = make_skill(infra=remote)
    skill.passed_run(baseline=None)
    before = tree_bytes(remote)
    result = skill.run("deploy")
    assert result.code == 2
    assert "over CloudFormation's inline limit of 51200; it must go by S3" in result.err
    assert tree_bytes(remote) == before


# -- no secret written


def test_credentials_in_the_infra_url_are_never_written(
    make_skill: SkillFactory, remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "https://bot:s3cret-token@infra.example/team/infra.git"
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "{remote}"]\n\tinsteadOf = {url}\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    skill = _skill(make_skill, tmp_path, remote, infra_repo=url)
    skill.passed_run(baseline=None)
    result = skill.run("deploy", "--no-stack")
    assert result.code == 0, result.err
    assert "https://bot:***@infra.example/team/infra.git:skills.yaml" in result.out
    written = [result.out, result.err]
    written += [p.read_text() for p in (skill.repo / ".skillmaker/runs/1").glob("*.json")]
    written += [p.read_text() for p in (tmp_path / "artifacts").rglob("*.json")]
    assert not [text for text in written if "s3cret-token" in text]
    record = json.loads((skill.repo / ".skillmaker/runs/1/deploy.json").read_text())
    assert record["infra_repo"] == "https://bot:***@infra.example/team/infra.git"

    gitconfig.write_text("")  # the URL now leads nowhere: the error names it, redacted
    skill.passed_run(baseline=1)
    failed = skill.run("deploy", "--no-stack")
    assert failed.code == 2
    assert "https://bot:***@infra.example" in failed.err
    assert "s3cret-token" not in failed.err
