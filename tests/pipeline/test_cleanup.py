"""The cleanup stage deletes the run's data and keeps the content-addressed caches unless asked."""

from __future__ import annotations

import io
import json
from pathlib import Path

from skillmaker.context import CACHE_ENV, RunPointer, load_skill
from skillmaker.pipeline.cleanup import cleanup
from skillmaker.scaffold import new_skill

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _files(tmp_path: Path, cache: Path | None) -> tuple[Path, Path, Path]:
    config = json.loads((EXAMPLES / "digits.json").read_text())
    config["deploy"]["artifacts"] = (tmp_path / "artifacts").as_uri()
    (tmp_path / "digits.json").write_text(json.dumps(config))
    repo = new_skill(tmp_path / "digits.json", tmp_path / "skill")
    env = {CACHE_ENV: str(cache)} if cache else {}
    ctx = load_skill(repo, env=env, out=io.StringIO())
    ctx.set_current_run(RunPointer(1, "a" * 40))
    state = ctx.run_dir() / "train-state" / "checkpoint.keras"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"x" * 1000)
    record = ctx.run_dir() / "metrics.json"
    record.write_text("{}")
    pulled = ctx.workspace.raw_cache / "objects" / "ab" / "abcdef"
    pulled.parent.mkdir(parents=True)
    pulled.write_bytes(b"image")
    return state, record, pulled


def test_the_run_data_goes_and_the_caches_stay(tmp_path: Path) -> None:
    agent_cache = tmp_path / "agent-cache"
    state, record, pulled = _files(tmp_path, agent_cache)
    assert pulled.is_relative_to(agent_cache), "SKILLMAKER_CACHE holds the pulled images"
    ctx = load_skill(tmp_path / "skill", env={CACHE_ENV: str(agent_cache)}, out=io.StringIO())
    assert cleanup(ctx) == 1000
    assert not state.exists() and record.is_file() and pulled.is_file()

    assert cleanup(ctx, caches=True) == len(b"image")
    assert not agent_cache.exists()
