"""DotProductAttention: Luong scores, pinned to keras.layers.Attention and NumPy references."""

import keras
import numpy as np
import pytest

from keras_attention.layers import DotProductAttention
from tests import layer_checks
from tests.layers import attention_reference as ref

B, TQ, TK, D = 2, 3, 5, 4


def _data(dim_q=D, dim_k=D, dim_v=D, t_q=TQ, t_k=TK):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(B, t_q, dim_q)).astype("float32")
    v = rng.normal(size=(B, t_k, dim_v)).astype("float32")
    k = rng.normal(size=(B, t_k, dim_k)).astype("float32")
    return q, v, k


VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
QUERY_MASK = np.array([[1, 1, 0], [1, 1, 1]], bool)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_shapes_rank3_and_rank2_queries(score):
    q, v, k = _data(dim_v=6)
    layer = DotProductAttention(score=score)
    out, w = layer(q, v, k, return_attention_scores=True)
    assert out.shape == (B, TQ, 6) and w.shape == (B, TQ, TK)
    assert layer.compute_output_shape(q.shape, v.shape, k.shape) == (B, TQ, 6)
    step, step_w = layer(q[:, 0], v, k, return_attention_scores=True)
    assert step.shape == (B, 6) and step_w.shape == (B, TK)
    # One decoder step is the first row of the sequence call.
    layer_checks.outputs_close((step, step_w), (out[:, 0], w[:, 0]))
    np.testing.assert_allclose(keras.ops.sum(w, -1), np.ones((B, TQ)), atol=1e-5)


def test_symbolic_shapes():
    q_in, v_in = keras.Input((None, 8)), keras.Input((7, 5))
    out, w = DotProductAttention(score="general")(q_in, v_in, return_attention_scores=True)
    assert tuple(out.shape) == (None, None, 5) and tuple(w.shape) == (None, None, 7)
    step = DotProductAttention(score="concat", units=3)(keras.Input((8,)), v_in)
    assert tuple(step.shape) == (None, 5)


def test_dot_matches_keras_attention_with_masks():
    q, v, k = _data()
    ours, ours_w = DotProductAttention()(
        q, v, k, query_mask=QUERY_MASK, value_mask=VALUE_MASK, return_attention_scores=True
    )
    theirs, theirs_w = keras.layers.Attention()(
        [q, v, k], mask=[QUERY_MASK, VALUE_MASK], return_attention_scores=True
    )
    layer_checks.outputs_close(ours, theirs)
    # Keras keeps weights for masked queries (their output is zeroed); ours are zero there.
    layer_checks.outputs_close(ours_w[QUERY_MASK], theirs_w[QUERY_MASK])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours_w)[~QUERY_MASK], 0.0)


@pytest.mark.parametrize("t_q", [TK, TQ])
def test_dot_matches_keras_attention_causal(t_q):
    q, v, _ = _data(t_q=t_q)
    ours, ours_w = DotProductAttention()(
        q, v, use_causal_mask=True, value_mask=np.ones((B, TK), bool),
        return_attention_scores=True,
    )
    theirs, theirs_w = keras.layers.Attention()(
        [q, v], use_causal_mask=True, return_attention_scores=True
    )
    layer_checks.outputs_close((ours, ours_w), (theirs, theirs_w))
    upper = np.triu(np.ones((t_q, TK), bool), k=1)
    assert np.all(keras.ops.convert_to_numpy(ours_w)[:, upper] == 0.0)


def test_learned_scale_matches_keras_attention():
    q, v, _ = _data()
    ours_layer = DotProductAttention(use_scale=True)
    theirs_layer = keras.layers.Attention(use_scale=True)
    # Same semantics: a learned scalar multiplying the dot scores, initialised to 1.
    layer_checks.outputs_close(ours_layer(q, v), theirs_layer([q, v]))
    ours_layer.scale_weight.assign(0.37)
    theirs_layer.scale.assign(0.37)
    layer_checks.outputs_close(
        ours_layer(q, v, value_mask=VALUE_MASK), theirs_layer([q, v], mask=[None, VALUE_MASK])
    )
    # `scale` is the initial value of the learned scalar.
    init = DotProductAttention(use_scale=True, scale=0.5)
    init(q, v)
    assert float(init.scale_weight.numpy()) == 0.5


def _reference(layer, score, q, v, k=None, mask=None, scale=1.0):
    w = None if layer.score_kernel is None else layer.score_kernel.numpy()
    vec = None if layer.score_vector is None else layer.score_vector.numpy()
    return ref.attention(
        lambda h_t, h_s: scale * ref.luong_score(score, h_t, h_s, w, vec), q, v, k, mask
    )


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_scores_match_numpy_reference(score):
    q, v, k = _data(dim_q=3 if score != "dot" else D)
    layer = DotProductAttention(score=score, units=6 if score == "concat" else None, scale=0.8)
    out, w = layer(q, v, k, value_mask=VALUE_MASK, return_attention_scores=True)
    mask = np.broadcast_to(VALUE_MASK[:, None, :], (B, TQ, TK))
    ref_out, ref_w = _reference(layer, score, q, v, k, mask, scale=0.8)
    layer_checks.outputs_close((out, w), (ref_out, ref_w), atol=1e-5)
    if score == "concat":
        assert tuple(layer.score_kernel.shape) == (3 + D, 6)


