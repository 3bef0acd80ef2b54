"""The infra repo's CloudFormation template: read and set a skill's image tag, check FindInMap.

The template is parsed with ruamel.yaml's round-trip loader, which keeps comments, key order and
the ``!FindInMap``/``!Sub`` short forms. A tag change is written back by replacing only the tag's
own characters at the position the loader reports, so the diff is that one line whatever the file's
indentation or quoting style (JSON templates included). Adding a skill that the template does not
know yet is a structural change and goes through a full round-trip dump.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tag import Tag

from skillmaker.domain.versions import FLAVORS, Flavor, ImageTag
from skillmaker.errors import Problem, ProblemsError, UserError

TAG_KEY = "Tag"
"""Key of the image tag in a skill's mapping entry."""
FLAVOR_KEY = "Flavor"
"""Key of the skill's flavor (cpu or gpu: which image and which capacity) in its mapping entry."""

_FIND_IN_MAP = "Fn::FindInMap"


class TemplateError(UserError):
    """The template cannot be read or changed as asked; the message names the file and the place."""


@dataclass(frozen=True)
class SkillEntry:
    """A skill's entry in the template's image mapping."""

    skill: str
    tag: str
    flavor: Flavor


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    return yaml


def load(text: str, where: str) -> CommentedMap:
    """Give the template parsed for round-trip editing."""
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise TemplateError(f"{where}: not valid YAML/JSON: {exc}") from None
    if not isinstance(doc, CommentedMap):
        raise TemplateError(f"{where}: not a CloudFormation template (top level is not a mapping)")
    return doc


def _image_map(doc: CommentedMap, mapping: str, where: str) -> CommentedMap:
    mappings = doc.get("Mappings")
    if not isinstance(mappings, CommentedMap) or mapping not in mappings:
        raise TemplateError(
            f"{where}: Mappings has no {mapping!r} (deploy.mapping_name in skill.json)"
        )
    images = mappings[mapping]
    if not isinstance(images, CommentedMap):
        raise TemplateError(f"{where}: Mappings.{mapping} is not a mapping")
    return images


def skill_entry(text: str, where: str, mapping: str, skill: str) -> SkillEntry | None:
    """Give a skill's tag and flavor from the template, or None when the skill is not in it."""
    images = _image_map(load(text, where), mapping, where)
    entry = images.get(skill)
    if entry is None:
        return None
    if not isinstance(entry, CommentedMap) or TAG_KEY not in entry:
        raise TemplateError(f"{where}: Mappings.{mapping}.{skill} has no {TAG_KEY!r} key")
    tag = str(entry[TAG_KEY])
    flavor = str(entry.get(FLAVOR_KEY, ""))
    if not flavor:
        try:
            flavor = ImageTag.parse(tag).flavor
        except UserError:
            flavor = "cpu"
    if flavor not in FLAVORS:
        raise TemplateError(
            f"{where}: Mappings.{mapping}.{skill}.{FLAVOR_KEY} must be cpu or gpu (got {flavor!r})"
        )
    return SkillEntry(skill=skill, tag=tag, flavor="gpu" if flavor == "gpu" else "cpu")


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer(r"\n", text))
    return starts


def _scalar_end(text: str, start: int) -> int:
    """Give the end offset of the scalar token that begins at ``start``."""
    quote = text[start]
    if quote in "\"'":
        index = start + 1
        while index < len(text):
            char = text[index]
            if quote == '"' and char == "\\":
                index += 2
                continue
            if char == quote:
                if quote == "'" and text[index + 1 : index + 2] == "'":
                    index += 2
                    continue
                return index + 1
            if char == "\n":
                break
            index += 1
        raise TemplateError("the tag is a quoted scalar spread over several lines")
    end = start
    while end < len(text) and text[end] != "\n":
        if text[end] in ",}]" or text.startswith(" #", end):
            break
        end += 1
    return len(text[start:end].rstrip()) + start


