"""Tests of SinusoidalPositionEncoding against Vaswani et al. (2017), section 3.5."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention.layers import SinusoidalPositionEncoding
from tests import layer_checks


def _formula(positions, dim, max_wavelength=10000.0):
    pe = np.zeros((len(positions), dim))
    for p_i, pos in enumerate(positions):
        for i in range(0, dim, 2):
            angle = pos / max_wavelength ** (i / dim)
            pe[p_i, i] = np.sin(angle)
            if i + 1 < dim:
                pe[p_i, i + 1] = np.cos(angle)
    return pe


@pytest.mark.parametrize("dim, wavelength", [(8, 10000), (5, 100)])
def test_matches_formula(dim, wavelength):
    x = np.zeros((2, 6, dim), "float32")
    out = SinusoidalPositionEncoding(max_wavelength=wavelength)(x)
    assert out.shape == x.shape
    expected = _formula(range(6), dim, wavelength)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    np.testing.assert_allclose(out[1], expected, atol=1e-5)


@layer_checks.tensorflow_only("tf.function with unknown dimensions")
def test_start_index_int_and_tensor_in_tf_function():
    layer = SinusoidalPositionEncoding()
    full = keras.ops.convert_to_numpy(layer(np.zeros((2, 10, 4), "float32")))
    x = np.ones((2, 3, 4), "float32")
    np.testing.assert_allclose(layer(x, start_index=4), full[:, 4:7], atol=1e-6)

    @tf.function(input_signature=[tf.TensorSpec((None, None, 4)), tf.TensorSpec((), tf.int32)])
    def step(x, start):
        return layer(x, start_index=start)

    for start in (0, 5, 7):
        expected = full[:, start : start + 3]
        np.testing.assert_allclose(step(x, tf.constant(start)), expected, atol=1e-6)
    layer_checks.runs_under_xla(lambda x, s: layer(x, start_index=s), x, tf.constant(2))


def test_passes_mask_through():
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(inputs)
    encoded = SinusoidalPositionEncoding()(embedded)
    tokens = np.array([[1, 2, 0, 0]])
    assert encoded._keras_mask is not None
    eager = SinusoidalPositionEncoding()(keras.layers.Embedding(10, 6, mask_zero=True)(tokens))
    np.testing.assert_array_equal(eager._keras_mask, tokens != 0)
    summed = keras.layers.Add()([embedded, encoded])
    pooled = keras.layers.GlobalAveragePooling1D()(summed)
    model = keras.Model(inputs, pooled)
    e = keras.ops.convert_to_numpy(model.layers[1](tokens))
    expected = (e + _formula(range(4), 6))[:, :2].mean(1)
    np.testing.assert_allclose(model(tokens), expected, atol=1e-5)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        SinusoidalPositionEncoding,
        dict(max_wavelength=500),
        np.ones((2, 5, 4), "float32"),
        tmp_path=tmp_path,
        expected_output_shape=(2, 5, 4),
        expected_num_trainable_weights=0,
        run_training_check=False,  # no weights
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="max_wavelength=0"):
        SinusoidalPositionEncoding(max_wavelength=0)
    with pytest.raises(ValueError, match="inputs"):
        SinusoidalPositionEncoding()(np.zeros((2, 4), "float32"))
