"""Version and image tag rules: ``<skill_version>-<short sha>-<cpu|gpu>``, as a value object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from skillmaker.errors import UserError

Flavor = Literal["cpu", "gpu"]
FLAVORS: tuple[Flavor, ...] = ("cpu", "gpu")

SHORT_SHA_LENGTH = 7
"""Hex digits of the commit in a tag: git's own default abbreviation."""

_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_TAG = re.compile(r"^(?P<version>0|[1-9][0-9]*)-(?P<sha>[0-9a-f]{7,64})-(?P<flavor>cpu|gpu)$")


class BadImageTagError(UserError):
    """A text is not an image tag of the form ``<skill_version>-<short sha>-<cpu|gpu>``."""


def short_sha(code_version: str) -> str:
    """Give the abbreviated commit used in image tags (the first seven hex digits)."""
    sha = code_version.strip().lower()
    if not _SHA.match(sha):
        raise BadImageTagError(f"code version {code_version!r} is not a git commit (hex digits)")
    return sha[:SHORT_SHA_LENGTH]


@dataclass(frozen=True, order=True)
class ImageTag:
    """The tag of a skill image: which skill version, built from which commit, for what hardware."""

    skill_version: int
    short_sha: str
    flavor: Flavor

    def __post_init__(self) -> None:
        if self.skill_version < 0:
            raise BadImageTagError(f"skill version must not be negative (got {self.skill_version})")
        if not _SHA.match(self.short_sha):
            raise BadImageTagError(f"short sha must be hex digits (got {self.short_sha!r})")
        if self.flavor not in FLAVORS:
            raise BadImageTagError(f"flavor must be cpu or gpu (got {self.flavor!r})")

    @classmethod
    def of(cls, skill_version: int, code_version: str, flavor: Flavor) -> ImageTag:
        """Give the tag of a skill version built from a full commit sha."""
        return cls(skill_version, short_sha(code_version), flavor)

    @classmethod
    def parse(cls, text: str) -> ImageTag:
        """Give the tag written as ``<skill_version>-<short sha>-<cpu|gpu>``."""
        match = _TAG.match(text.strip())
        if match is None:
            raise BadImageTagError(
                f"{text!r} is not an image tag (expected <skill_version>-<short sha>-<cpu|gpu>, "
                "e.g. 12-1a2b3c4-cpu)"
            )
        return cls(int(match["version"]), match["sha"], cast(Flavor, match["flavor"]))

    def __str__(self) -> str:
        return f"{self.skill_version}-{self.short_sha}-{self.flavor}"

    def image(self, skill: str, registry: str | None = None) -> str:
        """Give the full image reference ``[<registry>/]<skill>:<tag>``."""
        name = f"{registry.rstrip('/')}/{skill}" if registry else skill
        return f"{name}:{self}"

    def matches(self, code_version: str) -> bool:
        """Give whether this tag was built from the given full commit."""
        return code_version.lower().startswith(self.short_sha)


def image_tags(skill_version: int, code_version: str) -> dict[Flavor, ImageTag]:
    """Give the CPU and GPU tags of one run."""
    return {flavor: ImageTag.of(skill_version, code_version, flavor) for flavor in FLAVORS}
