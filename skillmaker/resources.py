"""Where the files shipped with skillmaker (template, report templates, infra, examples) live."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """Give the folder ``name`` shipped with skillmaker: inside the wheel, or in a source checkout."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"skillmaker is installed without its {name}/ folder")


def template_dir() -> Path:
    """Give the cookiecutter template of a skill repo."""
    return bundled("template")


def report_templates_dir() -> Path:
    """Give the folder of Pweave report templates."""
    return bundled("report_templates")


def infra_dir() -> Path:
    """Give the folder of the CloudFormation template and the cascade definition."""
    return bundled("infra")


def examples_dir() -> Path:
    """Give the folder of example configs."""
    return bundled("examples")
