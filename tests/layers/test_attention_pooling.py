"""Tests of AttentionPooling against Yang et al. (2016) and Lin et al. (2017)."""

import keras
import numpy as np
import pytest

from keras_attention.layers import AttentionPooling
from tests import layer_checks


def _reference(layer, h, mask=None):
    """NumPy: A = softmax_T(W_s2 tanh(W_s1 Hᵀ + b)); M = A H (masked steps excluded)."""
    w1 = keras.ops.convert_to_numpy(layer.projection_kernel)
    w2 = keras.ops.convert_to_numpy(layer.context_kernel)
    u = h @ w1
    if layer.use_bias:
        u = u + keras.ops.convert_to_numpy(layer.projection_bias)
    u = np.tanh(u)
    scores = np.einsum("btu,ur->brt", u, w2)
    if mask is not None:
        scores = np.where(mask[:, None, :], scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    e = np.exp(scores)
    a = e / e.sum(-1, keepdims=True)
    return np.einsum("brt,btd->brd", a, h), a


def _randomise(layer):
    for w in layer.weights:
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype("float32") * 0.5)


def test_single_hop_shapes_and_yang_reference():
    h = np.random.default_rng(0).normal(size=(3, 6, 5)).astype("float32")
    layer = AttentionPooling(units=4)
    layer.build(h.shape)
    _randomise(layer)
    pooled, weights = layer(h, return_attention_scores=True)
    assert pooled.shape == (3, 5) and weights.shape == (3, 6)
    ref, a = _reference(layer, h)
    np.testing.assert_allclose(pooled, ref[:, 0], atol=1e-5)
    np.testing.assert_allclose(weights, a[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.sum(keras.ops.convert_to_numpy(weights), -1), 1.0, atol=1e-6)


def test_multi_hop_shapes_and_lin_reference():
    h = np.random.default_rng(0).normal(size=(2, 7, 6)).astype("float32")
    layer = AttentionPooling(units=3, num_hops=4, use_bias=False)
    layer.build(h.shape)
    _randomise(layer)
    pooled, weights = layer(h, return_attention_scores=True)
    assert pooled.shape == (2, 4, 6) and weights.shape == (2, 4, 7)
    ref, a = _reference(layer, h)
    np.testing.assert_allclose(pooled, ref, atol=1e-5)
    np.testing.assert_allclose(weights, a, atol=1e-6)
    assert layer.compute_output_shape((2, 7, 6)) == (2, 4, 6)


def test_units_default_to_input_dim():
    layer = AttentionPooling()
    layer(np.zeros((1, 3, 5), "float32"))
    assert tuple(layer.projection_kernel.shape) == (5, 5)


def test_penalty_is_lin_frobenius_norm():
    h = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer = AttentionPooling(units=3, num_hops=3, penalty_coefficient=0.7)
    _, weights = layer(h, return_attention_scores=True)
    a = keras.ops.convert_to_numpy(weights)
    residual = a @ a.transpose(0, 2, 1) - np.eye(3)
    expected = 0.7 * np.mean(np.sum(residual**2, axis=(1, 2)))
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-5)
    no_penalty = AttentionPooling(num_hops=3)
    no_penalty(h)
    assert not no_penalty.losses


def test_penalty_enters_the_training_loss():
    inputs = keras.Input((5, 4))
    pooled = AttentionPooling(num_hops=2, penalty_coefficient=10.0)(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(pooled))
    model.compile(loss="mse")
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    # The data loss is 0, so what evaluate reports is the penalty alone.
    assert model.evaluate(x, y, verbose=0) > 0.1


