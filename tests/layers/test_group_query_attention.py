"""Tests of `GroupQueryAttention`: NumPy oracle, pinned to keras.layers.GroupQueryAttention,
masks, the KV cache (and its size), rotary positions and Keras plumbing (issue 19)."""

import keras
import numpy as np
import pytest

from keras_attention.layers import GroupQueryAttention, MultiHeadAttention
from tests import layer_checks

B, T, DIM, HD, HQ, HKV = 2, 6, 8, 4, 4, 2


def _x(shape=(B, T, DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _padding(b=B, t=T, seed=1):
    m = np.random.default_rng(seed).random((b, t)) > 0.3
    m[:, 0] = True
    return m


def _np(x):
    return keras.ops.convert_to_numpy(x).astype("float64")


def _oracle(layer, query, value, mask=None):
    """softmax(Q_u K_gᵀ/√d + mask) V_g with g = u // (H/G), then W^O; `mask` (B, T_q, T_k)."""
    def project(dense, x):
        return np.einsum("btm,muh->btuh", x, _np(dense.kernel)) + _np(dense.bias)

    q = project(layer.query_dense, query)
    k = np.repeat(project(layer.key_dense, value), layer.num_repeats, axis=2)
    v = np.repeat(project(layer.value_dense, value), layer.num_repeats, axis=2)
    scores = np.einsum("bquh,bkuh->buqk", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = np.einsum("buqk,bkuh->bquh", weights, v)
    out = np.einsum("bquh,uhm->bqm", context, _np(layer.output_dense.kernel))
    return out + _np(layer.output_dense.bias), weights


def _close(actual, expected, atol=1e-5):
    np.testing.assert_allclose(_np(actual), _np(expected), atol=atol, rtol=1e-5)


def _randomise_biases(layer):
    rng = np.random.default_rng(5)
    for w in layer.trainable_weights:
        if w.path.endswith("bias"):
            w.assign(rng.normal(size=w.shape).astype("float32") * 0.3)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_matches_numpy_oracle(groups):
    q, kv = _x(), _x((B, 7, 5), seed=2)
    layer = GroupQueryAttention(HD, HQ, groups)
    layer(q, kv)
    _randomise_biases(layer)
    mask = np.broadcast_to(_padding(B, 7)[:, None], (B, T, 7))
    out, scores = layer(q, kv, value_mask=_padding(B, 7), return_attention_scores=True)
    expected, weights = _oracle(layer, q, kv, mask)
    _close(out, expected, atol=1e-5)
    _close(scores, weights, atol=1e-6)
    assert tuple(layer.key_dense.kernel.shape) == (5, groups, HD)


def _pair(x, **kwargs):
    """Our layer and Keras' layer, built on the same shapes, with the same weights."""
    ours = GroupQueryAttention(HD, HQ, HKV, **kwargs)
    ref = keras.layers.GroupQueryAttention(
        head_dim=HD, num_query_heads=HQ, num_key_value_heads=HKV, **kwargs
    )
    ours(x, x)
    ref(x, x)
    _randomise_biases(ref)
    names = ["query", "key", "value", "output"] + (["gate"] if ours.use_gate else [])
    for name in names:
        a, b = getattr(ours, f"_{name}_dense"), getattr(ref, f"_{name}_dense")
        assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
        a.set_weights(b.get_weights())
    return ours, ref


PINNED = {
    "self": dict(call={}),
    "value_mask": dict(call={"value_mask": _padding()}),
    "key_mask": dict(call={"key_mask": _padding(seed=4)}),
    "attention_mask": dict(
        call={"attention_mask": np.random.default_rng(3).random((B, T, T)) > 0.3}
    ),
    "causal": dict(call={"use_causal_mask": True}),
    "causal_and_padding": dict(call={"use_causal_mask": True, "value_mask": _padding()}),
    "sliding_window_causal": dict(layer={"sliding_window": 3}, call={"use_causal_mask": True}),
    "gate_no_bias": dict(layer={"use_gate": True, "use_bias": False}, call={}),
    "dropout_inference": dict(layer={"dropout": 0.4}, call={"training": False}),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_pinned_to_keras_group_query_attention(case):
    spec = PINNED[case]
    x = _x()
    ours, ref = _pair(x, **spec.get("layer", {}))
    out, scores = ours(x, x, return_attention_scores=True, **spec["call"])
    ref_out, ref_scores = ref(x, x, return_attention_scores=True, **spec["call"])
    _close(out, ref_out, atol=1e-5)
    _close(scores, ref_scores, atol=1e-6)
    # Without returned scores (Keras then takes its fused path): same outputs.
    _close(ours(x, x, **spec["call"]), ref(x, x, **spec["call"]), atol=1e-5)


def test_query_mask_matches_keras_on_valid_rows_and_zeroes_masked_rows():
    # Keras gives a fully masked row uniform weights; here it gets zeros.
    x = _x()
    qm = _padding(seed=6)
    ours, ref = _pair(x)
    out, scores = ours(x, x, query_mask=qm, return_attention_scores=True)
    ref_out, _ = ref(x, x, query_mask=qm, return_attention_scores=True)
    _close(_np(out)[qm], _np(ref_out)[qm], atol=1e-5)
    assert np.all(_np(scores).transpose(0, 2, 1, 3)[~qm] == 0)


def test_keras_mask_from_embedding_equals_explicit_masks():
    tokens = np.array([[3, 1, 4, 0, 0, 0], [2, 7, 1, 8, 2, 0]])
    emb = keras.layers.Embedding(10, DIM, mask_zero=True)
    h = emb(tokens)
    layer = GroupQueryAttention(HD, HQ, HKV)
    mask = tokens != 0
    layer_checks.outputs_close(
        layer(h, h), layer(keras.ops.copy(h), keras.ops.copy(h), query_mask=mask, value_mask=mask)
    )


@pytest.mark.parametrize("chunk", [None, 2])
@pytest.mark.parametrize("rotary", [None, 10000])
def test_cached_token_by_token_decoding_equals_full_causal_call(chunk, rotary):
    x = _x()
    layer = GroupQueryAttention(HD, HQ, HKV, chunk_size=chunk, rotary_max_wavelength=rotary)
    full = layer(x, x, use_causal_mask=True)
    cache = np.zeros((B, 2, T, HKV, HD), "float32")
    steps = []
    for t in range(T):
        out, cache = layer(x[:, t : t + 1], x[:, t : t + 1], cache=cache, cache_update_index=t)
        steps.append(_np(out))
    _close(np.concatenate(steps, axis=1), full, atol=1e-5)
    # The final cache holds the (rotated) projections of the whole sequence.
    _close(cache, layer.compute_cache(x), atol=1e-5)
    # A prefill of 4 steps then 2 single steps gives the same.
    cache = np.zeros((B, 2, T, HKV, HD), "float32")
    first, cache = layer(x[:, :4], x[:, :4], cache=cache, cache_update_index=0)
    outs = [_np(first)]
    for t in range(4, T):
        out, cache = layer(x[:, t : t + 1], x[:, t : t + 1], cache=cache, cache_update_index=t)
        outs.append(_np(out))
    _close(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_cached_decoding_with_sliding_window_and_step_mask():
    x = _x()
    mask = np.ones((B, T), bool)
    mask[0, 2] = False
    layer = GroupQueryAttention(HD, HQ, HKV, sliding_window=3)
    full = layer(x, x, use_causal_mask=True, value_mask=mask)
    cache = np.zeros((B, 2, T, HKV, HD), "float32")
    outs = []
    for t in range(T):
        out, cache = layer(
            x[:, t : t + 1], x[:, t : t + 1], value_mask=mask, cache=cache, cache_update_index=t
        )
        outs.append(_np(out))
    _close(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_cache_holds_key_value_heads_only():
    """8 query heads and 2 key/value heads: the cache is a quarter of multi-head attention's."""
    x = _x((1, T, 16))
    gqa = GroupQueryAttention(4, 8, 2)
    mha = MultiHeadAttention(8, 4)
    gqa(x, x)
    mha(x, x)
    gqa_cache, mha_cache = gqa.compute_cache(x), mha.compute_cache(x)
    assert tuple(gqa_cache.shape) == (1, 2, T, 2, 4)
    assert tuple(mha_cache.shape) == (1, 2, T, 8, 4)
    assert np.prod(gqa_cache.shape) * 4 == np.prod(mha_cache.shape)
    _, new_cache = gqa(x[:, :1], x[:, :1], cache=gqa_cache, cache_update_index=0)
    assert tuple(new_cache.shape) == tuple(gqa_cache.shape)
    # ... and the key/value projections have a quarter of the query's parameters.
    assert np.prod(gqa.key_dense.kernel.shape) * 4 == np.prod(gqa.query_dense.kernel.shape)


def test_cross_attention_with_compute_cache_equals_uncached():
    q, enc = _x((B, 3, DIM)), _x((B, 7, 5), seed=3)
    enc_mask = _padding(B, 7)
    layer = GroupQueryAttention(HD, HQ, 1)  # multi-query
    expected, expected_scores = layer(q, enc, value_mask=enc_mask, return_attention_scores=True)
    cache = layer.compute_cache(enc)
    assert tuple(cache.shape) == (B, 2, 7, 1, HD)
    out, scores, same = layer(q, enc, value_mask=enc_mask, cache=cache,
                              return_attention_scores=True)
    _close(out, expected, atol=1e-6)
    _close(scores, expected_scores, atol=1e-6)
    _close(same, cache, atol=0)


def test_rotary_scores_depend_on_relative_positions_only():
    """With rotary embeddings, shifting every position (the cache index) leaves the scores."""
    x = _x((B, 3, DIM))
    layer = GroupQueryAttention(HD, HQ, HKV, rotary_max_wavelength=10000)
    _, at0, _ = layer(x, x, cache=np.zeros((B, 2, 3, HKV, HD), "float32"),
                      cache_update_index=0, return_attention_scores=True)
    # (The unwritten cache positions before 7 are masked out.)
    written = np.arange(10)[None].repeat(B, 0) >= 7
    _, at7, _ = layer(x, x, cache=np.zeros((B, 2, 10, HKV, HD), "float32"),
                      cache_update_index=7, value_mask=written, return_attention_scores=True)
    _close(_np(at7)[..., 7:], at0, atol=1e-5)
    plain = GroupQueryAttention(HD, HQ, HKV)
    plain(x, x)
    plain.set_weights(layer.get_weights())
    assert not np.allclose(_np(plain(x, x)), _np(layer(x, x)), atol=1e-3)


def test_chunked_equals_plain_with_masks():
    x = _x()
    plain = GroupQueryAttention(HD, HQ, HKV)
    chunked = GroupQueryAttention(HD, HQ, HKV, chunk_size=4)
    plain(x, x)
    chunked(x, x)
    chunked.set_weights(plain.get_weights())
    kwargs = dict(query_mask=_padding(seed=6), value_mask=_padding(), use_causal_mask=True)
    layer_checks.outputs_close(plain(x, x, **kwargs), chunked(x, x, **kwargs))


@pytest.mark.parametrize("chunk", [None, 2])
def test_layer_checks(chunk, tmp_path):
    x = _x()
    layer_checks.run_layer_test(
        GroupQueryAttention,
        dict(head_dim=HD, num_query_heads=HQ, num_key_value_heads=HKV, dropout=0.1,
             use_bias=True, use_gate=chunk is None, chunk_size=chunk, sliding_window=4,
             rotary_max_wavelength=500.0, kernel_initializer="he_normal",
             bias_initializer="ones", kernel_regularizer="l2", kernel_constraint="max_norm",
             activity_regularizer="l1", seed=3),
        (x, x),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=10 if chunk is None else 8,
        expected_num_seed_generators=1,
    )


def test_runs_under_xla():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function(jit_compile=True) is the TensorFlow backend's XLA path")
    layer = GroupQueryAttention(HD, HQ, HKV, rotary_max_wavelength=10000)
    mask = _padding()
    layer_checks.runs_under_xla(
        lambda x: layer(x, x, value_mask=mask, use_causal_mask=True), _x()
    )


def test_symbolic_shapes():
    q, v = keras.Input((None, DIM)), keras.Input((7, 5))
    out, scores = GroupQueryAttention(HD, HQ, HKV)(q, v, return_attention_scores=True)
    assert tuple(out.shape) == (None, None, DIM)
    assert tuple(scores.shape) == (None, HQ, None, 7)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_key_value_heads=3), "num_key_value_heads=3"),
        (dict(head_dim=0), "head_dim=0"),
        (dict(num_query_heads=0), "num_query_heads=0"),
        (dict(dropout=1.0), "dropout=1.0"),
        (dict(sliding_window=0), "sliding_window=0"),
        (dict(flash_attention=True), "chunk_size=<int>"),
        (dict(use_gate=1), "use_gate=1"),
        (dict(chunk_size=-2), "chunk_size=-2"),
        (dict(rotary_max_wavelength=-1), "rotary_max_wavelength=-1"),
        (dict(head_dim=3, rotary_max_wavelength=100), "head_dim=3"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    args = dict(head_dim=HD, num_query_heads=HQ, num_key_value_heads=HKV)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name.replace("[", r"\[")):
        GroupQueryAttention(**args)


def test_only_keras_three_leading_arguments_are_positional():
    GroupQueryAttention(HD, HQ, HKV)
    with pytest.raises(TypeError, match="positional argument"):
        GroupQueryAttention(HD, HQ, HKV, 0.1)


def test_bad_calls_raise():
    x = _x()
    layer = GroupQueryAttention(HD, HQ, HKV, chunk_size=2)
    with pytest.raises(ValueError, match="chunk_size"):
        layer(x, x, return_attention_scores=True)
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x, x, cache_update_index=0)
    with pytest.raises(ValueError, match="query"):
        GroupQueryAttention(HD, HQ, HKV)(x[0], x[0])
