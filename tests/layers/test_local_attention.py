"""LocalAttention: local-m / local-p (Luong 2015 §3.2) against a NumPy reference."""

import keras
import numpy as np
import pytest

from keras_attention.layers import LocalAttention
from tests import layer_checks
from tests.layers import attention_reference as ref

B, TQ, TK, D = 2, 4, 7, 4
VALUE_MASK = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)


def _data(t_q=TQ):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(B, t_q, D)).astype("float32")
    v = rng.normal(size=(B, TK, D)).astype("float32")
    return q, v


def _reference(layer, q, v, positions=None, value_mask=None):
    w = None if layer.score_kernel is None else layer.score_kernel.numpy()
    vec = None if layer.score_vector is None else layer.score_vector.numpy()
    wp = vp = None
    if layer.mode == "local_p":
        wp, vp = layer.position_kernel.numpy(), layer.position_vector.numpy()
    lengths = None if value_mask is None else value_mask.sum(-1)
    return ref.local_attention(
        lambda h_t, h_s: ref.luong_score(layer.score, h_t, h_s, w, vec),
        q, v, layer.window, layer.mode, positions=positions, lengths=lengths,
        wp=wp, vp=vp, value_mask=value_mask,
    )


@pytest.mark.parametrize("mode", ["local_m", "local_p"])
def test_shapes_rank3_and_rank2_queries(mode):
    q, v = _data()
    layer = LocalAttention(window=2, mode=mode, score="general")
    out, w = layer(q, v, return_attention_scores=True)
    assert out.shape == (B, TQ, D) and w.shape == (B, TQ, TK)
    assert layer.compute_output_shape(q.shape, v.shape) == (B, TQ, D)
    step, step_w = layer(q[:, 2], v, positions=np.array([2, 2]), return_attention_scores=True)
    assert step.shape == (B, D) and step_w.shape == (B, TK)
    layer_checks.outputs_close((step, step_w), (out[:, 2], w[:, 2]))
    sym = LocalAttention(window=1, mode=mode)(keras.Input((D,)), keras.Input((None, D)))
    assert tuple(sym.shape) == (None, D)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
@pytest.mark.parametrize("mode", ["local_m", "local_p"])
def test_matches_numpy_reference(mode, score):
    q, v = _data()
    layer = LocalAttention(window=2, mode=mode, score=score, units=3 if score == "concat" else None)
    out, w = layer(q, v, value_mask=VALUE_MASK, return_attention_scores=True)
    positions = np.broadcast_to(np.arange(TQ), (B, TQ))
    expected = _reference(layer, q, v, positions, VALUE_MASK)
    layer_checks.outputs_close((out, w), expected, atol=1e-5)


