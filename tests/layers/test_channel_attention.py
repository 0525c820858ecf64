"""Tests of ChannelAttention against Woo et al. (2018), Eq. 2."""


import numpy as np
import pytest

from keras_attention.layers import ChannelAttention, SqueezeExcitation
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("shape", [(2, 8, 8, 8), (3, 10, 6)])
def test_matches_paper_equation(shape):
    x = _x(shape)
    layer = ChannelAttention(reduction=2)
    layer.build(x.shape)
    ref.randomise(layer)
    y, m = layer(x, return_attention_scores=True)
    assert y.shape == shape and m.shape == (shape[0], shape[-1])
    expected_y, expected_m = ref.channel_attention(layer, x)
    np.testing.assert_allclose(ref.numpy(m), expected_m, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(y), expected_y, atol=1e-5)


def test_max_branch_is_what_differs_from_squeeze_excitation():
    """Same MLP weights: SE's gate is σ(MLP(avg)), CBAM's adds MLP(max) inside the sigmoid."""
    x = _x()
    channel, se = ChannelAttention(reduction=4), SqueezeExcitation(reduction=4)
    channel.build(x.shape)
    se.build(x.shape)
    ref.randomise(channel)
    se.set_weights(channel.get_weights())
    _, m = channel(x, return_attention_scores=True)
    _, s = se(x, return_attention_scores=True)
    max_logits = ref.excitation_mlp(channel.mlp, x.max(axis=(1, 2)))
    avg_logits = np.log(ref.numpy(s)) - np.log1p(-ref.numpy(s))  # logit of the SE gate
    np.testing.assert_allclose(ref.numpy(m), ref.sigmoid(avg_logits + max_logits), atol=1e-4)
    assert not np.allclose(ref.numpy(m), ref.numpy(s), atol=1e-3)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        ChannelAttention,
        dict(reduction=4, min_units=2),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 8, 8, 8),
        expected_num_trainable_weights=4,
        mixed_precision_inputs=_x() * 100.0,
    )


def test_functional_shapes_and_xla():
    model = ref.functional_model(ChannelAttention(reduction=4), (8, 8, 8))
    assert model.output_shape == [(None, 8, 8, 8), (None, 8)]
    layer = ChannelAttention(reduction=4)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x())


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="reduction=0"):
        ChannelAttention(reduction=0)
    with pytest.raises(ValueError, match="reduction=2.5"):
        ChannelAttention(reduction=2.5)
    with pytest.raises(ValueError, match="inputs.shape"):
        ChannelAttention()(np.zeros((2, 8), "float32"))
