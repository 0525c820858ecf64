"""Tests of GatedAttentionPooling against Ilse et al. (2018), eqs. 9-10."""

import keras
import numpy as np
import pytest

from keras_attention.layers import GatedAttentionPooling
from tests import layer_checks


def _reference(layer, h, mask=None):
    """NumPy: a_k = softmax_k(wᵀ(tanh(V h_k) ⊙ sigm(U h_k))); z = Σ a_k h_k."""

    def np_(w):
        return keras.ops.convert_to_numpy(w)

    v = h @ np_(layer.v_kernel)
    if layer.use_bias:
        v = v + np_(layer.v_bias)
    hidden = np.tanh(v)
    if layer.gated:
        u = h @ np_(layer.u_kernel)
        if layer.use_bias:
            u = u + np_(layer.u_bias)
        hidden = hidden / (1.0 + np.exp(-u))
    scores = (hidden @ np_(layer.w_kernel))[..., 0]
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    a = e / e.sum(-1, keepdims=True)
    return np.einsum("bk,bkd->bd", a, h), a


@pytest.mark.parametrize("gated, use_bias", [(True, True), (True, False), (False, True)])
def test_matches_ilse_reference(gated, use_bias):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 6, 5)).astype("float32")
    layer = GatedAttentionPooling(units=4, gated=gated, use_bias=use_bias)
    layer.build(h.shape)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    pooled, weights = layer(h, return_attention_scores=True)
    assert pooled.shape == (3, 5) and weights.shape == (3, 6)
    ref, a = _reference(layer, h)
    np.testing.assert_allclose(pooled, ref, atol=1e-5)
    np.testing.assert_allclose(weights, a, atol=1e-6)
    assert (len(layer.weights) == 5) == (gated and use_bias)
    assert not gated or "u_kernel" in [w.name for w in layer.weights]


def test_embedding_mask_equals_explicit_mask():
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [0, 0, 0, 0, 0]])
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    pool = GatedAttentionPooling(units=3)
    pooled, weights = pool(embedded, return_attention_scores=True)
    model = keras.Model(inputs, [pooled, weights, embedded])
    got_pooled, got_weights, h = model(tokens)
    mask = tokens != 0
    layer_checks.outputs_close(
        (got_pooled, got_weights), pool(h, mask=mask, return_attention_scores=True)
    )
    w = keras.ops.convert_to_numpy(got_weights)
    assert np.all(w[~mask] == 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got_pooled)[2], 0.0)
    ref, _ = _reference(pool, keras.ops.convert_to_numpy(h)[:2], mask[:2])
    np.testing.assert_allclose(got_pooled[:2], ref, atol=1e-5)


@pytest.mark.parametrize("gated, num_weights", [(True, 5), (False, 3)])
def test_layer_checks(gated, num_weights, tmp_path):
    h = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer_checks.run_layer_test(
        GatedAttentionPooling,
        dict(units=3, gated=gated, dropout=0.2, seed=2),
        h,
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=num_weights,
        expected_num_seed_generators=1,
    )


def test_runs_under_xla():
    h = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer = GatedAttentionPooling(3)
    layer_checks.runs_under_xla(lambda x: layer(x, mask=np.array([[1, 0, 0, 0, 0]] * 2, bool)), h)


def test_dropout_only_while_training():
    h = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    layer = GatedAttentionPooling(3, dropout=0.5)
    layer_checks.outputs_close(layer(h), layer(h, training=False))
    assert not np.allclose(layer(h, training=True), layer(h, training=False))


@pytest.mark.parametrize(
    "kwargs, name", [({"units": 0}, "units"), ({"units": 2, "dropout": 1.2}, "dropout")]
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        GatedAttentionPooling(**kwargs)


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match="inputs"):
        GatedAttentionPooling(2)(np.zeros((2, 3, 4, 5), "float32"))
