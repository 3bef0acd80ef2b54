"""Escape config text for the language of each generated file; the template only inserts it.

Config values never become template source: they reach the template as raw data (cookiecutter's
``_``-prefixed, unrendered context) and every insertion goes through one of these filters.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

# What can start markup mid-line: code, emphasis, links, HTML, tables, headings' closers, entities.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&~])")
_DOCKER_WORD = re.compile(r"^[A-Za-z0-9._/:@+-]+$")


def _one_line(value: str) -> str:
    # Lines are refused newlines by the config; anything else still cannot break out of a line.
    return value.replace("\r", " ").replace("\n", " ")


def markdown(value: Any) -> str:
    """Give text that Markdown shows literally (markup characters backslash-escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(str(value)))


def markdown_code(value: Any) -> str:
    """Give a Markdown code span showing the text literally, whatever backticks it holds."""
    text = _one_line(str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def groovy(value: Any) -> str:
    """Give the body of a Groovy single-quoted string (no interpolation) holding the text."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def comment(value: Any) -> str:
    """Give text safe inside a one-line comment of any of the generated languages."""
    return _one_line(str(value)).replace("*/", "* /").replace("-->", "- ->")


def docker_word(value: Any) -> str:
    """Give a Dockerfile word (an image reference): only the characters references may hold."""
    text = str(value)
    if not _DOCKER_WORD.match(text):
        raise ValueError(f"not a safe Dockerfile word: {text!r}")
    return text


def json_text(value: Any) -> str:
    """Give a JSON value (also a Dockerfile exec-form argument and a Python literal for str)."""
    return json.dumps(value, ensure_ascii=True)


def shell(value: Any) -> str:
    """Give one POSIX shell word holding the text."""
    return shlex.quote(str(value))


FILTERS = {
    "md": markdown,
    "md_code": markdown_code,
    "groovy": groovy,
    "comment": comment,
    "docker_word": docker_word,
    "json": json_text,
    "sh": shell,
}


class EscapeExtension(Extension):
    """Jinja extension (named in the template's ``_extensions``) adding the escaping filters."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(FILTERS)
