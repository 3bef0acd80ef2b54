"""The data stage: pull, check, define classes, merge copies, split by the ledger, audit.

``prepare_dataset`` leaves three records in the run folder (and in the store's run folder):
``definition.json``, ``dataset.json`` (every image the run uses, with its split) and
``audit.json``. Nothing is written when the data break a rule.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from skillmaker.config.load import parse_config
from skillmaker.config.model import SplitConfig
from skillmaker.context import SkillContext
from skillmaker.data.audit import build_audit
from skillmaker.data.checks import CHECKS, ImageCheck, check_files
from skillmaker.data.definition import (
    ClassDefinition,
    DefinitionRecord,
    SourceFile,
    define_classes,
    files_from_folders,
    files_from_manifest,
    parse_manifest,
)
from skillmaker.data.images import UNSAFE_KEY
from skillmaker.data.ledger import read_ledger, rebuild_ledger, update_ledger
from skillmaker.data.pull import PullResult, pull
from skillmaker.domain.assign import SplitPlan, check_split_invariants, plan_splits
from skillmaker.domain.duplicates import (
    LABEL_CONFLICT,
    Deduplication,
    HashedImage,
    deduplicate,
)
from skillmaker.domain.items import DatasetItem, DatasetRecord
from skillmaker.domain.layout import ledger_key, run_key
from skillmaker.domain.splits import SplitLedger, check_membership, fingerprint
from skillmaker.errors import UserError
from skillmaker.progress import Progress
from skillmaker.records import AUDIT, DEFINITION, AuditRecord, Quarantined, write_record

DATASET = "dataset.json"

CONFLICTING_LABELS = "same picture under different classes"


@dataclass(frozen=True)
class PreparedData:
    """Everything the data stage decided, as the records it writes."""

    dataset: DatasetRecord
    definition: DefinitionRecord
    audit: AuditRecord


def required_classes(ctx: SkillContext) -> tuple[str, ...]:
    """Give the classes the skill's class file requires (none without a class file)."""
    if ctx.config.data.class_file is None:
        return ()
    return parse_config(ctx.config.model_dump(mode="json"), "skill.json", ctx.repo)[1]


def _layout_files(
    ctx: SkillContext, pulled: PullResult
) -> tuple[list[SourceFile], list[Quarantined]]:
    data = ctx.config.data
    if data.layout == "folders":
        return files_from_folders(pulled.objects)
    manifest = next((o for o in pulled.objects if o.key == data.manifest), None)
    where = f"{data.source}/{data.manifest}"
    if manifest is None:
        raise UserError(f"{where}: the manifest named by data.manifest is not in the store")
    try:
        text = manifest.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: the manifest is not UTF-8 text (byte {exc.start})") from None
    return files_from_manifest(parse_manifest(text, where), manifest.key, pulled.objects)


def _conflicting_labels(files: Sequence[SourceFile]) -> tuple[list[SourceFile], list[Quarantined]]:
    """Give the files without a label conflict, and the copies of one picture under two classes."""
    labels: dict[str, set[str]] = defaultdict(set)
    for item in files:
        labels[item.sha256].add(item.label)
    clean = [f for f in files if len(labels[f.sha256]) == 1]
    conflicts: list[Quarantined] = [
        {"key": f.key, "reason": CONFLICTING_LABELS} for f in files if len(labels[f.sha256]) > 1
    ]
    return clean, conflicts


def _assemble(
    ledger: SplitLedger,
    definition: ClassDefinition,
    images: Sequence[HashedImage],
    dedup: Deduplication,
    split: SplitConfig,
) -> tuple[SplitLedger, tuple[SplitPlan, list[DatasetItem]]]:
    """Give the extended ledger, the plan and the items, after checking the split's invariants."""
    plan = plan_splits(ledger, dedup, images, split)
    set_aside = {q["key"] for q in plan.quarantined}
    labels = kept_labels(definition, plan)
    items: list[DatasetItem] = [
        {
            "key": f.key,
            "sha256": f.sha256,
            "label": f.label,
            "group": f.group,
            "split": plan.splits[f.group],
            "path": f.path,
        }
        for name in labels
        for f in definition.classes[name]
        if f.key not in set_aside and f.group in plan.splits
    ]
    items.sort(key=lambda i: i["key"])
    check_split_invariants(items, labels)
    return plan.ledger, (plan, items)


def kept_labels(definition: ClassDefinition, plan: SplitPlan) -> list[str]:
    """Give the classes the run keeps: defined, and not excluded by the split plan."""
    excluded = {e["name"] for e in plan.excluded}
    return [name for name in definition.labels if name not in excluded]


