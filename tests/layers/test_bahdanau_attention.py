"""BahdanauAttention: additive score (plain and weight-normalised) against NumPy references."""

import math

import keras
import numpy as np
import pytest

from keras_attention.layers import BahdanauAttention
from tests import layer_checks
from tests.layers import attention_reference as ref

B, TQ, TK, DQ, DK, DV, UNITS = 2, 3, 5, 4, 6, 7, 8
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def _data():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(B, TQ, DQ)).astype("float32")
    v = rng.normal(size=(B, TK, DV)).astype("float32")
    k = rng.normal(size=(B, TK, DK)).astype("float32")
    return q, v, k


def _reference(layer, q, v, k, mask=None):
    w1, w2, vec = (x.numpy() for x in (layer.key_kernel, layer.query_kernel, layer.score_vector))
    g = b = None
    if layer.normalize:
        g, b = layer.score_scale.numpy(), layer.score_bias.numpy()
    return ref.attention(lambda h_t, h_s: ref.bahdanau_score(h_t, h_s, w1, w2, vec, g, b),
                         q, v, k, mask)


@pytest.mark.parametrize("normalize", [False, True])
def test_shapes_rank3_and_rank2_queries(normalize):
    q, v, k = _data()
    layer = BahdanauAttention(UNITS, normalize=normalize)
    out, w = layer(q, v, k, return_attention_scores=True)
    assert out.shape == (B, TQ, DV) and w.shape == (B, TQ, TK)
    assert layer.compute_output_shape(q.shape, v.shape, k.shape) == (B, TQ, DV)
    step, step_w = layer(q[:, 1], v, k, return_attention_scores=True)
    assert step.shape == (B, DV) and step_w.shape == (B, TK)
    layer_checks.outputs_close((step, step_w), (out[:, 1], w[:, 1]))
    sym, sym_w = BahdanauAttention(UNITS)(
        keras.Input((DQ,)), keras.Input((None, DV)), return_attention_scores=True
    )
    assert tuple(sym.shape) == (None, DV) and tuple(sym_w.shape) == (None, None)


@pytest.mark.parametrize("normalize", [False, True])
def test_matches_numpy_reference(normalize):
    q, v, k = _data()
    layer = BahdanauAttention(UNITS, normalize=normalize)
    layer.build(q.shape, v.shape, k.shape)
    if normalize:  # move g and b off their initial values so both are exercised
        layer.score_scale.assign(1.7)
        layer.score_bias.assign(np.linspace(-1, 1, UNITS).astype("float32"))
    out, w = layer(q, v, k, value_mask=VALUE_MASK, return_attention_scores=True)
    mask = np.broadcast_to(VALUE_MASK[:, None, :], (B, TQ, TK))
    layer_checks.outputs_close((out, w), _reference(layer, q, v, k, mask), atol=1e-5)


def test_weight_norm_initial_values_and_parameters():
    plain = BahdanauAttention(UNITS)
    plain.build((B, TQ, DQ), (B, TK, DV))
    assert [x.name for x in plain.weights] == ["key_kernel", "query_kernel", "score_vector"]
    normed = BahdanauAttention(UNITS, normalize=True)
    normed.build((B, TQ, DQ), (B, TK, DV))
    assert math.isclose(float(normed.score_scale.numpy()), math.sqrt(1 / UNITS), rel_tol=1e-6)
    np.testing.assert_array_equal(normed.score_bias.numpy(), 0.0)
    # Scores are invariant to the norm of v when normalised.
    q, v, _ = _data()
    before = normed(q, v)
    normed.score_vector.assign(normed.score_vector.numpy() * 5.0)
    layer_checks.outputs_close(normed(q, v), before, atol=1e-6)


def test_projected_keys_give_the_same_result():
    q, v, k = _data()
    layer = BahdanauAttention(UNITS, normalize=True)
    with pytest.raises(ValueError, match="project_keys"):
        layer.project_keys(k)
    full = layer(q, v, k, value_mask=VALUE_MASK)
    keys = layer.project_keys(k)
    assert keys.shape == (B, TK, UNITS)
    cached = layer(q, v, k, value_mask=VALUE_MASK, projected_keys=keys)
    layer_checks.outputs_close(cached, full)
    # Step-wise decoding loop over the same projected keys equals the sequence call.
    steps = [layer(q[:, t], v, projected_keys=keys, value_mask=VALUE_MASK) for t in range(TQ)]
    layer_checks.outputs_close(keras.ops.stack(steps, 1), full, atol=1e-6)


def test_keras_masks_equal_explicit_masks():
    ids = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]], "int32")
    q, _, _ = _data()
    embedding = keras.layers.Embedding(10, DV, mask_zero=True)
    layer = BahdanauAttention(UNITS, normalize=True)
    q_in, v_in = keras.Input((TQ, DQ)), keras.Input((TK,), dtype="int32")
    model = keras.Model([q_in, v_in], layer(q_in, embedding(v_in)))
    from_keras_mask = model([q, ids])
    explicit = layer(q, embedding(ids), value_mask=ids != 0)
    listed = layer(q, embedding(ids), mask=[None, ids != 0])
    layer_checks.outputs_close(from_keras_mask, explicit)
    layer_checks.outputs_close(listed, explicit)
    assert not np.allclose(layer(q, embedding.embeddings.numpy()[ids]), explicit)


def test_fully_masked_rows_and_query_mask_give_zeros():
    q, v, k = _data()
    value_mask = VALUE_MASK.copy()
    value_mask[1] = False
    query_mask = np.array([[1, 0, 1], [1, 1, 1]], bool)
    out, w = BahdanauAttention(UNITS)(
        q, v, k, query_mask=query_mask, value_mask=value_mask, return_attention_scores=True
    )
    out, w = keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(w)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(out[0, 1], 0.0)
    assert np.abs(out[0, 0]).sum() > 0


def test_causal_mask():
    q, v, _ = _data()
    q = q[:, :3]
    _, w = BahdanauAttention(UNITS)(q, v[:, :3], use_causal_mask=True, return_attention_scores=True)
    w = keras.ops.convert_to_numpy(w)
    assert np.all(w[:, np.triu(np.ones((3, 3), bool), k=1)] == 0.0)
    np.testing.assert_allclose(w[:, 0, 0], 1.0, atol=1e-6)


def test_xla_matches_eager():
    q, v, k = _data()
    layer = BahdanauAttention(UNITS, normalize=True)
    layer_checks.runs_under_xla(
        lambda q, v, k, m: layer(q, v, k, value_mask=m, return_attention_scores=True),
        q, v, k, VALUE_MASK,
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_layer_checks(normalize, tmp_path):
    q, v, _ = _data()
    layer_checks.run_layer_test(
        BahdanauAttention,
        dict(units=UNITS, normalize=normalize, dropout=0.2, seed=3),
        (q, v),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(B, TQ, DV),
        expected_num_trainable_weights=5 if normalize else 3,
        expected_num_seed_generators=1,
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"units": None}, "units"),
        ({"units": 3.0}, "units"),
        ({"units": 4, "normalize": "yes"}, "normalize"),
        ({"units": 4, "dropout": -0.1}, "dropout"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BahdanauAttention(**kwargs)


def test_call_errors_name_the_argument():
    q, v, _ = _data()
    with pytest.raises(ValueError, match="query"):
        BahdanauAttention(UNITS)(q[None], v)
    with pytest.raises(ValueError, match="use_causal_mask"):
        BahdanauAttention(UNITS)(q[:, 0], v, use_causal_mask=True)
