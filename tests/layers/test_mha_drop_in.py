"""`MultiHeadAttention` as a drop-in for `keras.layers.MultiHeadAttention` (issue 19).

Backend-agnostic: runs on TensorFlow, JAX and torch.
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import MultiHeadAttention

B, T, DIM = 2, 5, 8
TOKENS = np.array([[3, 5, 2, 0, 0], [4, 1, 6, 7, 2]])
KEY_TOKENS = np.array([[1, 2, 3, 4, 0], [5, 6, 0, 0, 0]])


def _x(shape=(B, T, DIM), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _np(x):
    return ops.convert_to_numpy(x)


def _model(cls, layer_kwargs, call_kwargs):
    """Embeddings with `mask_zero` (query/value and key masks) into one attention layer."""
    q_in = keras.Input((T,), dtype="int32")
    k_in = keras.Input((T,), dtype="int32")
    x = keras.layers.Embedding(10, DIM, mask_zero=True)(q_in)
    key = keras.layers.Embedding(10, DIM + 2, mask_zero=True)(k_in)
    out, scores = cls(**layer_kwargs, name="mha")(
        x, x, key, return_attention_scores=True, **call_kwargs
    )
    return keras.Model([q_in, k_in], [out, scores])


DROP_IN = {
    "defaults": ({}, {}),
    "causal_axes_seed_dropout": (
        dict(attention_axes=(1,), seed=3, dropout=0.3), dict(use_causal_mask=True)
    ),
    "negative_axis_value_dim_output_shape": (
        dict(attention_axes=-2, value_dim=3, output_shape=(2, 3), use_bias=False), {}
    ),
    "constraints_regularizers": (
        dict(
            kernel_constraint="max_norm", bias_constraint="non_neg", kernel_regularizer="l2",
            bias_regularizer="l1", activity_regularizer="l2", kernel_initializer="he_normal",
            bias_initializer="ones",
        ),
        dict(use_causal_mask=True),
    ),
    "gate_and_sliding_window": (
        dict(use_gate=True, sliding_window=2), dict(use_causal_mask=True)
    ),
}


@pytest.mark.parametrize("case", sorted(DROP_IN))
def test_same_functional_model_with_keras_class_or_ours(case):
    layer_kwargs, call_kwargs = DROP_IN[case]
    kwargs = dict(num_heads=2, key_dim=4, **layer_kwargs)
    ref = _model(keras.layers.MultiHeadAttention, kwargs, call_kwargs)
    ours = _model(MultiHeadAttention, kwargs, call_kwargs)
    assert [w.shape for w in ours.weights] == [w.shape for w in ref.weights]
    ours.set_weights(ref.get_weights())
    (out, scores), (ref_out, ref_scores) = ours([TOKENS, KEY_TOKENS]), ref([TOKENS, KEY_TOKENS])
    np.testing.assert_allclose(_np(out), _np(ref_out), atol=1e-5)
    np.testing.assert_allclose(_np(scores), _np(ref_scores), atol=1e-6)
    # The key's mask applied too: padded keys of either input get no weight.
    assert np.all(_np(scores)[1, :, :, 2:] == 0)
    assert np.allclose(_np(ours.losses), _np(ref.losses)) and len(ours.losses) == len(ref.losses)


@pytest.mark.parametrize("axes", [None, (1, 2), (2,), (2, 1), -2, (-3, 2)])
def test_attention_axes_of_rank4_inputs_equal_keras(axes):
    q, val = _x((B, 3, 4, DIM)), _x((B, 3, 4, 6), seed=1)
    ref = keras.layers.MultiHeadAttention(2, 4, attention_axes=axes)
    ours = MultiHeadAttention(2, 4, attention_axes=axes)
    ref(q, val)
    ours(q, val)
    ours.set_weights(ref.get_weights())
    out, scores = ours(q, val, return_attention_scores=True)
    ref_out, ref_scores = ref(q, val, return_attention_scores=True)
    assert tuple(scores.shape) == tuple(ref_scores.shape)
    np.testing.assert_allclose(_np(out), _np(ref_out), atol=1e-5)
    np.testing.assert_allclose(_np(scores), _np(ref_scores), atol=1e-6)
    if axes == (1, 2):  # an attention mask over the flattened axes, Keras' layout
        mask = np.random.default_rng(2).random((B, 3, 4, 3, 4)) > 0.3
        mask[..., 0, 0] = True
        got = ours(q, val, attention_mask=mask, return_attention_scores=True)
        want = ref(q, val, attention_mask=mask, return_attention_scores=True)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(_np(a), _np(b), atol=1e-5)
    if axes == (2,):  # axis 1 acts as a batch axis; (B, 3, T_q, T_k) mask
        mask = np.random.default_rng(2).random((B, 3, 4, 4)) > 0.3
        mask[..., 0] = True
        np.testing.assert_allclose(
            _np(ours(q, val, attention_mask=mask)), _np(ref(q, val, attention_mask=mask)),
            atol=1e-5,
        )


def test_query_masked_rows_get_zero_weights_and_differ_from_keras_fused_path_only():
    """Pinned choice: rows with nothing to attend to get zero weights on every path.

    Keras 3.15 gives the same zeros (and the same output) when it computes the
    weights, but averages the values uniformly on its fused path."""
    x = _x()
    query = keras.layers.Embedding(10, DIM, mask_zero=True)
    query.build((B, T))
    ours, ref = MultiHeadAttention(2, 4, bias_initializer="ones"), keras.layers.MultiHeadAttention(
        2, 4, bias_initializer="ones"
    )
    ours(x, x)
    ref(x, x)
    ours.set_weights(ref.get_weights())
    masked = TOKENS == 0  # query rows 3 and 4 of sequence 0

    def call(layer, **kwargs):
        q = query(TOKENS)  # carries the Keras mask
        return layer(q, ops.convert_to_tensor(x), **kwargs)

    out, scores = call(ours, return_attention_scores=True)
    ref_out, ref_scores = call(ref, return_attention_scores=True)
    np.testing.assert_allclose(_np(out), _np(ref_out), atol=1e-5)
    np.testing.assert_allclose(_np(scores), _np(ref_scores), atol=1e-6)
    assert np.all(_np(scores).transpose(0, 2, 1, 3)[masked] == 0)
    # The output of a masked row is the output projection's bias.
    np.testing.assert_allclose(_np(out)[masked], 1.0, atol=1e-6)
    fused_ours, fused_ref = _np(call(ours)), _np(call(ref))
    np.testing.assert_allclose(fused_ours, _np(out), atol=1e-5)
    np.testing.assert_allclose(fused_ours[~masked], fused_ref[~masked], atol=1e-5)
    assert np.all(np.abs(fused_ours[masked] - fused_ref[masked]).max(axis=-1) > 1e-3)


def test_keras_saved_config_constructs_our_layer():
    ref = keras.layers.MultiHeadAttention(
        num_heads=2, key_dim=4, value_dim=3, dropout=0.1, use_bias=False, output_shape=5,
        attention_axes=(1,), kernel_initializer="he_normal", bias_initializer="ones",
        kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2",
        kernel_constraint="unit_norm", bias_constraint="non_neg", seed=7, name="attn",
    )
    x = _x()
    ref(x, x)  # built: Keras then saves the resolved attention axes
    config = json.loads(json.dumps(ref.get_config()))
    ours = MultiHeadAttention.from_config(config)
    ours(x, x)
    ours.set_weights(ref.get_weights())
    np.testing.assert_allclose(_np(ours(x, x)), _np(ref(x, x)), atol=1e-5)
    mine = ours.get_config()
    for name, value in config.items():
        if name != "output_shape":
            assert json.loads(json.dumps(mine[name])) == value, name
    assert tuple(mine["output_shape"]) == (5,)


def test_dot_keras_file_round_trip_with_drop_in_arguments(tmp_path):
    inp = keras.Input((T, DIM))
    layer = MultiHeadAttention(
        2, 4, attention_axes=-2, sliding_window=3, use_gate=True, flash_attention=True,
        kernel_constraint="max_norm", activity_regularizer="l2", seed=1, dropout=0.1,
    )
    model = keras.Model(inp, layer(inp, inp, use_causal_mask=True))
    path = str(tmp_path / "mha.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _x()
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)
    assert loaded.layers[-1].get_config() == layer.get_config()


def test_flash_attention_is_the_exact_memory_efficient_path():
    x = _x()
    plain = MultiHeadAttention(2, 4)
    flash = MultiHeadAttention(2, 4, flash_attention=True)
    plain(x, x)
    flash(x, x)
    flash.set_weights(plain.get_weights())
    np.testing.assert_allclose(
        _np(flash(x, x, use_causal_mask=True)), _np(plain(x, x, use_causal_mask=True)), atol=1e-5
    )
    with pytest.raises(ValueError, match="flash_attention"):
        flash(x, x, return_attention_scores=True)
    with pytest.raises(ValueError, match="flash_attention=False"):
        MultiHeadAttention(2, 4, flash_attention=False, chunk_size=4)
    with pytest.raises(ValueError, match="flash_attention"):
        MultiHeadAttention(2, 4, flash_attention="yes")


def test_cached_decoding_with_sliding_window_equals_full_call():
    x = _x()
    layer = MultiHeadAttention(2, 4, sliding_window=2)
    full = layer(x, x, use_causal_mask=True)
    cache = ops.zeros((B, 2, T, 2, 4))
    steps = []
    for t in range(T):
        out, cache = layer(x[:, t : t + 1], x[:, t : t + 1], cache=cache, cache_update_index=t)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), _np(full), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(attention_axes="time"), "attention_axes"),
        (dict(attention_axes=()), "attention_axes"),
        (dict(sliding_window=0), "sliding_window"),
        (dict(use_gate=1), "use_gate"),
    ],
)
def test_invalid_drop_in_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiHeadAttention(2, 4, **kwargs)


@pytest.mark.parametrize("axes", [0, 2, -1, (1, 1)])
def test_attention_axes_out_of_range_for_rank3_inputs(axes):
    with pytest.raises(ValueError, match="attention_axes"):
        MultiHeadAttention(2, 4, attention_axes=axes)(_x(), _x())


def test_masks_and_cache_need_the_plain_case():
    q = _x((B, 3, 4, DIM))
    layer = MultiHeadAttention(2, 4)
    layer(q, q)
    for kwargs, name in [
        (dict(value_mask=np.ones((B, 3), bool)), "value_mask"),
        (dict(use_causal_mask=True), "use_causal_mask"),
    ]:
        with pytest.raises(ValueError, match=name):
            layer(q, q, **kwargs)
    with pytest.raises(ValueError, match="cache"):
        layer.compute_cache(q)


# ------------------------------------------------------------ validation holes
@pytest.mark.parametrize("name", ["query_mask", "value_mask", "key_mask"])
def test_mask_length_disagreeing_with_its_input_raises(name):
    q, val = _x((B, 4, DIM)), _x((B, 6, DIM))
    mask = np.ones((B, 5), bool)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 5\)"):
        MultiHeadAttention(2, 4)(q, val, val, **{name: mask})


def test_mask_length_with_a_cache_raises():
    x = _x()
    layer = MultiHeadAttention(2, 4)
    cache = ops.zeros((B, 2, 7, 2, 4))
    with pytest.raises(ValueError, match="value_mask"):  # neither 7 nor the 1 new step
        layer(x[:, :1], x[:, :1], value_mask=np.ones((B, 3), bool), cache=cache,
              cache_update_index=0)
    with pytest.raises(ValueError, match="key_mask"):  # cache as is: over its 7 positions
        layer(x, x, key_mask=np.ones((B, T), bool), cache=cache)


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("index", [5, 4, -1])
def test_cache_update_index_past_the_end_raises(index, as_tensor):
    x = _x()
    layer = MultiHeadAttention(2, 4)
    cache = ops.zeros((B, 2, T, 2, 4))
    if as_tensor:
        index = ops.convert_to_tensor(index, "int32")
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x[:, :2], x[:, :2], cache=cache, cache_update_index=index)


def _compiled(fn):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip("a symbolic index needs tf.function or jax.jit")


def test_symbolic_cache_update_index_past_the_end_leaves_the_cache_and_gives_nan():
    x = _x()
    layer = MultiHeadAttention(2, 4)
    layer(x, x)
    cache = layer.compute_cache(x)  # (B, 2, T, 2, 4), every slot filled
    step = _compiled(
        lambda xs, c, i: layer(xs, xs, cache=c, cache_update_index=i, return_attention_scores=True)
    )
    new = x[:, :2] + 1.0
    out, scores, new_cache = step(new, cache, ops.convert_to_tensor(4, "int32"))
    np.testing.assert_array_equal(_np(new_cache), _np(cache))  # no clamped write
    assert np.all(np.isnan(_np(out))) and np.all(np.isnan(_np(scores)))
    out, _, new_cache = step(new, cache, ops.convert_to_tensor(3, "int32"))  # fits
    assert np.all(np.isfinite(_np(out)))
    np.testing.assert_allclose(_np(new_cache)[:, :, 3:], _np(layer.compute_cache(new)), atol=1e-6)
