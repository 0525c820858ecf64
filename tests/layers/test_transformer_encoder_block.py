"""Tests of TransformerEncoderBlock against a NumPy reference, masks and Keras plumbing."""

import keras
import numpy as np
import pytest

from keras_attention.layers import TransformerEncoderBlock
from tests import layer_checks
from tests.layers import transformer_reference as ref


def _x(shape=(2, 5, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_reference_post_and_pre_norm(norm_first):
    x = _x()
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=12, norm_first=norm_first)
    block.build(x.shape)
    ref.randomise(block)
    out, scores = block(x, return_attention_scores=True)
    assert out.shape == (2, 5, 8) and scores.shape == (2, 2, 5, 5)
    expected, weights = ref.encoder_block(block, x)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(scores, weights, atol=1e-5)
    assert block.self_attention.key_dim == 4


def test_sub_layers_have_stable_names():
    block = TransformerEncoderBlock(2, intermediate_dim=6)
    block.build((None, 3, 4))
    names = {w.path.split("/", 1)[1] for w in block.weights}
    assert {
        "self_attention/query/kernel",
        "self_attention/attention_output/bias",
        "self_attention_layer_norm/gamma",
        "feedforward_intermediate_dense/kernel",
        "feedforward_output_dense/bias",
        "feedforward_layer_norm/beta",
    } <= names


def test_padding_does_not_change_valid_outputs_and_keras_mask_is_used():
    tokens = np.array([[4, 2, 7, 0, 0], [1, 3, 5, 6, 9]])
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    block = TransformerEncoderBlock(2, intermediate_dim=12)
    outputs = block(embedded)
    assert outputs._keras_mask is not None  # the mask goes on to the next layer
    model = keras.Model(inputs, [outputs, embedded])
    out, h = model(tokens)
    mask = tokens != 0
    layer_checks.outputs_close(out, block(h, padding_mask=mask))
    # The Keras mask is also used when another tensor argument is passed.
    eager_h = model.layers[1](tokens)
    full = np.ones((2, 5, 5), bool)
    layer_checks.outputs_close(block(eager_h, attention_mask=full), out)
    # Different content at the padded steps leaves the valid outputs as they were.
    h2 = keras.ops.convert_to_numpy(h).copy()
    h2[0, 3:] = 50.0
    np.testing.assert_allclose(block(h2, padding_mask=mask)[0, :3], out[0, :3], atol=1e-5)
    # Valid queries attend to valid keys only (padded query rows: anything finite).
    key_mask = np.broadcast_to(mask[:, None, :], (2, 5, 5)) | ~mask[:, :, None]
    expected, _ = ref.encoder_block(block, keras.ops.convert_to_numpy(h), key_mask)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out)[mask], expected[mask], atol=1e-4)


def test_causal_mask_and_attention_mask():
    x = _x()
    block = TransformerEncoderBlock(2, intermediate_dim=12)
    out, scores = block(x, use_causal_mask=True, return_attention_scores=True)
    assert np.all(np.triu(keras.ops.convert_to_numpy(scores), 1) == 0)
    x2 = x.copy()
    x2[:, 3:] = -x2[:, 3:]
    np.testing.assert_allclose(block(x2, use_causal_mask=True)[:, :3], out[:, :3], atol=1e-5)
    tril = np.tril(np.ones((2, 5, 5), bool))
    layer_checks.outputs_close(out, block(x, attention_mask=tril))


def test_chunked_path_matches():
    x = _x()
    block = TransformerEncoderBlock(2, intermediate_dim=12)
    chunked = TransformerEncoderBlock(2, intermediate_dim=12, chunk_size=2)
    chunked.build(x.shape)
    block.build(x.shape)
    chunked.set_weights(block.get_weights())
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    layer_checks.outputs_close(block(x, padding_mask=mask), chunked(x, padding_mask=mask))


def test_key_dim_overrides_divisibility():
    block = TransformerEncoderBlock(num_heads=3, intermediate_dim=6, key_dim=5)
    out = block(_x((1, 4, 8)))
    assert out.shape == (1, 4, 8) and block.self_attention.key_dim == 5