def set_tag(text: str, where: str, mapping: str, skill: str, tag: str) -> str:
    """Give the template text with the skill's tag replaced and every other character as it was."""
    doc = load(text, where)
    images = _image_map(doc, mapping, where)
    entry = images.get(skill)
    if not isinstance(entry, CommentedMap) or TAG_KEY not in entry:
        raise TemplateError(f"{where}: Mappings.{mapping}.{skill}.{TAG_KEY} does not exist")
    if str(entry[TAG_KEY]) == tag:
        return text
    line, column = entry.lc.value(TAG_KEY)
    start = _line_starts(text)[line] + column
    try:
        end = _scalar_end(text, start)
    except TemplateError as exc:
        raise TemplateError(f"{where}: Mappings.{mapping}.{skill}.{TAG_KEY}: {exc}") from None
    old = text[start:end]
    new = f"{old[0]}{tag}{old[0]}" if old[:1] in ("'", '"') else tag
    updated = text[:start] + new + text[end:]
    # Read the result back: the tag must be the new one and nothing else may have moved.
    after = skill_entry(updated, where, mapping, skill)
    if after is None or after.tag != tag:
        raise TemplateError(
            f"{where}: could not rewrite Mappings.{mapping}.{skill}.{TAG_KEY} in place"
        )
    return updated


def _pascal(skill: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in skill.split("-") if part)


def _find_in_map(mapping: str, skill: str) -> CommentedSeq:
    seq = CommentedSeq([mapping, skill, TAG_KEY])
    seq.fa.set_flow_style()
    seq.yaml_set_ctag(_ctag("!FindInMap"))
    return seq


def _ctag(name: str) -> Tag:
    return Tag(suffix=name)


def _tagged(name: str, value: str) -> TaggedScalar:
    return TaggedScalar(value=value, tag=name)


def _flow(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _skill_resources(mapping: str, skill: str, flavor: Flavor) -> dict[str, CommentedMap]:
    """Give the task definition and service of a skill (the pattern of the bundled template)."""
    image = CommentedSeq(
        [f"${{ImageRegistry}}/{skill}:${{Tag}}", CommentedMap(Tag=_find_in_map(mapping, skill))]
    )
    image.yaml_set_ctag(_ctag("!Sub"))
    container = CommentedMap(Name=skill, Image=image)
    task_props = CommentedMap(Family=skill)
    service_props = CommentedMap(
        ServiceName=skill,
        Cluster=_tagged("!Ref", "Cluster"),
        TaskDefinition=_tagged("!Ref", f"{_pascal(skill)}Task"),
        DesiredCount=1,
    )
    if flavor == "gpu":
        task_props.update(RequiresCompatibilities=_flow(["EC2"]), NetworkMode="bridge")
        container.update(Memory=8192, ResourceRequirements=[CommentedMap(Type="GPU", Value="1")])
        service_props.update(
            LaunchType="EC2",
            PlacementConstraints=[
                CommentedMap(
                    Type="memberOf",
                    Expression=_tagged(
                        "!Sub", "attribute:ecs.instance-type =~ ${GpuInstanceFamily}"
                    ),
                )
            ],
        )
    else:
        task_props.update(
            RequiresCompatibilities=_flow(["FARGATE"]),
            NetworkMode="awsvpc",
            Cpu="512",
            Memory="1024",
        )
        service_props.update(
            LaunchType="FARGATE",
            NetworkConfiguration=CommentedMap(
                AwsvpcConfiguration=CommentedMap(
                    Subnets=_tagged("!Ref", "Subnets"),
                    SecurityGroups=_flow([_tagged("!Ref", "SecurityGroup")]),
                )
            ),
        )
    container.update(PortMappings=[CommentedMap(ContainerPort=8080)], Essential=True)
    task_props["ContainerDefinitions"] = [container]
    name = _pascal(skill)
    return {
        f"{name}Task": CommentedMap(Type="AWS::ECS::TaskDefinition", Properties=task_props),
        f"{name}Service": CommentedMap(Type="AWS::ECS::Service", Properties=service_props),
    }


# (mapping indent, sequence indent, dash offset) styles tried, most common first.
_STYLES = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 4, 0), (4, 2, 0), (3, 3, 0))


