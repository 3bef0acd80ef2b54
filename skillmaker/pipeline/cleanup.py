"""The cleanup stage: delete the run's local data and caches; the store keeps the artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path

from skillmaker.context import SkillContext

# Folders inside a run folder that hold data rather than records (the store has the artifacts).
_RUN_DATA = ("train-state", "model", "failures", "cache")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cleanup(ctx: SkillContext, *, keep_cache: bool = False) -> int:
    """Give the bytes freed after deleting the local caches and the current run's data folders."""
    targets: list[Path] = []
    if not keep_cache:
        targets.append(ctx.workspace.root / "cache")
    if ctx.workspace.current.is_file():
        run_dir = ctx.workspace.run_dir(ctx.current_run().skill_version)
        targets += [run_dir / name for name in _RUN_DATA]
        targets += list(run_dir.glob("*.keras"))
    freed = 0
    for path in targets:
        if not path.exists():
            continue
        freed += _size(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    ctx.say(f"cleanup: freed {freed / 1e6:.1f} MB of local data and caches")
    return freed
