"""Editing the infra template: one tag line changes, nothing else; FindInMap references checked."""

from __future__ import annotations

import difflib

import pytest

from skillmaker.domain.cfn_template import (
    add_skill,
    find_in_map_problems,
    set_tag,
    skill_entry,
)
from skillmaker.errors import UserError
from skillmaker.resources import infra_dir

BUNDLED = (infra_dir() / "skills.yaml").read_text(encoding="utf-8")


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_setting_a_tag_changes_only_that_line() -> None:
    after = set_tag(BUNDLED, "skills.yaml", "SkillImages", "digits", "5-1a2b3c4-cpu")
    assert _changed_lines(BUNDLED, after) == [
        "-      Tag: 0-0000000-cpu",
        "+      Tag: 5-1a2b3c4-cpu",
    ]
    assert "!FindInMap [SkillImages, digits, Tag]" in after
    assert "# One entry per skill." in after
    entry = skill_entry(after, "skills.yaml", "SkillImages", "digits")
    assert entry is not None
    assert (entry.tag, entry.flavor) == ("5-1a2b3c4-cpu", "cpu")


def test_quotes_comments_and_flow_style_stay_as_written() -> None:
    text = (
        "Mappings:\n"
        "  SkillImages:\n"
        "    cars: {Tag: '1-aaaaaaa-gpu', Flavor: gpu}  # the GPU one\n"
        '    digits:\n      Tag: "2-bbbbbbb-cpu"   # pinned by hand once\n'
    )
    after = set_tag(text, "t", "SkillImages", "cars", "3-ccccccc-gpu")
    after = set_tag(after, "t", "SkillImages", "digits", "4-ddddddd-cpu")
    assert after == text.replace("1-aaaaaaa-gpu", "3-ccccccc-gpu").replace(
        "2-bbbbbbb-cpu", "4-ddddddd-cpu"
    )


def test_json_templates_are_edited_in_place_too() -> None:
    text = '{\n  "Mappings": {"SkillImages": {"digits": {"Tag": "1-aaaaaaa-cpu"}}}\n}\n'
    after = set_tag(text, "t.json", "SkillImages", "digits", "2-bbbbbbb-cpu")
    assert after == text.replace("1-aaaaaaa-cpu", "2-bbbbbbb-cpu")


def test_a_missing_mapping_is_named() -> None:
    with pytest.raises(UserError, match=r"Mappings has no 'Images' \(deploy.mapping_name"):
        set_tag(BUNDLED, "skills.yaml", "Images", "digits", "5-1a2b3c4-cpu")


def test_a_new_skill_is_added_without_touching_the_rest() -> None:
    after = add_skill(
        BUNDLED, "skills.yaml", "SkillImages", "car-make", tag="3-1a2b3c4-gpu", flavor="gpu"
    )
    changed = _changed_lines(BUNDLED, after)
    assert changed
    assert all(line.startswith("+") for line in changed)
    assert "    Value: !FindInMap [SkillImages, car-make, Tag]" in after
    assert "            - Tag: !FindInMap [SkillImages, car-make, Tag]" in after
    assert "  CarMakeService:" in after
    assert find_in_map_problems(after, "skills.yaml") == []
    entry = skill_entry(after, "skills.yaml", "SkillImages", "car-make")
    assert entry is not None
    assert entry.flavor == "gpu"


def test_the_bundled_template_references_only_existing_keys() -> None:
    assert find_in_map_problems(BUNDLED, "skills.yaml") == []


def test_bad_references_inside_container_definitions_are_found() -> None:
    bad = BUNDLED.replace(
        "- Tag: !FindInMap [SkillImages, digits, Tag]",
        "- Tag: !FindInMap [SkillImages, digitz, Tag]",
    ).replace(
        "Value: !FindInMap [SkillImages, vw-golf-variant, Tag]",
        "Value: !FindInMap [SkillImage, vw-golf-variant, Tag]",
    )
    problems = [str(p) for p in find_in_map_problems(bad, "skills.yaml")]
    assert problems == [
        "skills.yaml: Resources.DigitsTask.Properties.ContainerDefinitions[0].Image[1].Tag: "
        "FindInMap ['SkillImages', 'digitz', 'Tag']: mapping 'SkillImages' has no key 'digitz'",
        "skills.yaml: Outputs.VwGolfVariantImageTag.Value: "
        "FindInMap ['SkillImage', 'vw-golf-variant', 'Tag']: no mapping 'SkillImage' in Mappings",
    ]


def test_long_forms_intrinsic_keys_and_defaults_are_understood() -> None:
    text = """
Mappings:
  Regions:
    eu-west-1: {Ami: ami-1}
Resources:
  A:
    Type: AWS::SSM::Parameter
    Properties:
      Value: {"Fn::FindInMap": [Regions, eu-west-1, Amy]}
      Name: !FindInMap [Regions, !Ref "AWS::Region", Ami]
      Description: !FindInMap [Regions, us-east-1, Ami, {DefaultValue: none}]
"""
    problems = [p.message for p in find_in_map_problems(text, "t")]
    assert problems == [
        "Resources.A.Properties.Value.Fn::FindInMap: FindInMap ['Regions', 'eu-west-1', 'Amy']: "
        "mapping 'Regions' has no key 'Amy' under 'eu-west-1'"
    ]
