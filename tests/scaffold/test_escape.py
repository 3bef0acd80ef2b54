"""The escaping filters: each gives text its language shows or parses back as written."""

from __future__ import annotations

import json
import shlex

import pytest

from skillmaker.scaffold.escape import (
    docker_word,
    groovy,
    json_text,
    markdown,
    markdown_code,
    shell,
)

TEXTS = ["plain", "{{ 7*7 }}", "a'b\"c\\d", "$(rm -rf /); `id` | & > <", "*_[]()#~"]


def test_markdown_escapes_markup_but_not_braces() -> None:
    assert markdown("{{ 7*7 }} <b>_x_</b> [a](b) | #") == (
        "{{ 7\\*7 }} \\<b\\>\\_x\\_\\</b\\> \\[a\\](b) \\| \\#"
    )
    assert markdown("two\nlines") == "two lines"


@pytest.mark.parametrize(
    ("text", "span"),
    [("a", "`a`"), ("a`b", "``a`b``"), ("`x`", "`` `x` ``"), ("a``b", "```a``b```")],
)
def test_markdown_code_spans_hold_any_backticks(text: str, span: str) -> None:
    assert markdown_code(text) == span


@pytest.mark.parametrize("text", TEXTS)
def test_groovy_json_and_shell_round_trip(text: str) -> None:
    assert "'" not in groovy(text).replace("\\'", "")
    assert json.loads(json_text(text)) == text
    assert shlex.split(shell(text)) == [text]


def test_docker_word_refuses_anything_but_a_reference() -> None:
    assert docker_word("ghcr.io/a/b:1@sha256:00") == "ghcr.io/a/b:1@sha256:00"
    for bad in ("a b", "a\nRUN x", "$(x)", "a;b"):
        with pytest.raises(ValueError, match="not a safe Dockerfile word"):
            docker_word(bad)
