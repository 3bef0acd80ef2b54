"""Image tags: ``<skill_version>-<short sha>-<cpu|gpu>``, written and read back."""

from __future__ import annotations

import pytest

from skillmaker.domain.versions import ImageTag, image_tags, short_sha
from skillmaker.errors import UserError

SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


def test_a_tag_names_version_short_commit_and_flavor() -> None:
    tag = ImageTag.of(12, SHA, "gpu")
    assert str(tag) == "12-1a2b3c4-gpu"
    assert tag.image("vision-skill", "registry.example.com/vision/") == (
        "registry.example.com/vision/vision-skill:12-1a2b3c4-gpu"
    )
    assert tag.image("vision-skill") == "vision-skill:12-1a2b3c4-gpu"
    assert tag.matches(SHA)
    assert not tag.matches("f" * 40)


def test_a_run_has_one_tag_per_flavor() -> None:
    assert {str(t) for t in image_tags(3, SHA).values()} == {"3-1a2b3c4-cpu", "3-1a2b3c4-gpu"}


@pytest.mark.parametrize("text", ["12-1a2b3c4-gpu", "0-0000000-cpu", "7-1a2b3c4d5e-cpu"])
def test_tags_read_back_as_written(text: str) -> None:
    assert str(ImageTag.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["12-1a2b3c4", "v12-1a2b3c4-cpu", "12-XYZ1234-cpu", "12-1a2b3c4-tpu", "012-1a2b3c4-cpu", ""],
)
def test_malformed_tags_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(UserError, match=r"<skill_version>-<short sha>-<cpu\|gpu>"):
        ImageTag.parse(text)


def test_tags_order_by_version() -> None:
    tags = [ImageTag.parse(t) for t in ("10-aaaaaaa-cpu", "9-bbbbbbb-cpu", "2-ccccccc-cpu")]
    assert [t.skill_version for t in sorted(tags)] == [2, 9, 10]


def test_a_code_version_must_be_a_commit() -> None:
    assert short_sha(SHA.upper()) == "1a2b3c4"
    with pytest.raises(UserError, match="not a git commit"):
        short_sha("main")
    with pytest.raises(UserError, match="must not be negative"):
        ImageTag(-1, "1a2b3c4", "cpu")