def _check(
    files: Sequence[SourceFile], cache: Path, *, max_pixels: int, workers: int
) -> tuple[list[SourceFile], list[Quarantined], dict[str, ImageCheck]]:
    """Give the usable files, the quarantined ones, and the verdict on each content."""
    verdicts = check_files(
        {f.sha256: cache / f.path for f in files},
        max_pixels=max_pixels,
        cache_file=cache / CHECKS,
        workers=workers,
    )
    usable = [f for f in files if verdicts[f.sha256].usable]
    bad: list[Quarantined] = [
        {"key": f.key, "reason": str(verdicts[f.sha256].reason)}
        for f in files
        if not verdicts[f.sha256].usable
    ]
    return usable, bad, verdicts


def _near_copies(
    ctx: SkillContext, definition: ClassDefinition, verdicts: Mapping[str, ImageCheck]
) -> tuple[ClassDefinition, list[HashedImage], Deduplication, list[Quarantined]]:
    """Give the definition and images without label conflicts, their copies, and the conflicts.

    Near copies filed under different classes are set aside (both of them, each naming the
    other); chains of near copies longer than ``split.max_duplicate_component`` are split, with a
    warning. Mirrored copies count as copies when training flips images left-right.
    """
    split = ctx.config.split
    flips = ctx.config.augment.horizontal_flip

    def hashed(files: Iterable[SourceFile]) -> list[HashedImage]:
        return [
            HashedImage(
                f.key,
                f.sha256,
                int(verdicts[f.sha256].phash or 0),
                f.group,
                f.label,
                verdicts[f.sha256].flipped if flips else None,
            )
            for f in files
        ]

    everything = [f for name in definition.labels for f in definition.classes[name]]
    dedup = deduplicate(
        hashed(everything), split.near_duplicate_distance, cap=split.max_duplicate_component
    )
    other: dict[str, str] = {}
    for a, b in dedup.conflicts:
        other.setdefault(a, b)
        other.setdefault(b, a)
    label = {f.key: f.label for f in everything}
    conflicts: list[Quarantined] = [
        {"key": key, "reason": f"{LABEL_CONFLICT}: a near copy of {peer} (class {label[peer]})"}
        for key, peer in sorted(other.items())
    ]
    if other:
        definition = replace(
            definition,
            classes={
                name: tuple(f for f in files if f.key not in other)
                for name, files in definition.classes.items()
            },
        )
        everything = [f for f in everything if f.key not in other]
        dedup = deduplicate(
            hashed(everything), split.near_duplicate_distance, cap=split.max_duplicate_component
        )
    for component in dedup.largest:
        if component.capped:
            ctx.say(
                f"data: WARNING a chain of {component.size} near copies around "
                f"{component.group} was split (over split.max_duplicate_component "
                f"{split.max_duplicate_component})"
            )
    return definition, hashed(everything), dedup, conflicts


def prepare(ctx: SkillContext, *, workers: int = 8) -> PreparedData:
    """Give the data stage's records after writing them to the run folder and the store."""
    config = ctx.config
    run = ctx.current_run()
    run_dir = ctx.run_dir()
    cache = ctx.workspace.raw_cache
    store = ctx.data_store()
    required = required_classes(ctx)

    ctx.say(f"data: pulling {store.uri}")

    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress.on("data: fetched", total, ctx.say)
        bar.advance(done - bar.done)

    pulled = pull(store, cache, workers=workers, on_progress=progress)
    ctx.say(
        f"data: {len(pulled.objects)} objects ({len(pulled.fetched)} fetched, "
        f"{pulled.reused} already cached, {len(pulled.removed)} gone from the store)"
    )
    quarantined: list[Quarantined] = list(pulled.quarantined)
    for refused in pulled.refused:
        ctx.say(f"data: WARNING {refused.key!r}: {UNSAFE_KEY}, {refused.problem} (not pulled)")
    files, unplaced = _layout_files(ctx, pulled)
    quarantined += unplaced

    usable, bad, verdicts = _check(files, cache, max_pixels=config.data.max_pixels, workers=workers)
    quarantined += bad
    usable, conflicts = _conflicting_labels(usable)
    quarantined += conflicts

    definition = define_classes(
        usable,
        config.data,
        required=required,
        class_file=config.data.class_file or "data.class_file",
    )
    definition, images, dedup, conflicts = _near_copies(ctx, definition, verdicts)
    quarantined += conflicts
    artifacts = ctx.artifacts()

    def rebuild() -> SplitLedger:
        rebuilt = rebuild_ledger(artifacts, ctx.name)
        if rebuilt.batches:
            ctx.say(
                f"data: WARNING no split ledger in the store; rebuilt it from {rebuilt.batches} "
                f"stored run(s) ({len(rebuilt.images)} images) before assigning anything new"
            )
        return rebuilt

    ledger, (plan, items) = update_ledger(
        artifacts,
        ledger_key(ctx.name),
        lambda current: _assemble(current, definition, images, dedup, config.split),
        rebuild=rebuild,
    )
    quarantined += plan.quarantined
    for leak in plan.quarantined:
        ctx.say(f"data: WARNING {leak['key']}: {leak['reason']} (set aside)")
    for left_out in plan.excluded:
        ctx.say(f"data: WARNING class {left_out['name']} excluded: {left_out['reason']}")
    labels = kept_labels(definition, plan)
    definition = replace(
        definition,
        classes={name: definition.classes[name] for name in labels},
        excluded=(*definition.excluded, *plan.excluded),
    )

    dataset: DatasetRecord = {
        "labels": labels,
        "items": items,
        "fingerprint": fingerprint((i["sha256"], i["split"]) for i in items),
    }
    audit = build_audit(
        items,
        labels,
        excluded=definition.excluded,
        quarantined=quarantined,
        duplicate_groups=dedup.duplicate_groups,
        ledger_hash=ledger.ledger_hash(),
        largest=[{"group": c.group, "size": c.size, "capped": c.capped} for c in dedup.largest],
    )
    prepared = PreparedData(dataset, definition.record(), audit)
    records = {DEFINITION: prepared.definition, DATASET: prepared.dataset, AUDIT: prepared.audit}
    for name, record in records.items():
        write_record(run_dir / name, record)
    for name in records:
        artifacts.upload(run_dir / name, run_key(ctx.name, run.skill_version, name))
    return prepared


