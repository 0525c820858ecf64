"""Tests of the learned PositionEmbedding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention.layers import PositionEmbedding
from tests import layer_checks


def test_returns_table_rows_broadcast_over_batch():
    layer = PositionEmbedding(sequence_length=8)
    x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    assert out.shape == (3, 5, 4) and table.shape == (8, 4)
    for b in range(3):
        np.testing.assert_array_equal(out[b], table[:5])


@layer_checks.tensorflow_only("tf.function with unknown dimensions")
def test_start_index_int_and_tensor_in_tf_function():
    layer = PositionEmbedding(sequence_length=10)
    x = np.ones((2, 3, 4), "float32")
    layer(x)
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    np.testing.assert_array_equal(layer(x, start_index=6)[1], table[6:9])

    @tf.function(input_signature=[tf.TensorSpec((None, None, 4)), tf.TensorSpec((), tf.int32)])
    def step(x, start):
        return layer(x, start_index=start)

    for start in (0, 4, 7):
        np.testing.assert_array_equal(step(x, tf.constant(start))[0], table[start : start + 3])
    np.testing.assert_array_equal(step(x[:, :1], tf.constant(9))[0], table[9:10])
    layer_checks.runs_under_xla(lambda x, s: layer(x, start_index=s), x, tf.constant(2))


def test_passes_mask_and_trains():
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(inputs)
    positions = PositionEmbedding(4)(embedded)
    assert positions._keras_mask is not None
    summed = keras.layers.Add()([embedded, positions])
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(summed))
    tokens = np.array([[1, 2, 0, 0], [3, 3, 3, 0]])
    layer_checks.one_training_step_changes_weights(model, tokens, np.ones((2, 6), "float32"))
    table = keras.ops.convert_to_numpy(model.layers[2].position_embeddings)
    e = keras.ops.convert_to_numpy(model.layers[1](tokens))
    np.testing.assert_allclose(model(tokens)[0], (e[0, :2] + table[:2]).mean(0), atol=1e-6)


def test_eager_mask_passes_through():
    tokens = np.array([[1, 2, 0, 0]])
    out = PositionEmbedding(4)(keras.layers.Embedding(10, 6, mask_zero=True)(tokens))
    np.testing.assert_array_equal(out._keras_mask, tokens != 0)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        PositionEmbedding,
        dict(sequence_length=7, initializer="zeros"),
        np.ones((2, 5, 4), "float32"),
        tmp_path=tmp_path,
        expected_output_shape=(2, 5, 4),
        expected_num_trainable_weights=1,
    )


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sequence_length=0"):
        PositionEmbedding(0)
    with pytest.raises(ValueError, match="inputs"):
        PositionEmbedding(4)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(4)(np.zeros((2, 5, 3), "float32"))
    layer = PositionEmbedding(4)
    with pytest.raises(ValueError, match="start_index=3"):
        layer(np.zeros((1, 2, 3), "float32"), start_index=3)
