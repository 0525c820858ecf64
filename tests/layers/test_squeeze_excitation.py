"""Tests of SqueezeExcitation against Hu et al. (2018), Eqs. 2-4."""


import keras
import numpy as np
import pytest

from keras_attention.layers import SqueezeExcitation
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("shape", [(2, 8, 8, 8), (3, 10, 6), (2, 3, 4, 5, 8)])
def test_matches_paper_equations_for_sequences_images_and_volumes(shape):
    x = _x(shape)
    layer = SqueezeExcitation(reduction=4)
    layer.build(x.shape)
    ref.randomise(layer)
    y, s = layer(x, return_attention_scores=True)
    assert y.shape == shape and s.shape == (shape[0], shape[-1])
    expected_y, expected_s = ref.squeeze_excitation(layer, x)
    np.testing.assert_allclose(ref.numpy(s), expected_s, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-5)
    assert np.all((ref.numpy(s) > 0) & (ref.numpy(s) < 1))
    layer_checks.outputs_close(layer(x), y)


@pytest.mark.parametrize(
    "reduction, min_units, expected", [(4, 1, 2), (16, 1, 1), (16, 3, 3), (2, 1, 4)]
)
def test_bottleneck_width(reduction, min_units, expected):
    layer = SqueezeExcitation(reduction=reduction, min_units=min_units)
    layer.build((None, 8, 8, 8))
    assert layer.mlp.reduce.kernel.shape == (8, expected)
    assert layer.mlp.expand.kernel.shape == (expected, 8)


@pytest.mark.parametrize("shape", [(2, 8, 8, 8), (2, 10, 6), (2, 3, 4, 5, 8)])
def test_layer_checks(shape, tmp_path):
    layer_checks.run_layer_test(
        SqueezeExcitation,
        dict(reduction=2, min_units=2),
        _x(shape),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=shape,
        expected_num_trainable_weights=4,
        mixed_precision_inputs=_x(shape) * 100.0,
    )


def test_functional_shapes():
    model = ref.functional_model(SqueezeExcitation(reduction=2), (8, 8, 8))
    assert model.output_shape == [(None, 8, 8, 8), (None, 8)]


def test_dynamic_spatial_size():
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, SqueezeExcitation(reduction=4)(inputs))
    assert model(_x((1, 5, 7, 8))).shape == (1, 5, 7, 8)


def test_runs_under_xla():
    layer = SqueezeExcitation(reduction=4)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x())


@pytest.mark.parametrize(
    "kwargs, name", [({"reduction": 0}, "reduction"), ({"min_units": 0}, "min_units")]
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}=0"):
        SqueezeExcitation(**kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="inputs.shape=\\(2, 8\\)"):
        SqueezeExcitation()(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match="channel dimension"):
        SqueezeExcitation().build((None, 8, 8, None))
