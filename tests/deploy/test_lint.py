"""Template validation before a push: our FindInMap check, then cfn-lint."""

from __future__ import annotations

import pytest

from skillmaker.deploy.lint import cfn_lint, validate_template
from skillmaker.errors import ProblemsError
from skillmaker.resources import infra_dir

BUNDLED = (infra_dir() / "skills.yaml").read_text(encoding="utf-8")
BAD_KEY = BUNDLED.replace(
    "- Tag: !FindInMap [SkillImages, digits, Tag]", "- Tag: !FindInMap [SkillImages, digitz, Tag]"
)


def test_the_bundled_template_is_clean() -> None:
    assert validate_template(BUNDLED, "skills.yaml", "eu-west-1") == []


def test_a_bad_key_in_a_container_definition_is_refused_though_cfn_lint_misses_it() -> None:
    assert [f for f in cfn_lint(BAD_KEY, "eu-west-1") if f.severity == "error"] == []
    with pytest.raises(ProblemsError, match="mapping 'SkillImages' has no key 'digitz'"):
        validate_template(BAD_KEY, "skills.yaml", "eu-west-1")


def test_cfn_lint_errors_are_refused_with_their_line() -> None:
    bad = BUNDLED.replace("Type: AWS::ECS::Service", "Type: AWS::ECS::Servic", 1)
    with pytest.raises(ProblemsError) as caught:
        validate_template(bad, "skills.yaml", "eu-west-1")
    line = BUNDLED.splitlines().index("    Type: AWS::ECS::Service") + 1
    assert f"skills.yaml: cfn-lint line {line}: E3006 Resource type 'AWS::ECS::Servic'" in str(
        caught.value
    )
