"""The cleanup stage: delete the run's local data; the store keeps the artifacts.

The content-addressed caches (pulled images, tensors, bundles, wheels) stay, so the next pull
and build are incremental; ``caches=True`` deletes them too.
"""

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


def cleanup(ctx: SkillContext, *, caches: bool = False) -> int:
    """Give the bytes freed after deleting the current run's data (and the caches if asked)."""
    targets: list[Path] = []
    if caches:
        targets += [ctx.workspace.root / "cache", ctx.workspace.cache]
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
    what = "the run's local data and the caches" if caches else "the run's local data"
    ctx.say(f"cleanup: freed {freed / 1e6:.1f} MB of {what}")
    return freed
