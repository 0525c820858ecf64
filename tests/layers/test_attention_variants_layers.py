"""The score variants in the layers (issue 19, item 3): `sliding_window` as the kernel's
band, `soft_cap` and `alibi` in `MultiHeadAttention`, `GroupQueryAttention` and the
Transformer blocks, against the NumPy oracle of tests/test_ops_variants.py, on the
plain and the chunked path and with cached decoding; and GroupQueryAttention's cache
index checks (shared with MultiHeadAttention)."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import (
    GroupQueryAttention,
    MultiHeadAttention,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_attention.ops import _kernel, alibi_slopes
from tests import layer_checks
from tests.test_ops_variants import np_reference

B, T, DIM, HEADS, KV_HEADS, HEAD_DIM = 2, 9, 8, 4, 2, 4
SLOPES = [0.5, 0.1, 0.0, 1.5]


def _x(shape=(B, T, DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(x):
    return ops.convert_to_numpy(x)


def _layer(kind, **kwargs):
    if kind == "mha":
        return MultiHeadAttention(HEADS, HEAD_DIM, **kwargs)
    return GroupQueryAttention(HEAD_DIM, HEADS, KV_HEADS, **kwargs)


def _expected(layer, x, causal, mask=None, window=None, soft_cap=None, slopes=None):
    """The layer's output from its own projections and the oracle's attention."""
    q, k, v = (_np(d(x)) for d in (layer.query_dense, layer.key_dense, layer.value_dense))
    repeats = HEADS // k.shape[2]
    k, v = (np.repeat(a, repeats, axis=2) for a in (k, v))
    heads_first = [np.transpose(a, (0, 2, 1, 3)) for a in (q, k, v)]
    out, _, _ = np_reference(*heads_first, mask=mask, causal=causal, window=window,
                             soft_cap=soft_cap, slopes=slopes)
    context = np.transpose(out, (0, 2, 1, 3)).astype("float32")
    return _np(layer.output_dense(context))


OPTIONS = {
    "window": dict(sliding_window=3),
    "soft_cap": dict(soft_cap=1.5),
    "alibi": dict(alibi=True),
    "alibi_list": dict(alibi=SLOPES),
    "all": dict(sliding_window=4, soft_cap=2.0, alibi=True),
}


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("chunk", [None, 4], ids=["plain", "chunked"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_layer_equals_the_oracle(kind, option, chunk, causal):
    kwargs = OPTIONS[option]
    layer = _layer(kind, chunk_size=chunk, **kwargs)
    x = _x()
    padding = np.ones((B, T), bool)
    padding[1, -2:] = False
    out = layer(x, x, value_mask=padding, use_causal_mask=causal)
    w = kwargs.get("sliding_window")
    alibi = kwargs.get("alibi", False)
    slopes = alibi_slopes(HEADS) if alibi is True else (alibi or None)
    expected = _expected(layer, x, causal, mask=padding,
                         window=None if w is None else w - 1,
                         soft_cap=kwargs.get("soft_cap"), slopes=slopes)
    layer_checks.outputs_close(out, expected, atol=2e-5)


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_sliding_window_is_the_kernels_band_not_a_mask_tensor(kind, monkeypatch):
    """The layer passes `window=(w − 1, w − 1)` to the kernel and no `(T_q, T_k)` mask."""
    seen = []
    attention = _kernel.attention

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return attention(*args, **kwargs)

    monkeypatch.setattr(_kernel, "attention", spy)
    layer = _layer(kind, sliding_window=5, soft_cap=3.0, alibi=SLOPES, chunk_size=4)
    x = _x()
    layer(x, x, use_causal_mask=True)
    (kwargs,) = seen
    assert kwargs["window"] == (4, 4) and kwargs["mask"] is None
    assert kwargs["soft_cap"] == 3.0
    np.testing.assert_allclose(_np(kwargs["alibi_slopes"]), SLOPES)


@pytest.mark.parametrize("chunk", [None, 3], ids=["plain", "chunked"])
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_cached_decoding_equals_the_full_causal_call(kind, chunk):
    layer = _layer(kind, sliding_window=3, soft_cap=2.0, alibi=True, chunk_size=chunk)
    x = _x()
    full = layer(x, x, use_causal_mask=True)
    kv_heads = HEADS if kind == "mha" else KV_HEADS
    cache = ops.zeros((B, 2, T, kv_heads, HEAD_DIM))
    first, cache = layer(x[:, :4], x[:, :4], cache=cache, cache_update_index=0)
    steps = [_np(first)]
    for t in range(4, T):
        out, cache = layer(x[:, t : t + 1], x[:, t : t + 1], cache=cache, cache_update_index=t)
        steps.append(_np(out))
    layer_checks.outputs_close(np.concatenate(steps, 1), full, atol=2e-5)


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_keras_file_round_trip(kind, tmp_path):
    layer = _layer(kind, sliding_window=3, soft_cap=2.5, alibi=SLOPES)
    clone = layer_checks.config_round_trip(layer)
    assert (clone.sliding_window, clone.soft_cap, clone.alibi) == (3, 2.5, SLOPES)
    inputs = keras.Input((T, DIM))
    model = keras.Model(inputs, layer(inputs, inputs, use_causal_mask=True))
    layer_checks.keras_file_round_trip(model, _x(), tmp_path)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(soft_cap=0.0), "soft_cap=0.0"),
        (dict(soft_cap=-1), "soft_cap=-1"),
        (dict(soft_cap=float("inf")), "soft_cap=inf"),
        (dict(soft_cap=True), "soft_cap=True"),
        (dict(soft_cap="2"), "soft_cap='2'"),
        (dict(alibi="yes"), "alibi='yes'"),
        (dict(alibi=None), "alibi=None"),
        (dict(alibi=[0.5, 0.25]), r"alibi=\[0.5, 0.25\]"),
        (dict(alibi=[0.5, 0.25, True, 0.1]), "alibi="),
        (dict(alibi=[0.5, 0.25, float("nan"), 0.1]), "alibi="),
        (dict(sliding_window=0), "sliding_window=0"),
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: _layer("mha", **kw),
        lambda **kw: _layer("gqa", **kw),
        lambda **kw: TransformerEncoderBlock(HEADS, intermediate_dim=6, **kw),
        lambda **kw: TransformerDecoderBlock(HEADS, intermediate_dim=6, **kw),
    ],
    ids=["mha", "gqa", "encoder", "decoder"],
)
def test_bad_values_raise(make, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make(**kwargs)


def test_alibi_slopes_as_an_array_are_a_list_in_the_config():
    layer = _layer("gqa", alibi=np.asarray(SLOPES, "float32"))
    assert layer.get_config()["alibi"] == [float(np.float32(s)) for s in SLOPES]


# ------------------------------------------------------------------ attention_axes
def test_attention_axes_take_soft_cap_and_refuse_alibi():
    """Several attention axes are one flattened sequence: the soft cap applies as on
    rank-3 inputs; ALiBi (like the window) needs positions in one sequence."""
    grid = _x((B, 3, 2, DIM))
    flat = grid.reshape(B, 6, DIM)
    over_axes = MultiHeadAttention(HEADS, HEAD_DIM, attention_axes=(1, 2), soft_cap=1.0)
    plain = MultiHeadAttention(HEADS, HEAD_DIM, soft_cap=1.0)
    over_axes(grid, grid)
    plain(flat, flat)
    plain.set_weights(over_axes.get_weights())
    layer_checks.outputs_close(
        _np(over_axes(grid, grid)).reshape(B, 6, DIM), plain(flat, flat), atol=1e-5
    )
    for option in (dict(alibi=True), dict(sliding_window=2)):
        layer = MultiHeadAttention(HEADS, HEAD_DIM, attention_axes=(1, 2), **option)
        with pytest.raises(ValueError, match=next(iter(option))):
            layer(grid, grid)


# ------------------------------------------------------------- GQA's cache index
@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("index", [T, T - 1, -1])
def test_gqa_cache_update_index_past_the_end_raises(index, as_tensor):
    x = _x()
    layer = _layer("gqa")
    cache = ops.zeros((B, 2, T, KV_HEADS, HEAD_DIM))
    if as_tensor:
        index = ops.convert_to_tensor(index, "int32")
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x[:, :2], x[:, :2], cache=cache, cache_update_index=index)


def test_gqa_symbolic_cache_update_index_past_the_end_leaves_the_cache_and_gives_nan():
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compile_ = tf.function
    elif backend == "jax":
        import jax

        compile_ = jax.jit
    else:
        pytest.skip("a symbolic index needs tf.function or jax.jit")
    x = _x()
    layer = _layer("gqa", alibi=True)
    layer(x, x)
    cache = layer.compute_cache(x)
    step = compile_(
        lambda xs, c, i: layer(xs, xs, cache=c, cache_update_index=i, return_attention_scores=True)
    )
    new = x[:, :2] + 1.0
    out, scores, new_cache = step(new, cache, ops.convert_to_tensor(T - 1, "int32"))
    np.testing.assert_array_equal(_np(new_cache), _np(cache))
    assert np.all(np.isnan(_np(out))) and np.all(np.isnan(_np(scores)))
    out, _, new_cache = step(new, cache, ops.convert_to_tensor(T - 2, "int32"))
    assert np.all(np.isfinite(_np(out)))
    np.testing.assert_allclose(_np(new_cache)[:, :, T - 2 :], _np(layer.compute_cache(new)),
                               atol=1e-6)


# ---------------------------------------------------------------- Transformer blocks
def test_block_defaults_pass_no_options():
    for block in (TransformerEncoderBlock(HEADS, intermediate_dim=6),
                  TransformerDecoderBlock(HEADS, intermediate_dim=6)):
        assert block._attention_options(True) == {} == block._attention_options(False)
        config = block.get_config()
        assert (config["sliding_window"], config["soft_cap"], config["alibi"]) == (
            None, None, False
        )


@pytest.mark.parametrize("gqa", [False, True], ids=["mha", "gqa_rotary"])
def test_block_options_reach_the_self_attention_only(gqa):
    extra = dict(num_key_value_heads=KV_HEADS, rotary=True) if gqa else {}
    block = TransformerDecoderBlock(HEADS, intermediate_dim=6, sliding_window=3,
                                    soft_cap=2.0, alibi=SLOPES, **extra)
    block.build((None, T, DIM), (None, 5, DIM))
    attention = block.self_attention
    assert isinstance(attention, GroupQueryAttention if gqa else MultiHeadAttention)
    assert (attention.sliding_window, attention.soft_cap, attention.alibi) == (3, 2.0, SLOPES)
    cross = block.cross_attention
    assert (cross.sliding_window, cross.soft_cap, cross.alibi) == (None, None, False)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_window_equals_the_band_as_an_attention_mask(norm_first):
    x = _x()
    banded = TransformerEncoderBlock(HEADS, intermediate_dim=6, sliding_window=3,
                                     norm_first=norm_first, chunk_size=4)
    default = TransformerEncoderBlock(HEADS, intermediate_dim=6, norm_first=norm_first)
    banded(x)
    default(x)
    default.set_weights(banded.get_weights())
    i = np.arange(T)
    band = np.broadcast_to(np.abs(i[:, None] - i[None, :]) < 3, (B, T, T))
    layer_checks.outputs_close(banded(x), default(x, attention_mask=band), atol=1e-5)


@pytest.mark.parametrize("gqa", [False, True], ids=["mha", "gqa_rotary"])
def test_decoder_cached_decoding_equals_full_causal_call(gqa):
    extra = dict(num_key_value_heads=KV_HEADS, rotary=True) if gqa else {}
    block = TransformerDecoderBlock(HEADS, intermediate_dim=6, sliding_window=3,
                                    soft_cap=2.0, alibi=True, **extra)
    dec, enc = _x(), _x((B, 5, DIM), seed=1)
    full = _np(block(dec, enc))
    cache = ops.zeros((B, 2, T, KV_HEADS if gqa else HEADS, DIM // HEADS))
    cross = None
    steps = []
    for t in range(T):
        y, cache, cross = block(dec[:, t : t + 1], enc, self_attention_cache=cache,
                                self_attention_cache_update_index=t,
                                cross_attention_cache=cross)
        steps.append(_np(y))
    layer_checks.outputs_close(np.concatenate(steps, 1), full, atol=2e-5)


def test_blocks_keras_file_round_trip(tmp_path):
    inputs = keras.Input((T, DIM))
    x = TransformerEncoderBlock(HEADS, intermediate_dim=6, sliding_window=4, alibi=True)(inputs)
    x = TransformerDecoderBlock(HEADS, intermediate_dim=6, soft_cap=3.0, alibi=SLOPES,
                                num_key_value_heads=KV_HEADS)(x)
    model = keras.Model(inputs, x)
    restored = layer_checks.keras_file_round_trip(model, _x(), tmp_path)
    block = restored.layers[-1]
    assert (block.soft_cap, block.alibi, block.num_key_value_heads) == (3.0, SLOPES, KV_HEADS)
