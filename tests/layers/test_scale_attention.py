"""Tests of ScaleAttention against Chen et al. (2016), Sec. 3.2, written as a NumPy oracle."""

import keras
import numpy as np
import pytest

from keras_attention.layers import ScaleAttention
from tests import layer_checks
from tests.layers import cnn_reference as ref

_SHAPE = (2, 5, 6, 4)


def _maps(scales=3, shape=_SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for _ in range(scales)]


def _built(scales=3, hidden_units=6, **kwargs):
    layer = ScaleAttention(hidden_units, **kwargs)
    layer.build([(None, None, None, _SHAPE[-1])] * scales)
    ref.randomise(layer)
    return layer


def oracle(layer, maps, valid=None):
    """h = relu(conv3x3([f_1; ...; f_S])), e = conv1x1(h), w = softmax_s(e) over the valid
    scales (zeros where none is), output = sum_s w_s f_s."""
    concatenated = np.concatenate(maps, axis=-1).astype("float64")
    hidden = np.maximum(ref.conv2d_same(concatenated, ref.numpy(layer.hidden.kernel),
                                        ref.numpy(layer.hidden.bias)), 0.0)
    scores = hidden @ ref.numpy(layer.score.kernel)[0, 0] + ref.numpy(layer.score.bias)
    valid = np.ones(scores.shape, bool) if valid is None else valid
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True)) * valid
    total = exp.sum(axis=-1, keepdims=True)
    weights = np.where(total > 0, exp / np.where(total > 0, total, 1.0), 0.0)
    outputs = np.einsum("bhws,bhwsc->bhwc", weights, np.stack(maps, axis=3))
    return outputs, weights


@pytest.mark.parametrize("scales, kernel_size", [(2, 3), (3, 3), (4, 1), (3, 5)])
def test_matches_the_numpy_oracle_and_weights_sum_to_one(scales, kernel_size):
    maps = _maps(scales)
    layer = _built(scales, kernel_size=kernel_size)
    y, w = layer(maps, return_attention_scores=True)
    assert y.shape == _SHAPE and w.shape == (*_SHAPE[:3], scales)
    expected_y, expected_w = oracle(layer, maps)
    np.testing.assert_allclose(ref.numpy(w), expected_w, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-4)
    np.testing.assert_allclose(ref.numpy(w).sum(axis=-1), 1.0, atol=1e-5)
    # The weights differ from place to place (a per-position softmax, not one per image).
    assert np.ptp(ref.numpy(w)[..., 0]) > 0.05
    # The scales stacked on axis 3 are the same input.
    stacked = layer(np.stack(maps, axis=3), return_attention_scores=True)
    layer_checks.outputs_close(stacked, (y, w))


def test_identical_maps_come_back_unchanged():
    same = _maps(1)[0]
    layer = _built(3)
    np.testing.assert_allclose(ref.numpy(layer([same] * 3)), same, atol=1e-5)


def test_layer_checks(tmp_path):
    # Every shared check (config, .keras file, a training step, float16) on the stacked form.
    maps = np.stack(_maps(3), axis=3)
    layer_checks.run_layer_test(
        ScaleAttention,
        dict(hidden_units=8, kernel_size=3),
        maps,
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=_SHAPE,
        expected_num_trainable_weights=4,
        mixed_precision_inputs=maps * 100.0,
    )


def test_a_list_of_maps_saves_trains_and_runs_in_float16(tmp_path):
    maps = _maps(3)
    inputs = [keras.Input(_SHAPE[1:]) for _ in maps]
    layer = ScaleAttention(8, name="scales")
    merged, weights = layer(inputs, return_attention_scores=True)
    model = keras.Model(inputs, [merged, weights])
    assert model.output_shape == [(None, 5, 6, 4), (None, 5, 6, 3)]
    ref.randomise(layer)
    restored = layer_checks.keras_file_round_trip(model, maps, tmp_path)
    assert isinstance(restored.get_layer("scales"), ScaleAttention)
    layer_checks.config_round_trip(layer)
    layer_checks.one_training_step_changes_weights(
        keras.Model(inputs, merged), maps, np.zeros(_SHAPE, "float32"))
    _, out = layer_checks.runs_in_mixed_float16(lambda: ScaleAttention(8), [m * 50 for m in maps])
    assert keras.backend.standardize_dtype(out.dtype) == "float16"


def test_gradients_reach_every_scale_and_every_weight():
    # A trainable 1x1 convolution per scale before the merge: one step moves all of them.
    maps = _maps(3)
    inputs = [keras.Input(_SHAPE[1:]) for _ in maps]
    branches = [keras.layers.Conv2D(4, 1, name=f"branch{i}")(x) for i, x in enumerate(inputs)]
    model = keras.Model(inputs, ScaleAttention(8)(branches))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [ref.numpy(w).copy() for w in model.trainable_weights]
    target = np.random.default_rng(5).normal(size=_SHAPE).astype("float32")
    model.fit(maps, target, epochs=1, batch_size=2, verbose=0)
    moved = [not np.allclose(a, ref.numpy(w))
             for a, w in zip(before, model.trainable_weights, strict=True)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved, strict=True)
                        if not m]


