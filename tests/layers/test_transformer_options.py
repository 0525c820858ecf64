"""The Transformer blocks' options: RMS normalisation, grouped-query self-attention and
rotary position embeddings (issue 19, item 3); the defaults stay multi-head + LayerNorm."""

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
from tests import layer_checks

B, T, DIM, HEADS = 2, 5, 8, 4


def _x(shape=(B, T, DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(x):
    return ops.convert_to_numpy(x)


def test_defaults_are_multi_head_attention_and_layer_norm():
    for block in (TransformerEncoderBlock(2, intermediate_dim=6),
                  TransformerDecoderBlock(2, intermediate_dim=6)):
        block.build((None, T, DIM))
        assert type(block.self_attention) is MultiHeadAttention
        assert type(block.self_attention_layer_norm) is keras.layers.LayerNormalization
        config = block.get_config()
        assert (config["normalization"], config["num_key_value_heads"], config["rotary"]) == (
            "layer", None, False
        )


def test_options_pick_the_sublayers():
    block = TransformerDecoderBlock(
        HEADS, intermediate_dim=6, normalization="rms", num_key_value_heads=2, rotary=True
    )
    block.build((None, T, DIM), (None, 3, DIM))
    attention = block.self_attention
    assert isinstance(attention, GroupQueryAttention)
    assert (attention.num_query_heads, attention.num_key_value_heads) == (HEADS, 2)
    assert attention.rotary_max_wavelength == 10000
    assert type(block.cross_attention) is MultiHeadAttention  # cross-attention unchanged
    norms = [block.self_attention_layer_norm, block.cross_attention_layer_norm,
             block.feedforward_layer_norm]
    assert all(type(n) is keras.layers.RMSNormalization for n in norms)
    assert all(n.epsilon == block.layer_norm_epsilon for n in norms)
    rotary_only = TransformerEncoderBlock(HEADS, intermediate_dim=6, rotary=True)
    rotary_only.build((None, T, DIM))
    assert rotary_only.self_attention.num_key_value_heads == HEADS


def test_gqa_with_as_many_key_value_heads_equals_the_default_block():
    x = _x()
    default = TransformerEncoderBlock(HEADS, intermediate_dim=6)
    grouped = TransformerEncoderBlock(HEADS, intermediate_dim=6, num_key_value_heads=HEADS)
    default.build(x.shape)
    grouped.build(x.shape)
    grouped.set_weights(default.get_weights())  # the same weights, the same shapes
    mask = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)
    layer_checks.outputs_close(
        default(x, padding_mask=mask, use_causal_mask=True, return_attention_scores=True),
        grouped(x, padding_mask=mask, use_causal_mask=True, return_attention_scores=True),
    )


def test_post_norm_rms_output_has_unit_root_mean_square():
    out = _np(TransformerEncoderBlock(HEADS, intermediate_dim=6, normalization="rms")(_x()))
    np.testing.assert_allclose(np.sqrt((out**2).mean(-1)), 1.0, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options, weights",
    [
        (dict(normalization="rms"), 14),  # a scale per norm instead of gamma and beta
        (dict(num_key_value_heads=1, chunk_size=2), 16),
        (dict(rotary=True, num_key_value_heads=2, key_dim=4), 16),
    ],
    ids=["rms", "mqa_chunked", "rotary_gqa"],
)
def test_encoder_options_layer_checks(options, weights, tmp_path):
    layer_checks.run_layer_test(
        TransformerEncoderBlock,
        dict(dict(num_heads=HEADS, intermediate_dim=6, key_dim=3, dropout=0.1, norm_first=True,
                  seed=3), **options),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=weights,
    )


@pytest.mark.slow
def test_decoder_options_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        TransformerDecoderBlock,
        dict(num_heads=HEADS, intermediate_dim=6, dropout=0.1, normalization="rms",
             num_key_value_heads=2, rotary=True, seed=5),
        (_x(), _x((B, 3, DIM), seed=1)),
        tmp_path=tmp_path,
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=8 + 8 + 3 + 4,  # 2 attentions, 3 RMS norms, FFN
    )