def prepare_dataset(ctx: SkillContext, *, workers: int = 8) -> DatasetRecord:
    """Give the dataset index after pulling, checking, splitting and auditing the skill's data."""
    return prepare(ctx, workers=workers).dataset


def dataset_path(run_dir: Path) -> Path:
    """Give where ``dataset.json`` sits in a run folder."""
    return run_dir / DATASET


def summary(prepared: PreparedData) -> list[str]:
    """Give the lines that tell a user what the data stage did."""
    audit = prepared.audit
    lines = [f"images: {audit['images']} in {len(audit['classes'])} classes"]
    splits = Counter(item["split"] for item in prepared.dataset["items"])
    lines.append(
        f"split: train {splits['train']}, val {splits['val']}, test {splits['test']}"
        f" (imbalance ratio {audit['imbalance_ratio']:g})"
    )
    for excluded in audit["excluded"]:
        lines.append(
            f"excluded class {excluded['name']}: {excluded['count']} images, {excluded['reason']}"
        )
    reasons = Counter(q["reason"] for q in audit["quarantined"])
    for reason, count in sorted(reasons.items()):
        lines.append(f"quarantined ({reason}): {count}")
    lines.append(f"duplicate groups merged: {len(audit['duplicate_groups'])}")
    largest = audit.get("largest_duplicates", [])
    if largest:
        lines.append(
            "largest sets of copies: "
            + ", ".join(
                f"{c['group']} ({c['size']}{', capped' if c['capped'] else ''})" for c in largest
            )
        )
    return lines


def local_dataset(ctx: SkillContext, *, workers: int = 8) -> tuple[DatasetRecord, Path]:
    """Give the run's dataset index and the folder its paths are relative to, with every file here.

    A stage on another agent than the data stage (training on a GPU machine) pulls what it
    lacks; the pull is incremental, so on the same machine this only checks.
    """
    dataset: DatasetRecord = ctx.record(DATASET)
    verify_membership(ctx, dataset)
    root = ctx.workspace.raw_cache
    if any(not (root / item["path"]).is_file() for item in dataset["items"]):
        ctx.say(f"data: pulling {ctx.config.data.source} for this agent")
        pull(ctx.data_store(), root, workers=workers)
    missing = [item["key"] for item in dataset["items"] if not (root / item["path"]).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise UserError(
            f"{ctx.config.data.source}: {len(missing)} image(s) of this run's data set are gone "
            f"from the store: {shown}; rerun the data stage"
        )
    return dataset, root


def verify_membership(ctx: SkillContext, dataset: DatasetRecord) -> str:
    """Give the data set's membership fingerprint after checking it against the split ledger.

    Train and evaluate call this before using a split: an image listed in another split than
    the ledger's, or one the ledger does not know, stops the stage (exit 2) naming it.
    """
    where = str(dataset_path(ctx.run_dir()))
    store = ctx.artifacts()
    ledger, etag = read_ledger(store, ledger_key(ctx.name))
    if etag is None:
        raise UserError(
            f"{store.uri}/{ledger_key(ctx.name)}: no split ledger to check {where} against; "
            "rerun the data stage"
        )
    found = check_membership(dataset["items"], ledger, where)
    recorded = dataset.get("fingerprint")
    if recorded is not None and recorded != found:
        raise UserError(
            f"{where}: the fingerprint of the split membership does not match its items "
            "(the file was changed after the data stage); rerun the data stage"
        )
    return found
