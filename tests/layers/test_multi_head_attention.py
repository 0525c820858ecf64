"""Tests of `MultiHeadAttention`: pinned to keras.layers.MultiHeadAttention, masks, cache."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention.layers import MultiHeadAttention
from tests import layer_checks

B, T, DIM = 2, 6, 8


def _x(shape=(B, T, DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _padding(b=B, t=T, seed=1):
    m = np.random.default_rng(seed).random((b, t)) > 0.3
    m[:, 0] = True
    return m


def _pair(query, value, key=None, **kwargs):
    """Our layer and Keras' layer, built on the same shapes, with the same weights."""
    ours = MultiHeadAttention(**kwargs)
    ref = keras.layers.MultiHeadAttention(**kwargs)
    ours(query, value, key)
    ref(query, value, key)
    for a, b in [
        (ours.query_dense, ref.query_dense),
        (ours.key_dense, ref.key_dense),
        (ours.value_dense, ref.value_dense),
        (ours.output_dense, ref.output_dense),
    ]:
        assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
        a.set_weights(b.get_weights())
    return ours, ref


PINNED = {
    "self": dict(call={}),
    "padding_mask": dict(call={"value_mask": _padding()}),
    "attention_mask": dict(
        call={"attention_mask": np.random.default_rng(3).random((B, T, T)) > 0.3}
    ),
    "causal": dict(call={"use_causal_mask": True}),
    "causal_and_padding": dict(call={"use_causal_mask": True, "value_mask": _padding()}),
    "causal_dropout_inference": dict(
        layer={"dropout": 0.4}, call={"use_causal_mask": True, "training": False}
    ),
    "value_dim_output_shape_no_bias": dict(
        layer={"value_dim": 3, "output_shape": 5, "use_bias": False}, call={}
    ),
    "output_shape_tuple": dict(layer={"output_shape": (2, 3)}, call={}),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_pinned_to_keras_multi_head_attention(case):
    if case == "value_dim_output_shape_no_bias" and layer_checks.backend() == "jax":
        pytest.skip("keras.layers.MultiHeadAttention (the reference) fails on JAX with "
                    "value_dim != key_dim: its fused path reshapes (B, T, H, 3) to (B, T, H, 4)")
    spec = PINNED[case]
    x = _x()
    ours, ref = _pair(x, x, num_heads=2, key_dim=4, **spec.get("layer", {}))
    out, scores = ours(x, x, return_attention_scores=True, **spec["call"])
    ref_out, ref_scores = ref(x, x, return_attention_scores=True, **spec["call"])
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    # Without returned scores (Keras then takes its fused path): same outputs.
    np.testing.assert_allclose(ours(x, x, **spec["call"]), ref(x, x, **spec["call"]), atol=1e-5)


def test_query_and_value_masks_equal_keras_attention_mask():
    # keras.layers.MultiHeadAttention reads the query mask only from the Keras mask,
    # so the reference gets the two masks merged into an attention mask.
    x = _x()
    qm, vm = _padding(seed=2), _padding()
    ours, ref = _pair(x, x, num_heads=2, key_dim=4)
    out, scores = ours(x, x, query_mask=qm, value_mask=vm, return_attention_scores=True)
    ref_out, ref_scores = ref(
        x, x, attention_mask=qm[:, :, None] & vm[:, None, :], return_attention_scores=True
    )
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert np.all(np.asarray(scores)[~qm[:, None, :].repeat(2, 1)] == 0)


def test_pinned_cross_attention_with_separate_key():
    q, val, key = _x((B, 4, DIM)), _x((B, 7, 5), seed=1), _x((B, 7, 3), seed=2)
    ours, ref = _pair(q, val, key, num_heads=3, key_dim=2)
    vm = _padding(B, 7)
    out, scores = ours(q, val, key, value_mask=vm, return_attention_scores=True)
    ref_out, ref_scores = ref(q, val, key, value_mask=vm, return_attention_scores=True)
    assert tuple(scores.shape) == (B, 3, 4, 7)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


@layer_checks.tensorflow_only("weight gradients by tf.GradientTape")
def test_chunked_layer_equals_plain_layer_in_outputs_and_weight_gradients():
    x = _x((B, 9, DIM))
    masks = dict(value_mask=_padding(B, 9), query_mask=_padding(B, 9, seed=4), use_causal_mask=True)
    plain = MultiHeadAttention(2, 4)
    chunked = MultiHeadAttention(2, 4, chunk_size=4)
    plain(x, x)
    chunked(x, x)
    chunked.set_weights(plain.get_weights())

    def run(layer):
        with tf.GradientTape() as tape:
            out = layer(x, x, **masks)
            loss = tf.reduce_sum(tf.sin(3.0 * out))
        return out, tape.gradient(loss, layer.trainable_weights)

    (a, ga), (b, gb) = run(chunked), run(plain)
    np.testing.assert_allclose(a, b, atol=1e-5)
    for g1, g2 in zip(ga, gb, strict=True):
        np.testing.assert_allclose(g1, g2, atol=1e-5, rtol=1e-5)


def _future_is_ignored(layer, x, t, call_kwargs, training):
    """Outputs at positions <= t do not change when positions > t change."""
    x2 = x.copy()
    x2[:, t + 1 :] = _x(x[:, t + 1 :].shape, seed=9)
    layer(x, x)  # build, so the dropout seed generator exists
    gen = layer._seed_generator
    state = None if gen is None else gen.state.numpy().copy()
    first = layer(x, x, training=training, **call_kwargs)
    if gen is not None:
        gen.state.assign(state)  # same dropout draw for the second call
    second = layer(x2, x2, training=training, **call_kwargs)
    first = first[0] if isinstance(first, tuple) else first
    second = second[0] if isinstance(second, tuple) else second
    np.testing.assert_allclose(first[:, : t + 1], second[:, : t + 1], atol=1e-5)
    assert not np.allclose(first[:, t + 1 :], second[:, t + 1 :])


@pytest.mark.parametrize(
    "dropout, training, scores, chunk, padding",
    [
        combo
        for combo in itertools.product([0.0, 0.5], [False, True], [False, True], [None, 3],
                                       [False, True])
        if not (combo[2] and combo[3])  # the chunked path cannot return scores
    ],
)
def test_causal_mask_is_never_dropped(dropout, training, scores, chunk, padding):
    """Regression guard for keras#23038 over every path combination."""
    x = _x()
    # Seeded: on PyTorch an unseeded layer's dropout draws from torch's global RNG, so
    # resetting its seed generator would not repeat the draw.
    layer = MultiHeadAttention(2, 4, dropout=dropout, chunk_size=chunk, seed=0)
    kwargs = {"use_causal_mask": True, "return_attention_scores": scores}
    if padding:
        kwargs["value_mask"] = np.ones((B, T), bool)
        kwargs["value_mask"][:, -1] = False
    _future_is_ignored(layer, x, 2, kwargs, training)
    if dropout and training:  # dropout really is applied on this path
        a = layer(x, x, training=True, **kwargs)
        b = layer(x, x, training=False, **kwargs)
        a, b = (a[0], b[0]) if scores else (a, b)
        assert not np.allclose(a, b)
    if scores:
        _, w = layer(x, x, training=training, **kwargs)
        assert np.all(np.asarray(w)[..., np.triu(np.ones((T, T), bool), k=1)] == 0)


def test_keras_mask_from_embedding_equals_explicit_masks():
    tokens = np.array([[3, 5, 2, 0, 0, 0], [4, 1, 6, 7, 2, 0]])
    emb = keras.layers.Embedding(10, DIM, mask_zero=True)
    layer = MultiHeadAttention(2, 4)
    x = emb(tokens)
    assert x._keras_mask is not None
    implicit, w_implicit = layer(x, x, return_attention_scores=True)
    explicit_mask = tokens != 0
    plain = keras.ops.convert_to_tensor(keras.ops.convert_to_numpy(x))
    explicit, w_explicit = layer(
        plain, plain, query_mask=explicit_mask, value_mask=explicit_mask,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    np.testing.assert_allclose(w_implicit, w_explicit, atol=1e-6)
    # Padding keys get no weight, the output carries the query's mask.
    assert np.all(np.asarray(w_implicit)[0, :, :, 3:] == 0)
    np.testing.assert_array_equal(implicit._keras_mask, explicit_mask)
    unmasked = layer(plain, plain)
    assert not np.allclose(unmasked, implicit)


def test_keras_mask_in_a_functional_model_and_chunked_path():
    tokens = np.array([[3, 5, 2, 0, 0], [4, 1, 6, 7, 0]])
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, DIM, mask_zero=True)(inp)
    plain = MultiHeadAttention(2, 4, name="plain")
    chunked = MultiHeadAttention(2, 4, chunk_size=2, name="chunked")
    model = keras.Model(inp, [plain(x, x), chunked(x, x)])
    chunked.set_weights(plain.get_weights())
    a, b = model(tokens)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("chunk", [None, 2])
def test_cached_token_by_token_decoding_equals_full_causal_call(chunk):
    x = _x()
    layer = MultiHeadAttention(2, 4, chunk_size=chunk)
    full = layer(x, x, use_causal_mask=True)
    cache = np.zeros((B, 2, T, 2, 4), "float32")
    steps = []
    for t in range(T):
        out, cache = layer(
            x[:, t : t + 1], x[:, t : t + 1], cache=cache, cache_update_index=t
        )
        steps.append(out)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    # The final cache holds the projections of the whole sequence.
    np.testing.assert_allclose(cache, layer.compute_cache(x), atol=1e-6)


@layer_checks.tensorflow_only("a tf.function with a tensor cache index")
@pytest.mark.slow
def test_cached_prefill_then_steps_under_tf_function_with_tensor_index():
    x = _x()
    layer = MultiHeadAttention(2, 4)
    full, full_scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)

    @tf.function(jit_compile=True)
    def step(xs, cache, index):
        return layer(xs, xs, cache=cache, cache_update_index=index, return_attention_scores=True)

    cache = tf.zeros((B, 2, T, 2, 4))
    prefill, scores, cache = step(x[:, :3], cache, tf.constant(0))
    np.testing.assert_allclose(prefill, full[:, :3], atol=1e-5)
    np.testing.assert_allclose(scores[..., :3], full_scores[:, :, :3, :3], atol=1e-6)
    assert np.all(np.asarray(scores)[..., 3:] == 0)
    outs = [prefill]
    for t in range(3, T):
        out, scores, cache = step(x[:, t : t + 1], cache, tf.constant(t))
        assert tuple(scores.shape) == (B, 2, 1, T)
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_cached_decoding_respects_step_padding_mask():
    x = _x()
    mask = np.ones((B, T), bool)
    mask[0, 2] = False  # a padding token in the middle of sequence 0
    layer = MultiHeadAttention(2, 4)
    full = layer(x, x, use_causal_mask=True, value_mask=mask)
    cache = np.zeros((B, 2, T, 2, 4), "float32")
    outs = []
    for t in range(T):
        out, cache = layer(
            x[:, t : t + 1], x[:, t : t + 1], value_mask=mask[:, t : t + 1], cache=cache,
            cache_update_index=t,
        )
        outs.append(out)
    # Step t only sees key t's mask; earlier keys were written unmasked. So rows
    # after the padded key differ; rows before it match.
    got = np.concatenate(outs, axis=1)
    np.testing.assert_allclose(got[:, :2], np.asarray(full)[:, :2], atol=1e-5)
    # A mask over the whole cache gives the full result for every row.
    cache = np.zeros((B, 2, T, 2, 4), "float32")
    outs = []
    for t in range(T):
        out, cache = layer(
            x[:, t : t + 1], x[:, t : t + 1], value_mask=mask, cache=cache, cache_update_index=t
        )
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_cross_attention_with_compute_cache_equals_uncached():
    q, enc = _x((B, 3, DIM)), _x((B, 7, 5), seed=3)
    enc_mask = _padding(B, 7)
    layer = MultiHeadAttention(2, 4)
    expected, expected_scores = layer(q, enc, value_mask=enc_mask, return_attention_scores=True)
    cache = layer.compute_cache(enc)
    assert tuple(cache.shape) == (B, 2, 7, 2, 4)
    out, scores, same_cache = layer(
        q, enc, value_mask=enc_mask, cache=cache, return_attention_scores=True
    )
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    np.testing.assert_array_equal(same_cache, cache)
    # One query step at a time against the same cache.
    one, _ = layer(q[:, 1:2], enc, value_mask=enc_mask, cache=cache)
    np.testing.assert_allclose(one, np.asarray(expected)[:, 1:2], atol=1e-6)


