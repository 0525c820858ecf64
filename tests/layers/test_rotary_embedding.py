"""Tests of `RotaryEmbedding`: NumPy oracle, relative positions, axes and Keras plumbing
(issue 19)."""

import keras
import numpy as np
import pytest

from keras_attention.layers import RotaryEmbedding
from tests import layer_checks


def _x(shape=(2, 5, 3, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x).astype("float64")


def _oracle(x, start=0, wavelength=10000.0, scaling=1.0):
    """Half-split RoPE on `(batch, T, ..., D)`, written from the formula in the docstring."""
    x = x.astype("float64")
    t, d = x.shape[1], x.shape[-1]
    half = d // 2
    theta = wavelength ** (-2.0 * np.arange(half) / d)
    angle = ((start + np.arange(t)) / scaling)[:, None] * theta[None]  # (T, D/2)
    angle = angle.reshape((1, t) + (1,) * (x.ndim - 3) + (half,))
    a, b = x[..., :half], x[..., half:]
    return np.concatenate(
        [a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)], -1
    )


@pytest.mark.parametrize(
    "shape, start, kwargs",
    [((2, 5, 3, 8), 0, {}), ((2, 4, 6), 3, {"max_wavelength": 100}),
     ((1, 3, 2, 4), 11, {"scaling_factor": 4.0})],
)
def test_matches_numpy_oracle(shape, start, kwargs):
    x = _x(shape)
    out = RotaryEmbedding(**kwargs)(x, start_index=start)
    expected = _oracle(x, start, kwargs.get("max_wavelength", 10000.0),
                       kwargs.get("scaling_factor", 1.0))
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)


def test_dot_products_depend_on_relative_offset_only():
    q, k = _x(seed=1), _x(seed=2)
    rope = RotaryEmbedding()

    def scores(start):
        rq, rk = _np(rope(q, start_index=start)), _np(rope(k, start_index=start))
        return np.einsum("bihd,bjhd->bhij", rq, rk)

    np.testing.assert_allclose(scores(7), scores(0), atol=1e-4)
    # ... while the rotation itself depends on the absolute position.
    assert not np.allclose(_np(rope(q, start_index=7)), _np(rope(q)), atol=1e-3)
    # Norms are kept (a rotation).
    np.testing.assert_allclose(
        np.linalg.norm(_np(rope(q, start_index=3)), axis=-1), np.linalg.norm(q, axis=-1),
        rtol=1e-5,
    )


def test_step_by_step_with_tensor_index_equals_whole_sequence():
    x = _x()
    rope = RotaryEmbedding()
    whole = _np(rope(x))
    steps = [_np(rope(x[:, t : t + 1], start_index=keras.ops.convert_to_tensor(t)))
             for t in range(x.shape[1])]
    np.testing.assert_allclose(np.concatenate(steps, 1), whole, atol=1e-6)


def test_sequence_and_feature_axes():
    x = _x()  # (B, T, H, D)
    expected = _np(RotaryEmbedding()(x, start_index=2))
    heads_first = np.transpose(x, (0, 2, 1, 3))  # (B, H, T, D)
    out = RotaryEmbedding(sequence_axis=2)(heads_first, start_index=2)
    np.testing.assert_allclose(np.transpose(_np(out), (0, 2, 1, 3)), expected, atol=1e-6)
    features_first = np.transpose(x, (0, 3, 2, 1))  # (B, D, H, T)
    out = RotaryEmbedding(sequence_axis=-1, feature_axis=1)(features_first, start_index=2)
    np.testing.assert_allclose(np.transpose(_np(out), (0, 3, 2, 1)), expected, atol=1e-6)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        RotaryEmbedding,
        dict(max_wavelength=500.0, scaling_factor=2.0, sequence_axis=1, feature_axis=-1),
        _x(),
        tmp_path=tmp_path,
        expected_output_shape=(2, 5, 3, 8),
        expected_num_trainable_weights=0,
        run_training_check=False,  # no weights
    )


def test_keras_mask_passes_through():
    tokens = np.array([[1, 2, 0], [3, 0, 0]])
    h = keras.layers.Embedding(5, 4, mask_zero=True)(tokens)
    out = RotaryEmbedding()(h)
    np.testing.assert_array_equal(_np(out._keras_mask), tokens != 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"max_wavelength": 0}, "max_wavelength=0"), ({"scaling_factor": -1}, "scaling_factor=-1"),
     ({"sequence_axis": 1.5}, "sequence_axis=1.5"), ({"feature_axis": None}, "feature_axis=None")],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RotaryEmbedding(**kwargs)
    with pytest.raises(TypeError, match="positional argument"):
        RotaryEmbedding(10000, 1.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding()(_x((2, 5, 7)))
    with pytest.raises(ValueError, match="sequence_axis=3"):
        RotaryEmbedding(sequence_axis=3)(_x((2, 5, 8)))
    with pytest.raises(ValueError, match="different axes"):
        RotaryEmbedding(sequence_axis=2)(_x((2, 5, 8)))