@pytest.mark.parametrize("with_encoder", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_gqa_rotary_rms_cached_decoding_equals_full_call(with_encoder, norm_first):
    dec, enc = _x(), _x((B, 3, DIM), seed=1)
    enc = enc if with_encoder else None
    block = TransformerDecoderBlock(
        HEADS, intermediate_dim=6, norm_first=norm_first, normalization="rms",
        num_key_value_heads=2, rotary=True,
    )
    full = block(dec, enc)
    empty = ops.zeros((B, 2, T, 2, DIM // HEADS))  # 2 key/value heads, not 4
    cache, cross, steps = empty, None, []
    for t in range(T):
        y, cache, *rest = block(
            dec[:, t : t + 1], enc, self_attention_cache=cache,
            self_attention_cache_update_index=t, cross_attention_cache=cross,
        )
        cross = rest[0] if rest else None
        steps.append(_np(y))
    assert tuple(cache.shape) == (B, 2, T, 2, DIM // HEADS)
    layer_checks.outputs_close(np.concatenate(steps, 1), full, atol=1e-5)
    # A prefix of 3 in one call, then the rest at position 3 (rotated from there).
    y0, cache, *rest = block(dec[:, :3], enc, self_attention_cache=empty,
                             self_attention_cache_update_index=0)
    y1, *_ = block(dec[:, 3:], enc, self_attention_cache=cache,
                   self_attention_cache_update_index=3,
                   cross_attention_cache=rest[0] if rest else None)
    layer_checks.outputs_close(np.concatenate([_np(y0), _np(y1)], 1), full, atol=1e-5)


def test_rotary_makes_the_encoder_position_aware():
    """Without position information self-attention is permutation-equivariant; with
    rotary embeddings it is not."""
    x = _x()
    perm = np.array([3, 0, 4, 1, 2])
    for rotary, equivariant in ((False, True), (True, False)):
        block = TransformerEncoderBlock(HEADS, intermediate_dim=6, num_key_value_heads=2,
                                        rotary=rotary)
        out, permuted = _np(block(x)), _np(block(x[:, perm]))
        assert np.allclose(out[:, perm], permuted, atol=1e-5) == equivariant


@pytest.mark.slow
def test_decoder_cached_loop_under_xla():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function(jit_compile=True) is the TensorFlow backend's XLA path")
    import tensorflow as tf

    dec = _x()
    block = TransformerDecoderBlock(HEADS, intermediate_dim=6, num_key_value_heads=2,
                                    rotary=True, normalization="rms")
    full = block(dec)

    @tf.function(jit_compile=True)
    def decode(dec):
        def body(i, state):
            outputs, cache = state
            step = ops.slice(dec, (0, i, 0), (B, 1, DIM))
            y, cache = block(step, self_attention_cache=cache,
                             self_attention_cache_update_index=i)
            return ops.slice_update(outputs, (0, i, 0), y), cache

        cache = ops.zeros((B, 2, T, 2, DIM // HEADS))
        return ops.fori_loop(0, T, body, (ops.zeros_like(dec), cache))[0]

    layer_checks.outputs_close(decode(dec), full, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(normalization="batch"), "normalization='batch'"),
        (dict(num_key_value_heads=3), "num_key_value_heads=3"),
        (dict(num_key_value_heads=0), "num_key_value_heads=0"),
        (dict(rotary="yes"), "rotary='yes'"),
        (dict(rotary=True, key_dim=3), "head_dim=3"),
    ],
)
@pytest.mark.parametrize("block_cls", [TransformerEncoderBlock, TransformerDecoderBlock])
def test_bad_options_raise(block_cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        block_cls(HEADS, intermediate_dim=6, **kwargs).build((None, T, DIM))
