"""Tests of SpatialAttention against Woo et al. (2018), Eq. 3."""


import keras
import numpy as np
import pytest

from keras_attention.layers import SpatialAttention
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "kernel_size, shape", [(7, (2, 8, 8, 8)), (3, (2, 6, 9, 5)), (1, (1, 4, 4, 3))]
)
def test_matches_paper_equation(kernel_size, shape):
    x = _x(shape)
    layer = SpatialAttention(kernel_size=kernel_size)
    layer.build(x.shape)
    ref.randomise(layer)
    assert layer.conv.kernel.shape == (kernel_size, kernel_size, 2, 1)
    y, m = layer(x, return_attention_scores=True)
    assert y.shape == shape and m.shape == (*shape[:3], 1)
    expected_y, expected_m = ref.spatial_attention(layer, x)
    np.testing.assert_allclose(ref.numpy(m), expected_m, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-5)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        SpatialAttention,
        dict(kernel_size=5),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 8, 8, 8),
        expected_num_trainable_weights=2,
        mixed_precision_inputs=_x() * 100.0,
    )


def test_functional_shapes():
    model = ref.functional_model(SpatialAttention(kernel_size=5), (8, 8, 8))
    assert model.output_shape == [(None, 8, 8, 8), (None, 8, 8, 1)]


def test_dynamic_spatial_size():
    inputs = keras.Input((None, None, 4))
    outputs, scores = SpatialAttention(kernel_size=3)(inputs, return_attention_scores=True)
    model = keras.Model(inputs, [outputs, scores])
    y, m = model(_x((1, 5, 7, 4)))
    assert y.shape == (1, 5, 7, 4) and m.shape == (1, 5, 7, 1)


def test_runs_under_xla():
    layer = SpatialAttention(kernel_size=3)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x())


@pytest.mark.parametrize("kernel_size", [0, 4, -3, 2.0, True])
def test_bad_kernel_size_is_named(kernel_size):
    with pytest.raises(ValueError, match=f"kernel_size={kernel_size!r}"):
        SpatialAttention(kernel_size=kernel_size)


def test_wrong_rank_is_named():
    with pytest.raises(ValueError, match="inputs.shape=\\(2, 8, 8\\)"):
        SpatialAttention()(np.zeros((2, 8, 8), "float32"))
