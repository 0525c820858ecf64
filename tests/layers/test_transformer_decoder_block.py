"""Tests of TransformerDecoderBlock: reference, causality, masks and cached decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_attention.layers import TransformerDecoderBlock
from tests import layer_checks
from tests.layers import transformer_reference as ref

B, T_DEC, T_ENC, DIM, HEADS = 2, 5, 6, 8, 2


def _data(seed=0):
    rng = np.random.default_rng(seed)
    dec = rng.normal(size=(B, T_DEC, DIM)).astype("float32")
    enc = rng.normal(size=(B, T_ENC, DIM)).astype("float32")
    return dec, enc


def _block(norm_first=False, with_encoder=True, **kwargs):
    block = TransformerDecoderBlock(HEADS, intermediate_dim=12, norm_first=norm_first, **kwargs)
    block.build((None, T_DEC, DIM), (None, T_ENC, DIM) if with_encoder else None)
    ref.randomise(block)
    return block


def _empty_cache(max_len=T_DEC):
    return ops.zeros((B, 2, max_len, HEADS, DIM // HEADS))


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_reference_post_and_pre_norm(norm_first):
    dec, enc = _data()
    block = _block(norm_first)
    enc_mask = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    out, self_scores, cross_scores = block(
        dec, enc, encoder_padding_mask=enc_mask, return_attention_scores=True
    )
    assert out.shape == (B, T_DEC, DIM)
    assert self_scores.shape == (B, HEADS, T_DEC, T_DEC)
    assert cross_scores.shape == (B, HEADS, T_DEC, T_ENC)
    expected, self_w, cross_w = ref.decoder_block(block, dec, enc, enc_mask)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(self_scores, self_w, atol=1e-5)
    np.testing.assert_allclose(cross_scores, cross_w, atol=1e-5)
    assert np.all(ops.convert_to_numpy(cross_scores)[0, :, :, 4:] == 0)


def test_decoder_only_block_matches_reference():
    dec, _ = _data()
    block = _block(with_encoder=False)
    assert block.cross_attention is None
    out, self_scores = block(dec, return_attention_scores=True)
    expected, self_w, _ = ref.decoder_block(block, dec)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(self_scores, self_w, atol=1e-5)
    with pytest.raises(ValueError, match="without cross-attention"):
        block(dec, dec)


def test_changing_a_future_token_does_not_change_earlier_outputs():
    dec, enc = _data()
    block = _block()
    out = ops.convert_to_numpy(block(dec, enc))
    changed = dec.copy()
    changed[:, 3] = 10.0
    out2 = ops.convert_to_numpy(block(changed, enc))
    np.testing.assert_allclose(out2[:, :3], out[:, :3], atol=1e-5)
    assert not np.allclose(out2[:, 3:], out[:, 3:])
    # Without the causal mask the future leaks in.
    assert not np.allclose(
        block(changed, enc, use_causal_mask=False)[:, :3],
        block(dec, enc, use_causal_mask=False)[:, :3],
    )


def test_padding_masks_and_keras_mask():
    dec, enc = _data()
    block = _block()
    enc_mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6], bool)
    enc2 = enc.copy()
    enc2[0, 3:] = 30.0
    layer_checks.outputs_close(
        block(dec, enc, encoder_padding_mask=enc_mask),
        block(dec, enc2, encoder_padding_mask=enc_mask),
    )
    # Keras mask of the decoder tokens == explicit decoder_padding_mask.
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]])
    embedding = keras.layers.Embedding(10, DIM, mask_zero=True)
    embedded = embedding(tokens)
    mask = tokens != 0
    layer_checks.outputs_close(
        block(embedded, enc), block(ops.convert_to_numpy(embedded), enc, decoder_padding_mask=mask)
    )
    decoder_only = _block(with_encoder=False)
    layer_checks.outputs_close(
        decoder_only(embedded, use_causal_mask=False),
        decoder_only(
            ops.convert_to_numpy(embedded), decoder_padding_mask=mask, use_causal_mask=False
        ),
    )
    # The Keras mask of the encoder output is its padding mask.
    enc_tokens = np.array([[5, 5, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    enc_embedded = embedding(enc_tokens)
    layer_checks.outputs_close(
        block(dec, enc_embedded),
        block(dec, ops.convert_to_numpy(enc_embedded), encoder_padding_mask=enc_tokens != 0),
    )
    # Without causality, padded decoder steps do not change the valid ones.
    h = ops.convert_to_numpy(embedded)
    h2 = h.copy()
    h2[0, 3:] = -7.0
    a = block(h, enc, decoder_padding_mask=mask, use_causal_mask=False)
    b = block(h2, enc, decoder_padding_mask=mask, use_causal_mask=False)
    np.testing.assert_allclose(a[0, :3], b[0, :3], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_token_by_token_cached_decoding_equals_full_call(norm_first):
    dec, enc = _data()
    block = _block(norm_first)
    enc_mask = np.array([[1, 1, 1, 1, 1, 0], [1] * 6], bool)
    full, full_self, full_cross = block(
        dec, enc, encoder_padding_mask=enc_mask, return_attention_scores=True
    )
    cache, cross_cache = _empty_cache(), None
    steps, self_steps, cross_steps = [], [], []
    for t in range(T_DEC):
        y, s, c, cache, cross_cache = block(
            dec[:, t : t + 1],
            enc,
            encoder_padding_mask=enc_mask,
            return_attention_scores=True,
            self_attention_cache=cache,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
        )
        assert y.shape == (B, 1, DIM) and s.shape == (B, HEADS, 1, T_DEC)
        steps.append(y)
        self_steps.append(s)
        cross_steps.append(c)
    layer_checks.outputs_close(ops.concatenate(steps, 1), full, atol=1e-5)
    layer_checks.outputs_close(ops.concatenate(self_steps, 2), full_self, atol=1e-6)
    layer_checks.outputs_close(ops.concatenate(cross_steps, 2), full_cross, atol=1e-6)
    # The cross cache computed on the first step is the encoder's keys and values.
    layer_checks.outputs_close(cross_cache, block.cross_attention.compute_cache(enc))
    # A prefix in one call, then the rest step by step, gives the same.
    y0, cache, cross_cache = block(
        dec[:, :3],
        enc,
        encoder_padding_mask=enc_mask,
        self_attention_cache=_empty_cache(),
        self_attention_cache_update_index=0,
    )
    y1, _, _ = block(
        dec[:, 3:],
        enc,
        encoder_padding_mask=enc_mask,
        self_attention_cache=cache,
        self_attention_cache_update_index=3,
        cross_attention_cache=cross_cache,
    )
    layer_checks.outputs_close(ops.concatenate([y0, y1], 1), full, atol=1e-5)


@layer_checks.tensorflow_only("a tf.function loop with a tensor index")
@pytest.mark.slow
@pytest.mark.parametrize("with_encoder, jit", [(True, True), (False, False)])
def test_cached_decoding_in_a_compiled_loop(with_encoder, jit):
    """keras-hub style: a fori_loop with a tensor index inside a (jit) tf.function."""
    dec, enc = _data()
    block = _block(with_encoder=with_encoder)
    full = block(dec, enc if with_encoder else None)

    @tf.function(jit_compile=jit)
    def decode(dec, enc):
        cross_cache = block.cross_attention.compute_cache(enc) if with_encoder else None

        def body(i, state):
            outputs, cache = state
            step = ops.slice(dec, (0, i, 0), (B, 1, DIM))
            y, cache, *_ = block(
                step,
                self_attention_cache=cache,
                self_attention_cache_update_index=i,
                cross_attention_cache=cross_cache,
            )
            return ops.slice_update(outputs, (0, i, 0), y), cache

        outputs, _ = ops.fori_loop(0, T_DEC, body, (ops.zeros_like(dec), _empty_cache()))
        return outputs

    layer_checks.outputs_close(decode(dec, enc), full, atol=1e-5)


def test_layer_checks(tmp_path):
    layer_checks.run_layer_test(
        TransformerDecoderBlock,
        dict(num_heads=2, intermediate_dim=12, key_dim=3, dropout=0.1, activation="gelu",
             norm_first=True, layer_norm_epsilon=1e-6, kernel_initializer="he_normal",
             bias_initializer="ones", seed=3),
        _data(),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(B, T_DEC, DIM),
        expected_num_trainable_weights=26,
        expected_num_seed_generators=5,  # two attentions' and three residual dropouts
    )


def test_keras_mask_and_scores_through_a_keras_file(tmp_path):
    dec_in = keras.Input((T_DEC,), dtype="int32")
    enc_in = keras.Input((T_ENC, DIM))
    x = keras.layers.Embedding(10, DIM, mask_zero=True)(dec_in)
    x, self_scores, cross_scores = TransformerDecoderBlock(2, intermediate_dim=12)(
        x, enc_in, return_attention_scores=True
    )
    x = TransformerDecoderBlock(2, intermediate_dim=12, norm_first=True)(x, enc_in)
    model = keras.Model([dec_in, enc_in], [x, self_scores, cross_scores])
    _, enc = _data()
    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    layer_checks.keras_file_round_trip(model, [tokens, enc], tmp_path)


def test_mixed_float16_cached_decoding():
    dec, enc = _data()
    keras.config.set_dtype_policy("mixed_float16")
    block = TransformerDecoderBlock(HEADS, intermediate_dim=12)
    full = ops.convert_to_numpy(block(dec, enc)).astype("float32")
    cache = ops.zeros((B, 2, T_DEC, HEADS, DIM // HEADS), dtype="float16")
    cross_cache = None
    for t in range(T_DEC):
        y, cache, cross_cache = block(
            dec[:, t : t + 1],
            enc,
            self_attention_cache=cache,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
        )
        assert {keras.backend.standardize_dtype(t.dtype) for t in (y, cache)} == {"float16"}
        np.testing.assert_allclose(ops.convert_to_numpy(y)[:, 0], full[:, t], atol=2e-2)


def test_runs_under_xla():
    dec, enc = _data()
    block = TransformerDecoderBlock(HEADS, intermediate_dim=12, norm_first=True)
    layer_checks.runs_under_xla(lambda d, e: block(d, e), dec, enc)


def test_dropout_only_while_training():
    dec, enc = _data()
    block = TransformerDecoderBlock(HEADS, intermediate_dim=12, dropout=0.5)
    layer_checks.outputs_close(block(dec, enc), block(dec, enc, training=False))
    assert not np.allclose(block(dec, enc, training=True), block(dec, enc, training=False))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_heads": 0, "intermediate_dim": 4}, "num_heads"),
        ({"num_heads": 2, "intermediate_dim": 0}, "intermediate_dim"),
        ({"num_heads": 2, "intermediate_dim": 4, "dropout": 1.2}, "dropout"),
        ({"num_heads": 2, "intermediate_dim": 4, "key_dim": -3}, "key_dim"),
        ({"num_heads": 2, "intermediate_dim": 4, "layer_norm_epsilon": -1.0}, "layer_norm_epsilon"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        TransformerDecoderBlock(**kwargs)


def test_bad_shapes_and_calls_raise():
    dec, enc = _data()
    with pytest.raises(ValueError, match="num_heads=3"):
        TransformerDecoderBlock(num_heads=3, intermediate_dim=4)(dec, enc)
    with pytest.raises(ValueError, match="decoder_sequence"):
        TransformerDecoderBlock(num_heads=2, intermediate_dim=4)(dec[:, 0], enc)
    with pytest.raises(ValueError, match="encoder_sequence"):
        TransformerDecoderBlock(num_heads=2, intermediate_dim=4)(dec, enc[:, 0])
    block = _block()
    with pytest.raises(ValueError, match="encoder_sequence=None"):
        block(dec)
    with pytest.raises(ValueError, match="self_attention_cache_update_index=None"):
        block(dec, enc, self_attention_cache=_empty_cache())