@pytest.mark.parametrize("chunk", [None, 2])
def test_layer_checks(chunk, tmp_path):
    layer_checks.run_layer_test(
        TransformerEncoderBlock,
        dict(num_heads=2, intermediate_dim=12, key_dim=3, dropout=0.1, activation="gelu",
             norm_first=True, layer_norm_epsilon=1e-6, chunk_size=chunk,
             kernel_initializer="he_normal", bias_initializer="ones", seed=3),
        _x(),
        tmp_path=tmp_path,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(2, 5, 8),
        expected_num_trainable_weights=16,
        expected_num_seed_generators=3,  # the attention's and two residual dropouts
    )


def test_keras_mask_and_scores_through_a_keras_file(tmp_path):
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(10, 8, mask_zero=True)(inputs)
    block = TransformerEncoderBlock(2, intermediate_dim=12, norm_first=True)
    x, scores = block(x, return_attention_scores=True)
    x = TransformerEncoderBlock(2, intermediate_dim=12)(x)
    model = keras.Model(inputs, [x, scores])
    layer_checks.keras_file_round_trip(
        model, np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]]), tmp_path
    )


def test_dropout_only_while_training():
    x = _x()
    block = TransformerEncoderBlock(2, intermediate_dim=12, dropout=0.5)
    layer_checks.outputs_close(block(x), block(x, training=False))
    assert not np.allclose(block(x, training=True), block(x, training=False))


def test_runs_under_xla():
    block = TransformerEncoderBlock(2, intermediate_dim=12)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    layer_checks.runs_under_xla(lambda x: block(x, padding_mask=mask), _x())


def test_initializers_reach_every_sublayer_as_separate_copies():
    block = TransformerEncoderBlock(
        2, intermediate_dim=12, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5),
        bias_initializer="ones",
    )
    block.build((None, 5, 8))
    biases = [w for w in block.weights if w.path.endswith("/bias")]
    assert len(biases) == 6 and all(np.all(w.numpy() == 1.0) for w in biases)
    kernels = [w.numpy() for w in block.weights if w.path.endswith("/kernel")]
    assert len(kernels) == 6 and all(0.3 < k.std() < 0.7 for k in kernels)
    # Copies, not one seeded instance: the same-shape projections differ.
    attention = block.self_attention
    assert not np.allclose(attention.query_dense.kernel.numpy(), attention.key_dense.kernel.numpy())


def test_seed_makes_dropout_reproducible_and_differs_per_sublayer():
    x = _x()
    # Not 7 and 8: Keras' PyTorch backend seeds each draw with seed + counter, so seed 7's
    # second draw is seed 8's first.
    a, b, other = (TransformerEncoderBlock(2, intermediate_dim=12, dropout=0.5, seed=s)
                   for s in (7, 7, 1000))
    for block in (a, b, other):
        block.build(x.shape)
        block.set_weights(a.get_weights())
    layer_checks.outputs_close(a(x, training=True), b(x, training=True), atol=0, rtol=0)
    assert not np.allclose(a(x, training=True), other(x, training=True))
    seeds = [layer.seed for layer in (a.self_attention, a.self_attention_dropout,
                                      a.feedforward_dropout)]
    assert len(set(seeds)) == 3


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_heads": 0, "intermediate_dim": 4}, "num_heads"),
        ({"num_heads": 2, "intermediate_dim": 0}, "intermediate_dim"),
        ({"num_heads": 2, "intermediate_dim": 4, "dropout": 1.2}, "dropout"),
        ({"num_heads": 2, "intermediate_dim": 4, "key_dim": 0}, "key_dim"),
        ({"num_heads": 2, "intermediate_dim": 4, "layer_norm_epsilon": 0}, "layer_norm_epsilon"),
        ({"num_heads": 2, "intermediate_dim": 4, "chunk_size": -1}, "chunk_size"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        TransformerEncoderBlock(**kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="num_heads=3"):
        TransformerEncoderBlock(num_heads=3, intermediate_dim=4)(_x((1, 2, 8)))
    with pytest.raises(ValueError, match="inputs"):
        TransformerEncoderBlock(num_heads=2, intermediate_dim=4)(_x((2, 8)))