def test_a_spatial_mask_zeroes_masked_positions_and_is_passed_on():
    maps = _maps(3)
    layer = _built(3)
    mask = np.ones(_SHAPE[:3], bool)
    mask[0, :2] = False
    y, w = layer(maps, mask=mask, return_attention_scores=True)
    expected_y, expected_w = oracle(layer, maps, np.repeat(mask[..., None], 3, -1))
    np.testing.assert_allclose(ref.numpy(w), expected_w, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-4)
    assert np.all(ref.numpy(y)[0, :2] == 0) and np.all(ref.numpy(w)[0, :2] == 0)
    np.testing.assert_allclose(ref.numpy(w)[0, 2:].sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(ref.numpy(layer.compute_mask(maps, mask)), mask)


def test_per_scale_masks_leave_a_scale_out_where_it_is_invalid():
    maps = _maps(3)
    layer = _built(3)
    coarse = np.ones(_SHAPE[:3], bool)
    coarse[:, :, :3] = False  # scale 2 is invalid on the left half
    valid = np.stack([np.ones_like(coarse), np.ones_like(coarse), coarse], axis=-1)
    for mask in ([None, None, coarse], valid):
        y, w = layer(maps, mask=mask, return_attention_scores=True)
        expected_y, expected_w = oracle(layer, maps, valid)
        np.testing.assert_allclose(ref.numpy(w), expected_w, atol=1e-5)
        np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-4)
        assert np.all(ref.numpy(w)[:, :, :3, 2] == 0)
        np.testing.assert_allclose(ref.numpy(w).sum(-1), 1.0, atol=1e-5)


def test_keras_masks_of_the_inputs_are_used():
    # `Masking` gives each map a (batch, H, W) mask; Keras hands the list to the layer.
    maps = _maps(2)
    maps[1][1, 3:] = 0.0  # scale 1 of example 1 is padding below row 3
    inputs = [keras.Input(_SHAPE[1:]) for _ in maps]
    layer = ScaleAttention(6)
    merged, weights = layer([keras.layers.Masking(0.0)(x) for x in inputs],
                            return_attention_scores=True)
    model = keras.Model(inputs, [merged, weights])
    ref.randomise(layer)
    _, w = model(maps)
    w = ref.numpy(w)
    # The masked scale gets no weight at all; the other takes it all (to float rounding:
    # the softmax normalises by a sum that is 1 only up to one ulp).
    assert np.all(w[1, 3:, :, 1] == 0)
    np.testing.assert_allclose(w[1, 3:, :, 0], 1.0, rtol=0, atol=1e-6)
    assert np.all(w[0, :, :, 1] > 0)


def test_dynamic_spatial_size_and_xla():
    inputs = [keras.Input((None, None, 4)) for _ in range(2)]
    layer = ScaleAttention(4)
    model = keras.Model(inputs, layer(inputs))
    assert model([m[:1, :3] for m in _maps(2)]).shape == (1, 3, 6, 4)
    layer_checks.runs_under_xla(
        lambda a, b, c: layer([a, b], return_attention_scores=True)[0] + c, *_maps(3)[:2],
        np.zeros(_SHAPE, "float32"))


@pytest.mark.parametrize("inputs, message", [
    ([np.zeros((2, 4, 4, 3), "float32")], "at least 2 scales; received 1"),
    (np.zeros((2, 4, 4, 3), "float32"), r"a list of S >= 2 feature maps.*\(2, 4, 4, 3\)"),
    (np.zeros((2, 4, 4, 1, 3), "float32"), "at least 2 scales; received 1"),
    ([np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 4, 5, 3), "float32")],
     r"same shape \(resize them to one grid first\).*inputs\[1\]\.shape=\(2, 4, 5, 3\)"),
    ([np.zeros((2, 4, 4, 3), "float32"), np.zeros((2, 4, 4, 2), "float32")],
     r"inputs\[1\]\.shape=\(2, 4, 4, 2\)"),
    ([np.zeros((2, 4, 3), "float32")] * 2, r"inputs\[0\]` must have rank 4"),
])
def test_bad_inputs_are_named(inputs, message):
    with pytest.raises(ValueError, match=message):
        ScaleAttention(4)(inputs)


def test_bad_arguments_and_masks_are_named():
    with pytest.raises(ValueError, match="hidden_units=0"):
        ScaleAttention(0)
    with pytest.raises(ValueError, match="kernel_size=2"):
        ScaleAttention(4, kernel_size=2)
    with pytest.raises(TypeError, match="positional argument"):
        ScaleAttention(4, 3)
    layer = _built(3)
    with pytest.raises(ValueError, match="one entry per scale \\(3\\)"):
        layer(_maps(3), mask=[np.ones(_SHAPE[:3], bool)] * 2)
    with pytest.raises(ValueError, match=r"mask.shape=\(2, 5\)"):
        layer(_maps(3), mask=np.ones(_SHAPE[:2], bool))
