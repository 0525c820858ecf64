"""Every variant builds, trains a step, and exposes a normalised attention map."""

import dataclasses

import keras
import numpy as np
import pytest

from apps.image_classification import evaluation
from apps.image_classification import model as model_lib

# 24x24 inputs keep the tests fast: stages at 12x12, 6x6, 3x3; ViT patches 4x4.
_SMALL = dict(input_shape=(24, 24, 1), widths=(4, 8, 8), vit_dim=16, vit_layers=2, vit_heads=2,
              vit_mlp_dim=16, reduction=2, learning_rate=1e-2)
_MAP_SIZES = {"plain": (3, 3), "se": (3, 3), "cbam": (6, 6), "nonlocal": (6, 6),
              "residual_attention": (6, 6), "vit": (4, 4)}


@pytest.mark.parametrize("variant", model_lib.VARIANTS)
def test_variant_builds_steps_and_maps(variant):
    classifier = model_lib.build_model(variant=variant, **_SMALL)
    x = np.random.default_rng(0).random((4, 24, 24, 1), dtype=np.float32)
    y = np.arange(4)
    model_lib.compile_model(classifier.model, classifier.config, 10, jit_compile=False)
    classifier.model.run_eagerly = True  # no graph to trace: fast for a single step
    before = [w.numpy().copy() for w in classifier.model.trainable_weights]
    loss = classifier.model.train_on_batch(x, y)
    assert np.isfinite(loss).all()
    after = [w.numpy() for w in classifier.model.trainable_weights]
    assert sum(not np.allclose(a, b) for a, b in zip(before, after, strict=True)) > len(after) // 2
    # The explainer and the analysis model share the trained weights.
    logits, attention = classifier.explainer(x)
    outputs = classifier.analysis(x)
    assert tuple(logits.shape) == (4, 10)
    assert tuple(attention.shape) == (4, *_MAP_SIZES[variant])
    assert classifier.primary_map in outputs
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(outputs[classifier.primary_map], attention, atol=1e-6)
    for name, value in outputs.items():
        if name != "logits":
            value = keras.ops.convert_to_numpy(value)
            assert np.all(value >= 0), name
            np.testing.assert_allclose(value.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_cbam_map_is_the_spatial_attention_of_the_chosen_stage():
    classifier = model_lib.build_model(variant="cbam", map_stage=0, **_SMALL)
    x = np.random.default_rng(1).random((2, 24, 24, 1), dtype=np.float32)
    cbam = classifier.model.get_layer("stage0_block0_cbam")
    probe = keras.Model(classifier.model.input, cbam.input)
    features = probe(x)
    _, spatial = cbam(features, return_attention_scores=True)
    spatial = keras.ops.convert_to_numpy(spatial)[..., 0]
    expected = spatial / spatial.sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(classifier.explainer(x)[1], expected, rtol=1e-4, atol=1e-7)


def _numpy_rollout(scores):
    rollout = None
    for weights in scores:
        a = weights.mean(axis=1)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])[None]
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else np.einsum("bij,bjk->bik", a, rollout)
    return rollout


def test_attention_rollout_matches_numpy_reference():
    rng = np.random.default_rng(2)
    scores = []
    for _ in range(3):
        raw = rng.random((2, 4, 5, 5))
        scores.append(raw / raw.sum(axis=-1, keepdims=True))
    got = keras.ops.convert_to_numpy(
        model_lib.attention_rollout([keras.ops.convert_to_tensor(s, "float32") for s in scores])
    )
    np.testing.assert_allclose(got, _numpy_rollout(scores), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)


def test_bad_model_config_is_reported():
    with pytest.raises(ValueError, match="variant"):
        model_lib.ModelConfig(variant="resnet50")
    with pytest.raises(ValueError, match="patch_size"):
        model_lib.ModelConfig(variant="vit", input_shape=(60, 60, 1), patch_size=7)
    with pytest.raises(ValueError, match="map_stage"):
        model_lib.ModelConfig(variant="residual_attention", map_stage=2)
    with pytest.raises(ValueError, match="learning_rate"):
        model_lib.ModelConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="vit_heads"):
        model_lib.ModelConfig(vit_heads=0)
    model_lib.ModelConfig(variant="vit", patch_size=8)  # checked once the image size is known
    with pytest.raises(dataclasses.FrozenInstanceError):
        model_lib.ModelConfig().variant = "se"


def test_vit_patch_size_defaults_to_one_dividing_the_image():
    classifier = model_lib.build_model(variant="vit", **{**_SMALL, "input_shape": (20, 20, 1)})
    assert classifier.config.patch_size == 4
    assert tuple(classifier.explainer.outputs[1].shape) == (None, 5, 5)


def test_mass_in_box_counts_cells_by_overlap():
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = 1.0  # all mass in cell (1, 1) = [0.25, 0.5)^2
    maps[1] = 1.0  # uniform
    maps[2, 0, 0] = maps[2, 3, 3] = 1.0
    boxes = np.array([[0.25, 0.25, 0.5, 0.5], [0.0, 0.0, 0.5, 0.25], [0.0, 0.0, 0.125, 0.25]])
    got = evaluation.mass_in_box(maps, boxes)
    np.testing.assert_allclose(got, [1.0, 0.125, 0.25])
    np.testing.assert_allclose(evaluation.uniform_in_box(boxes), [0.0625, 0.125, 0.03125])
    # A uniform map scores exactly the uniform share.
    np.testing.assert_allclose(got[1], evaluation.uniform_in_box(boxes)[1])


def test_draw_box_outlines_in_red():
    image = np.zeros((10, 10, 1), np.float32)
    out = evaluation.draw_box(image, [0.2, 0.3, 0.6, 0.8])
    assert out.shape == (10, 10, 3)
    np.testing.assert_array_equal(out[2, 3], [1, 0, 0])
    np.testing.assert_array_equal(out[5, 7], [1, 0, 0])
    np.testing.assert_array_equal(out[4, 5], [0, 0, 0])


def test_default_patch_size_divides_the_image():
    assert model_lib.default_patch_size(60, 60) == 6
    assert model_lib.default_patch_size(32, 32) == 4
    assert model_lib.default_patch_size(28, 21) == 7
    assert model_lib.default_patch_size(28, 28) == 7  # 16 garment patches, not 49
