"""Tests of NonLocalBlock against Wang et al. (2018), Eqs. 1-6, with SAGAN's γ gate."""

import functools

import keras
import numpy as np
import pytest

from keras_attention.layers import NonLocalBlock
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _x(shape=(2, 8, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _project(dense, x):
    return x @ ref.numpy(dense.kernel) + ref.numpy(dense.bias)


def _max_pool_2x2(x):
    """(B, H, W, C) with even H, W -> (B, H/2, W/2, C)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _reference(layer, x):
    """z_i = γ W(Σ_j a_ij g(x_j)) + x_i, a = softmax_j(θ_i·φ_j) or θ_i·φ_j / N'."""
    b, c = x.shape[0], x.shape[-1]
    theta = _project(layer.theta, x).reshape(b, -1, layer.theta.units)
    phi, g = _project(layer.phi, x), _project(layer.g, x)
    if layer.sub_sample:
        phi, g = _max_pool_2x2(phi), _max_pool_2x2(g)
    phi = phi.reshape(b, -1, phi.shape[-1])
    g = g.reshape(b, -1, g.shape[-1])
    f = np.einsum("bic,bjc->bij", theta, phi)
    if layer.mode == "embedded_gaussian":
        e = np.exp(f - f.max(-1, keepdims=True))
        a = e / e.sum(-1, keepdims=True)
    else:
        a = f / phi.shape[1]
    y = np.einsum("bij,bjc->bic", a, g)
    z = float(ref.numpy(layer.gamma)) * _project(layer.w, y).reshape(x.shape[:-1] + (c,)) + x
    return z, a


def _randomised(x, **kwargs):
    layer = NonLocalBlock(**kwargs)
    layer.build(x.shape)
    ref.randomise(layer, scale=0.3)
    layer.gamma.assign(0.7)
    return layer


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot"])
def test_identity_at_initialisation(mode):
    x = _x()
    layer = NonLocalBlock(mode=mode)
    z, a = layer(x, return_attention_scores=True)
    assert float(ref.numpy(layer.gamma)) == 0.0
    np.testing.assert_array_equal(ref.numpy(z), x)
    assert a.shape == (2, 64, 64)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot"])
@pytest.mark.parametrize("sub_sample", [False, True])
def test_matches_paper_with_nonzero_gamma(mode, sub_sample):
    x = _x()
    layer = _randomised(x, mode=mode, sub_sample=sub_sample, inter_channels=3)
    z, a = layer(x, return_attention_scores=True)
    expected_z, expected_a = _reference(layer, x)
    assert a.shape == (2, 64, 16 if sub_sample else 64)
    np.testing.assert_allclose(ref.numpy(a), expected_a, atol=1e-5)
    np.testing.assert_allclose(ref.numpy(z), expected_z, atol=1e-4)
    if mode == "embedded_gaussian":
        np.testing.assert_allclose(ref.numpy(a).sum(-1), 1.0, atol=1e-5)
    assert not np.allclose(ref.numpy(z), x, atol=1e-3)


def test_inter_channels_default_and_sequences():
    layer = NonLocalBlock()
    z, a = layer(_x((2, 10, 6)), return_attention_scores=True)
    assert layer.theta.kernel.shape == (6, 3) and layer.w.kernel.shape == (3, 6)
    assert z.shape == (2, 10, 6) and a.shape == (2, 10, 10)
    _, a = NonLocalBlock(sub_sample=True)(_x((2, 9, 6)), return_attention_scores=True)
    assert a.shape == (2, 9, 5)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot"])
def test_padding_mask_equals_truncating_the_sequence(mode):
    x = _x((2, 7, 6))
    layer = _randomised(x, mode=mode)
    mask = np.array([[True] * 4 + [False] * 3, [True] * 7])
    z, a = layer(x, mask=mask, return_attention_scores=True)
    np.testing.assert_array_equal(ref.numpy(a)[0, :, 4:], 0.0)
    short = layer(x[:1, :4])
    np.testing.assert_allclose(ref.numpy(z)[:1, :4], ref.numpy(short), atol=1e-5)
    np.testing.assert_allclose(ref.numpy(z)[1:], ref.numpy(layer(x[1:])), atol=1e-5)


def test_mask_from_embedding_is_used_and_passed_on():
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 6, mask_zero=True)(tokens)
    block = NonLocalBlock()
    outputs, scores = block(embedded, return_attention_scores=True)
    assert getattr(block(embedded), "_keras_mask", None) is not None
    model = keras.Model(tokens, [outputs, scores])
    block.gamma.assign(0.5)
    _, a = model(np.array([[3, 4, 0, 0], [1, 2, 3, 4]]))
    np.testing.assert_array_equal(ref.numpy(a)[0, :, 2:], 0.0)
    assert np.all(ref.numpy(a)[1] > 0.0)


def test_odd_sizes_with_sub_sampling_and_output_spec():
    inputs = keras.Input((5, 7, 4))
    outputs, scores = NonLocalBlock(sub_sample=True)(inputs, return_attention_scores=True)
    assert outputs.shape == (None, 5, 7, 4) and scores.shape == (None, 35, 12)
    model = keras.Model(inputs, [outputs, scores])
    z, a = model(_x((2, 5, 7, 4)))
    assert z.shape == (2, 5, 7, 4) and a.shape == (2, 35, 12)
    dynamic = keras.Input((None, None, 4))
    out, sc = NonLocalBlock()(dynamic, return_attention_scores=True)
    assert sc.shape == (None, None, None)
    z, a = keras.Model(dynamic, [out, sc])(_x((1, 3, 5, 4)))
    assert a.shape == (1, 15, 15)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot"])
def test_layer_checks(mode, tmp_path):
    layer_checks.run_layer_test(
        NonLocalBlock,
        dict(inter_channels=4, mode=mode, sub_sample=True),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 8, 8, 8),
        expected_num_trainable_weights=9,
        # Large activations through the softmax; "dot" has none, so it gets plain inputs.
        mixed_precision_inputs=_x() * 30.0 if mode == "embedded_gaussian" else None,
    )


def test_mixed_float16_softmax_rows_sum_to_one():
    def make():
        layer = NonLocalBlock()
        layer.build((2, 8, 8, 8))
        layer.gamma.assign(1.0)
        return functools.partial(layer, return_attention_scores=True)

    _, (z, a) = layer_checks.runs_in_mixed_float16(make, _x() * 30.0)
    assert keras.backend.standardize_dtype(z.dtype) == "float16"
    np.testing.assert_allclose(ref.numpy(a).astype("float32").sum(-1), 1.0, atol=1e-2)


def test_xla_and_the_gate_opens_under_training():
    layer = _randomised(_x(), sub_sample=True)
    layer_checks.runs_under_xla(lambda t: layer(t, return_attention_scores=True), _x())
    inputs = keras.Input((8, 8, 8))
    block = NonLocalBlock(name="non_local")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(block(inputs)))
    layer_checks.one_training_step_changes_weights(model, _x((4, 8, 8, 8)), _x((4, 8), 1))
    assert float(ref.numpy(block.gamma)) != 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "gaussian"}, "mode='gaussian'"),
        ({"inter_channels": 0}, "inter_channels=0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NonLocalBlock(**kwargs)


@pytest.mark.parametrize("shape", [(2, 8), (1, 2, 3, 4, 5)])
def test_wrong_rank_is_named(shape):
    with pytest.raises(ValueError, match="inputs.shape"):
        NonLocalBlock()(np.zeros(shape, "float32"))
