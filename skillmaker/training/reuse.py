"""No retraining when the model cannot have changed.

A model's fingerprint hashes everything that decides its weights: the model-relevant config
(data, image, split, model, augment, train and the chosen profile), the data manifest and split
ledger hashes, the training code (the source of the training and tensor-feed modules, and the
TensorFlow and Keras versions). A run whose fingerprint equals the deployed model's takes that
model instead of training a new one, so an upgrade that changed only the README or the
Jenkinsfile costs minutes, not a training.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from skillmaker.adapters.store import ObjectNotFound
from skillmaker.config import SkillConfig
from skillmaker.context import SkillContext
from skillmaker.domain.layout import run_key
from skillmaker.domain.records import TrainRecord
from skillmaker.records import (
    HISTORY,
    LABELS,
    MODEL,
    NORMALISATION,
    STAMP,
    TRAIN,
    read_record,
    write_record,
)
from skillmaker.registry import deployed_version
from skillmaker.serving.bundle import write_stamp

MODEL_SECTIONS = ("data", "image", "split", "model", "augment", "train")
"""The config sections that decide a model's weights (profiles: only the one in use)."""

_PACKAGE = Path(__file__).resolve().parents[1]
TRAINING_CODE = ("training", "data/cache", "data/feed.py", "data/images.py")
"""The skillmaker sources that decide a model's weights, relative to the package."""


def training_code_hash() -> str:
    """Give the SHA-256 of the training code and the versions of the libraries it runs on."""
    digest = hashlib.sha256()
    for entry in TRAINING_CODE:
        path = _PACKAGE / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    for library in ("tensorflow", "keras", "numpy"):
        try:
            digest.update(f"{library}=={metadata.version(library)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} missing\0".encode())
    return digest.hexdigest()


def model_fingerprint(
    config: SkillConfig, profile: str | None, *, manifest_hash: str, ledger_hash: str
) -> str:
    """Give the fingerprint of the model a run would train."""
    dumped = config.model_dump(mode="json")
    body = {
        "config": {section: dumped[section] for section in MODEL_SECTIONS},
        "profile": None if profile is None else dumped["profiles"].get(profile),
        "manifest_hash": manifest_hash,
        "ledger_hash": ledger_hash,
        "training_code": training_code_hash(),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def reuse_deployed_model(ctx: SkillContext, fingerprint: str) -> int | None:
    """Give the deployed version whose model this run takes (its files copied), or None.

    None when nothing is deployed, or the deployed model was trained from anything else.
    """
    store = ctx.artifacts()
    deployed = deployed_version(store, ctx.name)
    if deployed is None:
        return None
    version = deployed["skill_version"]
    run = ctx.current_run()
    run_dir = ctx.run_dir()
    scratch = run_dir / ".deployed-train.json"
    try:
        store.download(run_key(ctx.name, version, TRAIN), scratch)
        record: TrainRecord = read_record(scratch, kind=TrainRecord)
    except ObjectNotFound:
        return None
    finally:
        scratch.unlink(missing_ok=True)
    if record.get("model_fingerprint") != fingerprint:
        return None
    for name in (MODEL, LABELS, NORMALISATION, HISTORY):
        store.download(run_key(ctx.name, version, name), run_dir / name)
    record["reused_from"] = version

    write_record(run_dir / TRAIN, record)
    write_stamp(
        run_dir, skill=ctx.name, skill_version=run.skill_version, code_version=run.code_version
    )
    for name in (MODEL, LABELS, NORMALISATION, HISTORY, TRAIN, STAMP):
        store.upload(run_dir / name, run_key(ctx.name, run.skill_version, name))
    ctx.say(
        f"train: not retrained: the model fingerprint {fingerprint[:12]} equals deployed "
        f"v{version}'s (same model config, data and training code); its model is reused"
    )
    return version