def test_precomputed_cache_ignores_the_keras_mask_of_an_unused_value():
    """With a cache used as is, `value` is not attended to: the Keras mask of a masked
    decoder step (length 1) must not be applied over the cache's encoder positions."""
    q, enc = _x((B, 1, DIM)), _x((B, 7, 5), seed=3)
    layer = MultiHeadAttention(2, 4)
    expected = layer(q, enc)
    cache = layer.compute_cache(enc)
    step = keras.layers.Embedding(10, DIM, mask_zero=True)(np.array([[3], [0]]))
    out, _ = layer(q, step, cache=cache)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_cache_errors():
    x = _x()
    with pytest.raises(ValueError, match="built"):
        MultiHeadAttention(2, 4).compute_cache(x)
    layer = MultiHeadAttention(2, 4, value_dim=3)
    layer(x, x)
    with pytest.raises(ValueError, match="value_dim"):
        layer.compute_cache(x)
    with pytest.raises(ValueError, match="cache"):
        MultiHeadAttention(2, 4)(x, x, cache_update_index=0)


@pytest.mark.parametrize("chunk", [None, 3])
def test_layer_checks(chunk, tmp_path):
    x = _x()
    layer_checks.run_layer_test(
        MultiHeadAttention,
        dict(num_heads=2, key_dim=4, value_dim=3, output_shape=(2, 3), dropout=0.1,
             chunk_size=chunk, kernel_initializer="he_normal", kernel_regularizer="l2", seed=1),
        (x, x),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, 2, 3),
        expected_num_trainable_weights=8,
        expected_num_seed_generators=1,
        # Large activations: masking constants must stay finite in float16.
        mixed_precision_inputs=(x * 30, x * 30),
    )