def test_keras_masks_equal_explicit_masks():
    ids = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]], "int32")
    q_ids = np.array([[5, 6, 0], [1, 2, 3]], "int32")
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    layer = DotProductAttention(score="general")
    q_in = keras.Input((TQ,), dtype="int32")
    v_in = keras.Input((TK,), dtype="int32")
    model = keras.Model([q_in, v_in], layer(embedding(q_in), embedding(v_in)))
    from_keras_mask = model([q_ids, ids])
    explicit = layer(embedding(q_ids), embedding(ids), query_mask=q_ids != 0, value_mask=ids != 0)
    listed = layer(embedding(q_ids), embedding(ids), mask=[q_ids != 0, ids != 0])
    layer_checks.outputs_close(from_keras_mask, explicit)
    layer_checks.outputs_close(listed, explicit)
    unmasked = layer(
        keras.ops.convert_to_tensor(embedding.embeddings.numpy()[q_ids]),
        keras.ops.convert_to_tensor(embedding.embeddings.numpy()[ids]),
    )
    assert not np.allclose(unmasked, explicit)  # the masks did something
    # The output carries the query's mask.
    eager = layer(embedding(q_ids), embedding(ids))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(eager._keras_mask), q_ids != 0)
    assert layer.compute_mask(None, [q_ids != 0, ids != 0]) is not None


def test_fully_masked_rows_give_zeros():
    q, v, _ = _data()
    value_mask = VALUE_MASK.copy()
    value_mask[0] = False
    for score in ("dot", "general", "concat"):
        layer = DotProductAttention(score=score)
        out, w = layer(q, v, value_mask=value_mask, return_attention_scores=True)
        out, w = keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(w)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
        np.testing.assert_array_equal(out[0], 0.0)
        np.testing.assert_array_equal(w[0], 0.0)
        assert np.abs(out[1]).sum() > 0
        step = keras.ops.convert_to_numpy(layer(q[:, 0], v, value_mask=value_mask))
        np.testing.assert_array_equal(step[0], 0.0)


def test_attention_mask_rank2_query():
    q, v, _ = _data()
    att = np.array([[1, 0, 1, 0, 1], [0, 0, 0, 0, 1]], bool)
    out, w = DotProductAttention()(q[:, 0], v, attention_mask=att, return_attention_scores=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(w)[~att], 0.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w)[1, 4], 1.0, atol=1e-6)
    layer_checks.outputs_close(out[1], v[1, 4])


def test_dropout_only_in_training():
    q, v, _ = _data()
    layer = DotProductAttention(dropout=0.5)
    plain = DotProductAttention()(q, v)
    layer_checks.outputs_close(layer(q, v, training=False), plain)
    dropped, w = layer(q, v, training=True, return_attention_scores=True)
    assert not np.allclose(dropped, plain)
    np.testing.assert_allclose(keras.ops.sum(w, -1), np.ones((B, TQ)), atol=1e-5)


def test_xla_matches_eager():
    q, v, k = _data()
    layer = DotProductAttention(score="concat", use_scale=True)
    layer_checks.runs_under_xla(
        lambda q, v, k, m: layer(
            q, v, k, value_mask=m, use_causal_mask=True, return_attention_scores=True
        ),
        q, v, k, VALUE_MASK,
    )


@pytest.mark.parametrize(
    "kwargs, num_weights",
    [
        (dict(score="dot", use_scale=True), 1),
        (dict(score="general", use_scale=True), 2),
        (dict(score="concat", units=5, use_scale=True, scale=0.5), 3),
        (dict(score="concat", scale=0.5), 2),
    ],
)
def test_layer_checks(kwargs, num_weights, tmp_path):
    q, v, _ = _data(dim_q=D if kwargs["score"] == "dot" else 3)
    layer_checks.run_layer_test(
        DotProductAttention,
        dict(kwargs, dropout=0.1, seed=1),
        (q, v),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(B, TQ, D),
        expected_num_trainable_weights=num_weights,
        expected_num_seed_generators=1,
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"score": "additive"}, "score"),
        ({"score": "concat", "units": 0}, "units"),
        ({"score": "concat", "units": 2.5}, "units"),
        ({"score": "dot", "units": 4}, "units"),
        ({"dropout": 1.0}, "dropout"),
        ({"scale": "big"}, "scale"),
        ({"use_scale": 1}, "use_scale"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DotProductAttention(**kwargs)


def test_call_errors_name_the_argument():
    q, v, k = _data()
    with pytest.raises(ValueError, match="query"):
        DotProductAttention()(q[None], v)
    with pytest.raises(ValueError, match="value"):
        DotProductAttention()(q, v[:, 0])
    with pytest.raises(ValueError, match=r"score=\"dot\".*`query` \(3\).*`key` \(4\)"):
        DotProductAttention()(q[..., :3], v, k)
    with pytest.raises(ValueError, match="use_causal_mask"):
        DotProductAttention()(q[:, 0], v, use_causal_mask=True)
    with pytest.raises(ValueError, match="query"):
        DotProductAttention()(keras.Input((2, 3, 4)), keras.Input((5, 4)))
