"""Tests of PointerGenerator against See et al. (2017), eqs. 8-9, written out in numpy."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import PointerGenerator


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference(layer, logits, attention, ids, features):
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    gate = 1.0 / (1.0 + np.exp(-(features @ kernel + bias)))  # (..., 1)
    copy = np.zeros_like(logits)
    if logits.ndim == 2:
        for b in range(logits.shape[0]):
            for i, token in enumerate(ids[b]):
                copy[b, token] += attention[b, i]
    else:
        for b in range(logits.shape[0]):
            for t in range(logits.shape[1]):
                for i, token in enumerate(ids[b]):
                    copy[b, t, token] += attention[b, t, i]
    return np.log(gate * _softmax(logits) + (1 - gate) * copy + layer.epsilon), gate[..., 0]


@pytest.mark.parametrize("step_wise", [True, False])
def test_matches_the_equations_step_wise_and_over_a_sequence(step_wise):
    rng = np.random.default_rng(0)
    vocab, t_in = 11, 4
    shape = (3,) if step_wise else (3, 5)
    logits = rng.normal(size=(*shape, vocab)).astype("float32")
    attention = _softmax(rng.normal(size=(*shape, t_in))).astype("float32")
    ids = np.array([[4, 4, 9, 0], [1, 2, 3, 10], [7, 8, 7, 8]], "int32")
    features = rng.normal(size=(*shape, 6)).astype("float32")
    layer = PointerGenerator(bias_initializer="ones")
    log_p, gate = layer(logits, attention, ids, features, return_gate=True)
    expected, expected_gate = _reference(layer, logits, attention, ids, features)
    np.testing.assert_allclose(ops.convert_to_numpy(log_p), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(gate), expected_gate, rtol=1e-5, atol=1e-6)
    # A distribution: log_softmax leaves it unchanged (so from_logits losses take it).
    np.testing.assert_allclose(np.exp(expected).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(ops.log_softmax(log_p, axis=-1)),
                               ops.convert_to_numpy(log_p), atol=1e-5)


def test_a_token_the_softmax_does_not_know_is_copied_through_attention():
    vocab = 20
    logits = np.full((1, vocab), -30.0, "float32")
    logits[0, 3] = 30.0  # The decoder's softmax says token 3.
    attention = np.array([[0.0, 1.0, 0.0]], "float32")  # All attention on the source's 17.
    ids = np.array([[5, 17, 0]], "int32")
    # A gate pushed to copying: p_gen ~ 0.
    layer = PointerGenerator(kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(-20.0))
    log_p = ops.convert_to_numpy(layer(logits, attention, ids, np.ones((1, 4), "float32")))
    assert log_p[0].argmax() == 17 and np.exp(log_p[0, 17]) > 0.99
    assert np.isfinite(log_p).all()  # epsilon: tokens with probability 0 stay finite


def test_trains_the_gate_and_round_trips_through_a_saved_model_file(tmp_path):
    vocab, t_in, dim = 9, 3, 4
    logits_in = keras.Input((vocab,))
    attention_in = keras.Input((t_in,))
    ids_in = keras.Input((t_in,), dtype="int32")
    features_in = keras.Input((dim,))
    out = PointerGenerator(name="pointer")(logits_in, attention_in, ids_in, features_in)
    model = keras.Model([logits_in, attention_in, ids_in, features_in], out)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(8, vocab)).astype("float32"),
         _softmax(rng.normal(size=(8, t_in))).astype("float32"),
         rng.integers(1, vocab, size=(8, t_in)).astype("int32"),
         rng.normal(size=(8, dim)).astype("float32")]
    y = x[2][np.arange(8), x[1].argmax(-1)]  # The most attended source token.
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    path = str(tmp_path / "pointer.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)),
                               atol=1e-6)
    assert loaded.get_layer("pointer").get_config()["epsilon"] == 1e-9


def test_source_ids_outside_the_vocabulary_copy_nothing():
    logits = np.zeros((2, 5), "float32")
    attention = np.array([[0.5, 0.5], [1.0, 0.0]], "float32")
    ids = np.array([[7, 1], [-1, 2]], "int32")  # 7 and -1: not in a 5-token vocabulary
    layer = PointerGenerator(kernel_initializer="zeros")  # p_gen = 0.5
    p = np.exp(ops.convert_to_numpy(layer(logits, attention, ids, np.ones((2, 3), "float32"))))
    # Row 0 copies token 1 only (its weights renormalized); row 1 has nothing to copy
    # (p_gen = 1 there) and nothing leaks from it into row 0.
    np.testing.assert_allclose(p[0], 0.1 + np.array([0, 0.5, 0, 0, 0]), atol=1e-6)
    np.testing.assert_allclose(p[1], np.full(5, 0.2), atol=1e-6)
    # Weights summing to less than 1 (local-p attention) are rescaled: still a distribution.
    p = np.exp(ops.convert_to_numpy(layer(logits, attention * 0.3, ids,
                                          np.ones((2, 3), "float32"))))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)


def test_symbolic_call_gives_the_gate_too():
    log_p, gate = PointerGenerator()(keras.Input((5, 7)), keras.Input((5, 3)),
                                     keras.Input((3,), dtype="int32"), keras.Input((5, 4)),
                                     return_gate=True)
    assert tuple(log_p.shape) == (None, 5, 7) and tuple(gate.shape) == (None, 5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="epsilon"):
        PointerGenerator(epsilon=-1.0)
    with pytest.raises(TypeError):
        PointerGenerator(1e-9)  # keyword-only
    layer = PointerGenerator()
    with pytest.raises(ValueError, match="rank of logits"):
        layer(np.zeros((2, 5), "float32"), np.zeros((2, 1, 3), "float32"),
              np.zeros((2, 3), "int32"), np.zeros((2, 4), "float32"))