def test_window_and_gaussian_follow_the_paper():
    q, v = _data()
    local_m = LocalAttention(window=1, mode="local_m")
    _, w = local_m(q, v, positions=np.array([[0, 2, 3, 6], [1, 1, 5, 6]]),
                   return_attention_scores=True)
    w = keras.ops.convert_to_numpy(w)
    support = w > 0
    np.testing.assert_array_equal(support[0, 0], [1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(support[1, 2], [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)  # local-m: softmax in the window
    local_p = LocalAttention(window=2, mode="local_p")
    _, wp = local_p(q, v, return_attention_scores=True)
    wp = keras.ops.convert_to_numpy(wp)
    # Gaussian multiplies the softmax output without renormalising (Luong eq. 10).
    assert np.all(wp.sum(-1) < 1.0) and np.all(wp.sum(-1) > 0.0)
    assert np.all((wp > 0).sum(-1) <= 2 * 2 + 1)


def test_source_length_comes_from_value_mask():
    q, v = _data()
    layer = LocalAttention(window=2, mode="local_p")
    masked = layer(q, v, value_mask=VALUE_MASK)
    # Batch row 0 has S = 5, so p_t and the result differ from S = T_k.
    layer_checks.outputs_close(masked, _reference(layer, q, v, value_mask=VALUE_MASK)[0])
    unmasked = keras.ops.convert_to_numpy(layer(q, v))
    assert not np.allclose(unmasked[0], keras.ops.convert_to_numpy(masked)[0])
    layer_checks.outputs_close(unmasked[1], masked[1])


@pytest.mark.parametrize("mode", ["local_m", "local_p"])
def test_step_wise_decoding_equals_sequence(mode):
    q, v = _data()
    layer = LocalAttention(window=1, mode=mode, score="concat")
    sequence = layer(q, v, value_mask=VALUE_MASK)
    steps = [
        layer(q[:, t], v, value_mask=VALUE_MASK, positions=np.full((B,), t)) for t in range(TQ)
    ]
    layer_checks.outputs_close(keras.ops.stack(steps, 1), sequence, atol=1e-6)


def test_positions_forms_agree():
    q, v = _data()
    layer = LocalAttention(window=1, mode="local_m")
    start = np.array([1, 3])
    offset = layer(q, v, positions=start)
    explicit = layer(q, v, positions=start[:, None] + np.arange(TQ)[None])
    layer_checks.outputs_close(offset, explicit)
    layer_checks.outputs_close(layer(q, v, positions=0), layer(q, v))


def test_keras_masks_equal_explicit_masks():
    ids = np.array([[3, 1, 4, 1, 5, 0, 0], [2, 7, 1, 8, 2, 8, 1]], "int32")
    q, _ = _data()
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    layer = LocalAttention(window=2, mode="local_p", score="general")
    q_in, v_in = keras.Input((TQ, D)), keras.Input((TK,), dtype="int32")
    model = keras.Model([q_in, v_in], layer(q_in, embedding(v_in)))
    explicit = layer(q, embedding(ids), value_mask=ids != 0)
    layer_checks.outputs_close(model([q, ids]), explicit)
    layer_checks.outputs_close(layer(q, embedding(ids), mask=[None, ids != 0]), explicit)


def test_fully_masked_rows_give_zeros():
    q, v = _data()
    value_mask = VALUE_MASK.copy()
    value_mask[0] = False
    for mode in ("local_m", "local_p"):
        out, w = LocalAttention(window=1, mode=mode)(
            q, v, value_mask=value_mask, return_attention_scores=True
        )
        out, w = keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(w)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
        np.testing.assert_array_equal(out[0], 0.0)
        np.testing.assert_array_equal(w[0], 0.0)


def test_causal_mask_combines_with_window():
    q, v = _data()
    _, w = LocalAttention(window=2, mode="local_m")(
        q, v, use_causal_mask=True, return_attention_scores=True
    )
    w = keras.ops.convert_to_numpy(w)
    assert np.all(w[:, np.triu(np.ones((TQ, TK), bool), k=1)] == 0.0)
    np.testing.assert_allclose(w[:, 0, 0], 1.0, atol=1e-6)


def test_xla_matches_eager():
    q, v = _data()
    layer = LocalAttention(window=2, mode="local_p", score="general")
    layer_checks.runs_under_xla(
        lambda q, v, m: layer(q, v, value_mask=m, return_attention_scores=True), q, v, VALUE_MASK
    )


def _model(**kwargs):
    q_in, v_in = keras.Input((TQ, D)), keras.Input((TK, D))
    return keras.Model([q_in, v_in], LocalAttention(**kwargs)(q_in, v_in))


def test_training_step_reaches_the_position_network():
    q, v = _data()
    model = _model(window=2, mode="local_p", score="general")
    layer = model.layers[-1]
    before = layer.position_kernel.numpy().copy()
    layer_checks.one_training_step_changes_weights(model, [q, v], np.ones((B, TQ, D), "float32"))
    assert not np.allclose(before, layer.position_kernel.numpy())  # gradient via the Gaussian


@pytest.mark.parametrize(
    "kwargs, num_weights",
    [
        (dict(window=2, mode="local_p", score="concat", units=3), 4),
        (dict(window=1, mode="local_m", score="general"), 1),
    ],
)
def test_layer_checks(kwargs, num_weights, tmp_path):
    q, v = _data()
    layer_checks.run_layer_test(
        LocalAttention,
        dict(kwargs, dropout=0.1, seed=5),
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
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": None}, "window"),
        ({"window": 2, "mode": "local"}, "mode"),
        ({"window": 2, "score": "additive"}, "score"),
        ({"window": 2, "mode": "local_m", "units": 4}, "units"),
        ({"window": 2, "score": "concat", "units": -1}, "units"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LocalAttention(**kwargs)


def test_call_errors_name_the_argument():
    q, v = _data()
    with pytest.raises(ValueError, match="query"):
        LocalAttention(window=1)(q[None], v)
    with pytest.raises(ValueError, match=r"`query` \(3\).*`key` \(4\)"):
        LocalAttention(window=1, mode="local_m")(q[..., :3], v)
    with pytest.raises(ValueError, match="positions"):
        LocalAttention(window=1, mode="local_m")(q, v, positions=np.zeros((B, TQ, 1)))
