"""Tests of CBAM: channel attention, then spatial attention (Woo et al. 2018, Eq. 1)."""


import numpy as np
import pytest

from keras_attention.layers import CBAM, ChannelAttention, SpatialAttention
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_channel_then_spatial_matches_paper():
    x = _x()
    layer = CBAM(reduction=4, kernel_size=3)
    layer.build(x.shape)
    ref.randomise(layer)
    assert isinstance(layer.channel_attention, ChannelAttention)
    assert isinstance(layer.spatial_attention, SpatialAttention)
    y, m = layer(x, return_attention_scores=True)
    refined, _ = ref.channel_attention(layer.channel_attention, x)  # F' = M_c(F) ⊗ F
    expected_y, expected_m = ref.spatial_attention(layer.spatial_attention, refined)
    np.testing.assert_allclose(ref.numpy(m), expected_m, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-5)
    # The order matters: spatial-then-channel gives another result.
    spatial_first, _ = ref.spatial_attention(layer.spatial_attention, x)
    swapped, _ = ref.channel_attention(layer.channel_attention, spatial_first)
    assert not np.allclose(swapped, expected_y, atol=1e-3)


def test_spatial_map_shape_and_range():
    y, m = CBAM(reduction=4)(_x((3, 6, 10, 8)) * 10.0, return_attention_scores=True)
    assert y.shape == (3, 6, 10, 8) and m.shape == (3, 6, 10, 1)
    m = ref.numpy(m)
    assert m.min() >= 0.0 and m.max() <= 1.0


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        CBAM,
        dict(reduction=2, kernel_size=5, min_units=2),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 8, 8, 8),
        expected_num_trainable_weights=6,
        mixed_precision_inputs=_x() * 100.0,
    )


def test_functional_shapes_and_xla():
    model = ref.functional_model(CBAM(reduction=2), (8, 8, 8))
    assert model.output_shape == [(None, 8, 8, 8), (None, 8, 8, 1)]
    layer = CBAM(reduction=4, kernel_size=3)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reduction": 0}, "reduction=0"),
        ({"kernel_size": 4}, "kernel_size=4"),
        ({"kernel_size": 0}, "kernel_size=0"),
        ({"min_units": -1}, "min_units=-1"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CBAM(**kwargs)


def test_wrong_rank_is_named():
    with pytest.raises(ValueError, match="inputs.shape=\\(2, 8, 8\\)"):
        CBAM()(np.zeros((2, 8, 8), "float32"))
