"""Starting model servers for a test: what the harness says when one never becomes ready."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from skillmaker.errors import UserError
from skillmaker.evaluation.launch import (
    ExistingServers,
    LocalProcessLauncher,
    ServerSpec,
    ServerStartError,
)
from skillmaker.serving.app import create_app
from skillmaker.serving.bundle import read_bundle
from tests.serving import bundles
from tests.serving.conftest import serve_in_thread


def test_a_server_that_exits_is_reported_with_the_end_of_its_log(
    two_bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    spec = ServerSpec.from_bundle("candidate", two_bundles[0])
    gone = ServerSpec("candidate", spec.stamp, tmp_path / "deleted-bundle")
    launcher = LocalProcessLauncher(log_dir=tmp_path / "logs", startup_timeout=60)
    with pytest.raises(ServerStartError) as caught, launcher.start([gone]):
        pass
    message = str(caught.value)
    assert "model server 'candidate' exited with code 2 before it was ready" in message
    assert f"{tmp_path / 'deleted-bundle'}: not a model bundle folder" in message


def test_a_server_whose_model_fails_to_load_is_reported_with_the_reason(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(inputs))
    folder = bundles.save_bundle(
        tmp_path / "b", keras.Model(inputs, outputs), bundles.DIGIT_LABELS, "digits", 1, "c"
    )
    with serve_in_thread(create_app(read_bundle(folder))) as url:
        spec = ServerSpec.from_bundle("candidate", folder)
        with (
            pytest.raises(ServerStartError) as caught,
            ExistingServers({"candidate": url}).start([spec]),
        ):
            pass
    assert "model server 'candidate' could not load its model" in str(caught.value)
    assert "gives 3 outputs but" in str(caught.value)


def test_existing_servers_need_a_url_for_every_spec(two_bundles: tuple[Path, Path]) -> None:
    spec = ServerSpec.from_bundle("baseline", two_bundles[1])
    with (
        pytest.raises(UserError, match="no server URL given for baseline"),
        ExistingServers({}).start([spec]),
    ):
        pass
