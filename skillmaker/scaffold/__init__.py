"""Stamp a skill repo from the template (``new``) and keep it current (``upgrade``, ``fleet``)."""

from skillmaker.scaffold.manifest import CONFIG_FILE, MANIFEST, Manifest
from skillmaker.scaffold.new import new_skill
from skillmaker.scaffold.render import render_owned_files, template_context
from skillmaker.scaffold.upgrade import UpgradeResult, upgrade_skill

__all__ = [
    "CONFIG_FILE",
    "MANIFEST",
    "Manifest",
    "UpgradeResult",
    "new_skill",
    "render_owned_files",
    "template_context",
    "upgrade_skill",
]
