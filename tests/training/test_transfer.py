"""Transfer learning: a mobilenet_v3_small backbone from a weights file, frozen, then fine-tuned."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest

from skillmaker.records import read_record
from skillmaker.training.artifacts import load_model
from skillmaker.training.settings import resolve_settings
from skillmaker.training.state import StateStore
from skillmaker.training.train import train_model
from skillmaker.training.zoo import build_model, copy_backbone_weights
from tests.training.conftest import Digits, digits_config, load_digits_arrays

TOP_LAYERS = 12


@pytest.fixture(scope="module")
def digits32() -> Digits:
    """Give 600 digits at 32x32 in three channels (mobilenet's smallest input)."""
    return load_digits_arrays(32, 3, limit=600)


def _pretrained_backbone(digits: Digits, folder: Path) -> tuple[Path, list[list[np.ndarray]]]:
    """Give a weights file of a backbone trained briefly on the digits, and its weights by layer.

    Random weights give near-zero features, so a test of transfer needs a backbone that learnt
    something: this one trains for one epoch, its BatchNorm statistics move off their defaults.
    """
    keras.utils.set_random_seed(3)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=False
    )
    images = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(images))
    model = keras.Model(images, keras.layers.Dense(10)(x))
    model.compile(
        keras.optimizers.Adam(0.003),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # a dozen steps: cheaper than tracing the graph
    )
    pixels, labels = digits.train
    model.fit(pixels / 127.5 - 1.0, labels, batch_size=32, epochs=1, verbose=0)
    path = folder / "backbone.weights.h5"
    backbone.save_weights(path)
    return path, [layer.get_weights() for layer in backbone.layers if layer.weights]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_backbone_frozen_in_phase_one_and_top_layers_tuned_in_phase_two(
    digits32: Digits, tmp_path: Path
) -> None:
    weights_file, reference = _pretrained_backbone(digits32, tmp_path)
    moving_means = [w[2] for w in reference if len(w) == 4]
    assert any(m.any() for m in moving_means), "pretraining should move BatchNorm statistics"
    config = digits_config(
        image={"height": 32, "width": 32, "channels": 3},
        model={
            "network": "mobilenet_v3_small",
            "weights": weights_file.as_uri(),
            "fine_tune": digits_config().model.fine_tune.model_copy(
                update={"top_layers": TOP_LAYERS, "epochs": 2, "learning_rate_factor": 0.5}
            ),
        },
        augment={"rotation": None, "zoom": None},
        train={"epochs": 2, "patience": 5, "learning_rate": 0.003},
    )
    out = io.StringIO()
    run_dir = tmp_path / "run"
    result = train_model(
        config,
        profile=None,
        train_data=digits32.batches("train", 32),
        val_data=digits32.batches("val", 64),
        labels=digits32.labels,
        normalisation=digits32.normalisation(),
        class_counts=digits32.class_counts(),
        run_dir=run_dir,
        manifest_hash="manifest",
        ledger_hash="ledger",
        out=out,
    )
    history = read_record(run_dir / "history.json")
    assert [(e["epoch"], e["phase"]) for e in history["epochs"]] == [
        (1, "train"),
        (2, "train"),
        (3, "fine_tune"),
        (4, "fine_tune"),
    ]
    assert f"fine-tuning the top {TOP_LAYERS} layers of mobilenet_v3_small" in out.getvalue()

    settings = resolve_settings(config, None, gpus=0)
    model = build_model(config, settings, digits32.normalisation(), 10)
    weighted = [layer for layer in model.backbone if layer.weights]
    top = {id(layer) for layer in model.backbone[-TOP_LAYERS:]}
    frozen_throughout = [
        index
        for index, layer in enumerate(weighted)
        if isinstance(layer, keras.layers.BatchNormalization) or id(layer) not in top
    ]
    assert len(frozen_throughout) == len(weighted) - 4  # 2 squeeze-excite convs, project, conv_1

    def backbone_weights(source: str | Path) -> list[list[np.ndarray]]:
        if isinstance(source, Path):
            model.model.set_weights(load_model(source).get_weights())
        else:
            StateStore.of(run_dir).restore_variables(model.model, source, full=False)
        return [layer.get_weights() for layer in weighted]

    state = StateStore.of(run_dir).read()
    assert state.head_weights is not None and state.last_weights is not None
    # Phase one ended with the backbone exactly as loaded, BatchNorm statistics included.
    after_phase_one = backbone_weights(state.head_weights)
    assert all(_same(a, b) for a, b in zip(after_phase_one, reference, strict=True))
    # Phase two changed the kernels of the top layers and nothing else of the backbone.
    after_phase_two = backbone_weights(state.last_weights)
    for index, (now, before) in enumerate(zip(after_phase_two, reference, strict=True)):
        if index in frozen_throughout:
            assert _same(now, before), f"{weighted[index].name} changed"
        else:
            assert not np.array_equal(now[0], before[0]), f"{weighted[index].name} unchanged"
    # The kept model (whichever phase gave it) has the frozen layers as loaded too.
    kept = backbone_weights(run_dir / "model.keras")
    assert all(_same(kept[i], reference[i]) for i in frozen_throughout)

    # The model ends in logits: softmax (applied once, by serving) gives probabilities.
    logits = np.asarray(result.model.predict(digits32.test[0][:16], verbose=0))
    assert (logits < 0).any() or (logits > 1).any()
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_backbone_weights_load_from_an_earlier_skills_model(
    digits32: Digits, tmp_path: Path
) -> None:
    """An earlier skill's whole ``.keras`` model is a valid weights file: its backbone is used."""
    config = digits_config(
        image={"height": 32, "width": 32, "channels": 3},
        model={"network": "mobilenet_v3_small"},
    )
    settings = resolve_settings(config, None, gpus=0)
    keras.utils.set_random_seed(1)
    earlier = build_model(config, settings, digits32.normalisation(), 10)
    path = tmp_path / "model.keras"
    earlier.model.save(path)
    keras.utils.set_random_seed(2)
    fresh = build_model(config, settings, digits32.normalisation(), 10)
    before = [layer.get_weights() for layer in fresh.backbone if layer.weights]
    copy_backbone_weights(fresh.backbone, load_model(path).layers, "test")
    after = [layer.get_weights() for layer in fresh.backbone if layer.weights]
    expected = [layer.get_weights() for layer in earlier.backbone if layer.weights]
    assert all(_same(a, b) for a, b in zip(after, expected, strict=True))
    assert not all(_same(a, b) for a, b in zip(before, expected, strict=True))
