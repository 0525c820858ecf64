"""Tests of the `ScaledDotProductAttention` layer (one head or many, no weights)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention.layers import ScaledDotProductAttention
from tests import layer_checks
from tests.test_ops import np_attention

B, TQ, TK, D = 2, 5, 7, 4


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _padding(t=TK, seed=1):
    m = np.random.default_rng(seed).random((B, t)) > 0.3
    m[:, 0] = True
    return m


@pytest.mark.parametrize("causal", [False, True])
def test_rank3_matches_numpy_reference_with_masks(causal):
    q, kv = _x((B, TQ, D)), _x((B, TK, D), 1)
    qm, vm = _padding(TQ, seed=2), _padding()
    am = np.random.default_rng(3).random((B, TQ, TK)) > 0.2
    out, w = ScaledDotProductAttention()(
        q, kv, query_mask=qm, value_mask=vm, attention_mask=am, use_causal_mask=causal,
        return_attention_scores=True,
    )
    allowed = qm[:, :, None] & vm[:, None, :] & am
    ref_out, ref_w = np_attention(q[:, None], kv[:, None], kv[:, None], allowed, causal)
    assert tuple(out.shape) == (B, TQ, D) and tuple(w.shape) == (B, TQ, TK)
    np.testing.assert_allclose(out, ref_out[:, 0], atol=1e-5)
    np.testing.assert_allclose(w, ref_w[:, 0], atol=1e-6)


def test_rank4_heads_and_separate_key():
    q, k, v = _x((B, 3, TQ, D)), _x((B, 3, TK, D), 1), _x((B, 3, TK, 6), 2)
    out, w = ScaledDotProductAttention()(q, v, k, return_attention_scores=True)
    ref_out, ref_w = np_attention(q, k, v)
    assert tuple(out.shape) == (B, 3, TQ, 6) and tuple(w.shape) == (B, 3, TQ, TK)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(w, ref_w, atol=1e-6)


def test_pinned_to_keras_attention_with_scaled_query():
    q, kv = _x((B, TQ, D)), _x((B, TK, D), 1)
    qm, vm = _padding(TQ, seed=2), _padding()
    ours, w = ScaledDotProductAttention()(
        q, kv, query_mask=qm, value_mask=vm, use_causal_mask=True, return_attention_scores=True
    )
    ref, ref_w = keras.layers.Attention()(
        [q / np.sqrt(D), kv], mask=[qm, vm], use_causal_mask=True, return_attention_scores=True
    )
    # keras.layers.Attention zeroes masked query rows of the output, not of the weights.
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(w)[qm], np.asarray(ref_w)[qm], atol=1e-6)


@layer_checks.tensorflow_only("gradients by tf.GradientTape")
@pytest.mark.parametrize("causal", [False, True])
def test_chunked_layer_equals_plain_layer(causal):
    q, kv = _x((B, 9, D)), _x((B, 9, D), 1)
    masks = dict(query_mask=_padding(9, 2), value_mask=_padding(9), use_causal_mask=causal)
    q_t, kv_t = tf.constant(q), tf.constant(kv)

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch([q_t, kv_t])
            out = layer(q_t, kv_t, **masks)
            loss = tf.reduce_sum(tf.sin(3.0 * out))
        return [out] + tape.gradient(loss, [q_t, kv_t])

    for a, b in zip(
        run(ScaledDotProductAttention(chunk_size=4)), run(ScaledDotProductAttention()), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_keras_mask_from_embedding_equals_explicit_masks():
    tokens = np.array([[3, 5, 2, 0, 0], [4, 1, 6, 7, 0]])
    x = keras.layers.Embedding(10, D, mask_zero=True)(tokens)
    layer = ScaledDotProductAttention()
    implicit = layer(x, x)
    plain = tf.constant(keras.ops.convert_to_numpy(x))
    explicit = layer(plain, plain, query_mask=tokens != 0, value_mask=tokens != 0)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    np.testing.assert_array_equal(implicit._keras_mask, tokens != 0)
    assert not np.allclose(layer(plain, plain), implicit)


def test_dropout_only_in_training_and_with_chunks():
    q, kv = _x((B, TQ, D)), _x((B, TK, D), 1)
    for chunk in (None, 3):
        layer = ScaledDotProductAttention(dropout=0.5, chunk_size=chunk)
        base = layer(q, kv, training=False)
        np.testing.assert_allclose(base, ScaledDotProductAttention()(q, kv), atol=1e-5)
        dropped = layer(q, kv, training=True)
        dropped, base = keras.ops.convert_to_numpy(dropped), keras.ops.convert_to_numpy(base)
        assert np.all(np.isfinite(dropped)) and not np.allclose(dropped, base)


@pytest.mark.parametrize("chunk", [None, 3])
def test_layer_checks(chunk, tmp_path):
    q, kv = _x((B, TQ, D)), _x((B, TK, D), 1)
    layer_checks.run_layer_test(
        ScaledDotProductAttention,
        dict(dropout=0.2, chunk_size=chunk, seed=0),
        (q, kv),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, TQ, D),
        expected_num_trainable_weights=0,
        expected_num_seed_generators=1,
        run_training_check=False,  # no weights
        mixed_precision_inputs=(q * 30, kv * 30),
    )


def test_runs_under_xla():
    q, kv = _x((B, TQ, D)) * 30, _x((B, TK, D), 1) * 30
    layer = ScaledDotProductAttention()
    vm = _padding()
    layer_checks.runs_under_xla(
        lambda a, b: layer(a, b, value_mask=vm, use_causal_mask=True), tf.constant(q),
        tf.constant(kv),
    )


def test_symbolic_output_shapes():
    q, v = keras.Input((TQ, D)), keras.Input((TK, 6))
    out, w = ScaledDotProductAttention()(q, v, keras.Input((TK, D)), return_attention_scores=True)
    assert tuple(out.shape) == (None, TQ, 6) and tuple(w.shape) == (None, TQ, TK)


@pytest.mark.parametrize(
    "kwargs, name", [(dict(dropout=1.5), "dropout"), (dict(chunk_size=0), "chunk_size")]
)
def test_invalid_arguments_name_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ScaledDotProductAttention(**kwargs)


def test_wrong_ranks_and_chunked_scores_raise():
    with pytest.raises(ValueError, match="query"):
        ScaledDotProductAttention()(_x((B, D)), _x((B, TK, D)))
    with pytest.raises(ValueError, match="value"):
        ScaledDotProductAttention()(_x((B, TQ, D)), _x((B, 2, TK, D)))
    with pytest.raises(ValueError, match="key"):
        ScaledDotProductAttention()(_x((B, TQ, D)), _x((B, TK, D)), _x((B, TK, D + 1)))
    with pytest.raises(ValueError, match="chunk_size"):
        ScaledDotProductAttention(chunk_size=2)(
            _x((B, TQ, D)), _x((B, TK, D)), return_attention_scores=True
        )
