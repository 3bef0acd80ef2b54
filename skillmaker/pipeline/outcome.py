"""How a stage tells the runner it skipped itself (e.g. no Docker engine answers)."""

from __future__ import annotations

from pathlib import Path

SKIPPED_SUFFIX = ".skipped"


def skip_marker(run_dir: Path, stage: str) -> Path:
    """Give the file whose presence says that a stage skipped itself, holding the reason."""
    return run_dir / "logs" / f"{stage}{SKIPPED_SUFFIX}"


def mark_skipped(run_dir: Path, stage: str, reason: str) -> None:
    """Record that a stage skipped itself, and why."""
    marker = skip_marker(run_dir, stage)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(reason + "\n", encoding="utf-8")


def skipped_reason(run_dir: Path, stage: str) -> str | None:
    """Give why a stage skipped itself, or None when it did not."""
    marker = skip_marker(run_dir, stage)
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