def _matching_dumper(text: str, where: str) -> YAML:
    """Give the dumper whose indentation reproduces the template best (exactly, when it can)."""
    best: tuple[int, YAML] | None = None
    lines = set(text.splitlines())
    for mapping, sequence, offset in _STYLES:
        yaml = _yaml()
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        stream = io.StringIO()
        yaml.dump(load(text, where), stream)
        if stream.getvalue() == text:
            return yaml
        kept = len(lines & set(stream.getvalue().splitlines()))
        if best is None or kept > best[0]:
            best = (kept, yaml)
    assert best is not None
    return best[1]


def add_skill(text: str, where: str, mapping: str, skill: str, *, tag: str, flavor: Flavor) -> str:
    """Give the template with a new skill: its mapping entry, task, service and tag output.

    The new resources follow the bundled template's pattern (they use its ``Cluster``,
    ``ImageRegistry``, ``Subnets``, ``SecurityGroup`` and ``GpuInstanceFamily``); cfn-lint then
    says whether the template they were added to has those.
    """
    yaml = _matching_dumper(text, where)
    doc = load(text, where)
    images = _image_map(doc, mapping, where)
    if skill in images:
        raise TemplateError(f"{where}: Mappings.{mapping} already has {skill!r}")
    images[skill] = CommentedMap([(TAG_KEY, tag), (FLAVOR_KEY, flavor)])
    resources = doc.setdefault("Resources", CommentedMap())
    name = _pascal(skill)
    for logical_id, resource in _skill_resources(mapping, skill, flavor).items():
        if logical_id in resources:
            raise TemplateError(f"{where}: Resources already has {logical_id!r}")
        resources[logical_id] = resource
    outputs = doc.setdefault("Outputs", CommentedMap())
    outputs[f"{name}ImageTag"] = CommentedMap(
        Description=f"Image tag the {skill} service runs.", Value=_find_in_map(mapping, skill)
    )
    stream = io.StringIO()
    yaml.dump(doc, stream)
    return stream.getvalue()


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def _literal(node: Any) -> str | None:
    """Give a FindInMap argument's literal string, or None when it is itself an intrinsic."""
    if isinstance(node, str) and not isinstance(node, TaggedScalar) and _tag_of(node) is None:
        return node
    if isinstance(node, int | float) and not isinstance(node, bool):
        return str(node)
    return None


def _find_in_maps(node: Any, path: str) -> Iterator[tuple[str, list[Any]]]:
    """Give every FindInMap in a template (long or short form) with its arguments and place."""
    if isinstance(node, CommentedSeq | list):
        if _tag_of(node) == "!FindInMap":
            yield path, list(node)
        for index, item in enumerate(node):
            yield from _find_in_maps(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == _FIND_IN_MAP and isinstance(value, list):
                yield here, list(value)
            yield from _find_in_maps(value, here)


def find_in_map_problems(text: str, where: str) -> list[Problem]:
    """Give one problem per FindInMap whose map or keys do not exist in the template's Mappings.

    Arguments that are intrinsics (``!Ref AWS::Region``) cannot be checked before deployment and
    are accepted; a FindInMap with a default value (fourth argument) may miss its keys.
    """
    doc = load(text, where)
    mappings = doc.get("Mappings") or {}
    problems: list[Problem] = []
    for path, args in _find_in_maps(doc, ""):
        shown = f"{path}: FindInMap {[str(a) for a in args]}"
        if len(args) not in (3, 4):
            problems.append(Problem(where, f"{shown}: needs a map name and two keys"))
            continue
        has_default = len(args) == 4
        name, first, second = (_literal(a) for a in args[:3])
        if name is None:
            continue
        if name not in mappings:
            problems.append(Problem(where, f"{shown}: no mapping {name!r} in Mappings"))
            continue
        if first is None or has_default:
            continue
        table = mappings[name]
        if first not in table:
            problems.append(Problem(where, f"{shown}: mapping {name!r} has no key {first!r}"))
            continue
        if second is not None and (
            not isinstance(table[first], dict) or second not in table[first]
        ):
            problems.append(
                Problem(where, f"{shown}: mapping {name!r} has no key {second!r} under {first!r}")
            )
    return problems


def check_find_in_maps(text: str, where: str) -> None:
    """Raise a user error listing every FindInMap that points at a missing map or key."""
    problems = find_in_map_problems(text, where)
    if problems:
        raise ProblemsError(problems)