def test_embedding_mask_equals_explicit_mask_and_masked_weights_are_zero():
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [0, 0, 0, 0, 0]])
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    pool = AttentionPooling(units=3, num_hops=2)
    pooled, weights = pool(embedded, return_attention_scores=True)
    model = keras.Model(inputs, [pooled, weights, embedded])
    got_pooled, got_weights, h = model(tokens)
    mask = tokens != 0
    explicit_pooled, explicit_weights = pool(h, mask=mask, return_attention_scores=True)
    layer_checks.outputs_close((got_pooled, got_weights), (explicit_pooled, explicit_weights))
    w = keras.ops.convert_to_numpy(got_weights)
    assert np.all(w[0][:, ~mask[0]] == 0.0)
    # The fully masked row pools to zeros, not NaN.
    assert np.all(w[2] == 0.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got_pooled)[2], 0.0)
    ref, a = _reference(pool, keras.ops.convert_to_numpy(h)[:2], mask[:2])
    np.testing.assert_allclose(got_pooled[:2], ref, atol=1e-5)


def test_masked_steps_do_not_change_the_output():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 6, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
    layer = AttentionPooling(units=3)
    before = layer(h, mask=mask)
    h2 = np.where(mask[..., None], h, rng.normal(size=h.shape) * 100).astype("float32")
    layer_checks.outputs_close(before, layer(h2, mask=mask))


def test_score_scale_multiplies_the_scores_and_speeds_up_adam():
    """score_scale s equals a context vector s times larger; under Adam, whose steps do
    not depend on the gradient's scale, the scores then move s times as far a step."""
    h = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    scaled, plain = AttentionPooling(3, score_scale=4.0), AttentionPooling(3)
    scaled.build(h.shape), plain.build(h.shape)
    _randomise(scaled), _randomise(plain)
    plain.context_kernel.assign(4.0 * keras.ops.convert_to_numpy(scaled.context_kernel))
    layer_checks.outputs_close(scaled(h, return_attention_scores=True)[1],
                               plain(h, return_attention_scores=True)[1])
    moved = {}
    for scale in (1.0, 10.0):
        keras.utils.set_random_seed(0)
        layer = AttentionPooling(3, score_scale=scale)
        inputs = keras.Input((6, 4))
        model = keras.Model(inputs, layer(inputs))
        layer.context_kernel.assign(np.zeros(layer.context_kernel.shape, "float32"))
        model.compile(keras.optimizers.Adam(1e-3), "mse")
        model.fit(h, np.ones((2, 4), "float32"), epochs=1, verbose=0)
        _, weights = layer(h, return_attention_scores=True)
        moved[scale] = np.abs(keras.ops.convert_to_numpy(weights) - 1 / 6).max()
    assert moved[10.0] > 5 * moved[1.0] > 0


def test_dropout_only_while_training():
    h = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    layer = AttentionPooling(dropout=0.5)
    layer_checks.outputs_close(layer(h), layer(h, training=False))
    assert not np.allclose(layer(h, training=True), layer(h, training=False))


@pytest.mark.parametrize("num_hops, use_bias", [(1, True), (2, False)])
def test_layer_checks(num_hops, use_bias, tmp_path):
    h = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer_checks.run_layer_test(
        AttentionPooling,
        dict(units=3, num_hops=num_hops, use_bias=use_bias, dropout=0.1,
             penalty_coefficient=0.5, score_scale=2.5, seed=4),
        h,
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 4) if num_hops == 1 else (2, num_hops, 4),
        expected_num_trainable_weights=3 if use_bias else 2,
        expected_num_seed_generators=1,
    )


def test_runs_under_xla():
    h = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    layer = AttentionPooling(num_hops=2)
    layer_checks.runs_under_xla(
        lambda x: layer(x, mask=np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], bool)), h
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"num_hops": 0}, "num_hops"),
        ({"dropout": 1.2}, "dropout"),
        ({"penalty_coefficient": -1.0}, "penalty_coefficient"),
        ({"score_scale": 0.0}, "score_scale"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        AttentionPooling(**kwargs)


def test_wrong_rank_raises():
    with pytest.raises(ValueError, match="inputs"):
        AttentionPooling()(np.zeros((2, 4), "float32"))