@pytest.mark.parametrize("chunk", [None, 3])
def test_mixed_float16_masks_and_cache(chunk):
    x = _x() * 30

    def make():
        return MultiHeadAttention(2, 4, chunk_size=chunk)

    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = make()
        masked = layer(x, x, value_mask=_padding(), use_causal_mask=True)
        cache = np.zeros((B, 2, T, 2, 4), "float16")
        step, cache = layer(x[:, :1], x[:, :1], cache=cache, cache_update_index=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert keras.backend.standardize_dtype(cache.dtype) == "float16"
    for t in (masked, step):
        assert np.all(np.isfinite(np.asarray(t, "float32")))
    np.testing.assert_allclose(
        np.asarray(step, "float32"), np.asarray(masked, "float32")[:, :1], atol=2e-2, rtol=1e-2
    )


@pytest.mark.parametrize("chunk", [None, 4])
def test_runs_under_xla(chunk):
    x = _x((B, 9, DIM))
    layer = MultiHeadAttention(2, 4, chunk_size=chunk)
    mask = _padding(B, 9)
    layer_checks.runs_under_xla(
        lambda a: layer(a, a, value_mask=mask, use_causal_mask=True), tf.constant(x)
    )


def test_symbolic_shapes_and_compute_output_shape():
    q, v = keras.Input((4, DIM)), keras.Input((7, 5))
    layer = MultiHeadAttention(2, 3, output_shape=6)
    out, scores = layer(q, v, return_attention_scores=True)
    assert tuple(out.shape) == (None, 4, 6)
    assert tuple(scores.shape) == (None, 2, 4, 7)
    assert layer.compute_output_shape((None, 4, DIM), (None, 7, 5)) == (None, 4, 6)
    cache = keras.Input((2, 7, 2, 3))
    out, new_cache = layer(q, v, cache=cache)
    assert tuple(new_cache.shape) == (None, 2, 7, 2, 3)
    out = layer(q, v)
    assert tuple(out.shape) == (None, 4, 6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_heads=0, key_dim=4), "num_heads"),
        (dict(num_heads=2, key_dim=-1), "key_dim"),
        (dict(num_heads=2, key_dim=4, value_dim=0), "value_dim"),
        (dict(num_heads=2, key_dim=4, dropout=1.5), "dropout"),
        (dict(num_heads=2, key_dim=4, chunk_size=0), "chunk_size"),
        (dict(num_heads=2, key_dim=4, output_shape="wide"), "output_shape"),
        (dict(num_heads=2, key_dim=4, use_bias="yes"), "use_bias"),
    ],
)
def test_invalid_constructor_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiHeadAttention(**kwargs)


def test_wrong_ranks_and_chunked_scores_raise():
    with pytest.raises(ValueError, match="query"):
        MultiHeadAttention(2, 4)(_x((B, DIM)), _x())
    with pytest.raises(ValueError, match="value"):
        MultiHeadAttention(2, 4)(_x(), _x((B, 2, T, DIM)))
    with pytest.raises(ValueError, match="chunk_size"):
        MultiHeadAttention(2, 4, chunk_size=2)(_x(), _x(), return_attention_scores=True)
