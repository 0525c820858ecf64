"""Greedy and beam search: equalities, optimality properties, tf.function, shapes, errors."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_attention.decoding import beam_search, expand_to_beams, greedy_search, length_penalty
from tests.layer_checks import tensorflow_only

# These run TensorFlow ops whatever Keras' backend is, so a rerun on JAX or PyTorch repeats
# the TensorFlow run; the keras.ops samplers (test_samplers.py) are what runs per backend.
pytestmark = tensorflow_only("greedy_search and beam_search are TensorFlow graph ops")

END = 0


def make_step(seed, vocab=6, hidden=8, source=5, sharpness=2.0):
    """A small random recurrent language model conditioned on a per-row start vector.

    The state is `{"h": (n, hidden), "steps": (n,)}`; the logits depend on the whole
    history through `h`, so a wrong reordering of the state by beam changes results.
    The attention is a softmax over `source` positions computed from `h`.
    """
    rng = np.random.default_rng(seed)
    emb = tf.constant(rng.normal(size=(vocab, hidden)), tf.float32)
    rec = tf.constant(rng.normal(size=(hidden, hidden)) / np.sqrt(hidden), tf.float32)
    out = tf.constant(rng.normal(size=(hidden, vocab)) * sharpness, tf.float32)
    att = tf.constant(rng.normal(size=(hidden, source)), tf.float32)

    def step(tokens, state):
        h = tf.tanh(tf.gather(emb, tokens) + state["h"] @ rec)
        new_state = {"h": h, "steps": state["steps"] + 1}
        return h @ out, new_state, tf.nn.softmax(h @ att)

    def initial(batch):
        h = tf.constant(rng.normal(size=(batch, hidden)), tf.float32)
        return {"h": h, "steps": tf.zeros([batch], tf.int32)}

    return step, initial


def starts(batch):
    return tf.fill([batch], 1)


def all_hypotheses(step, state, max_length, alpha, vocab):
    """Exhaustive search for ONE item: every sequence that ends with END or reaches max_length."""
    results = []  # (score, tokens)
    prefixes = [((), 0.0)]
    states = state
    tokens = tf.constant([1])
    for t in range(max_length):
        logits, states, _ = step(tokens, states)
        log_probs = tf.nn.log_softmax(logits).numpy()
        next_prefixes, rows, next_tokens = [], [], []
        for i, (prefix, lp) in enumerate(prefixes):
            for y in range(vocab):
                total = lp + log_probs[i, y]
                seq = prefix + (y,)
                if y == END or t == max_length - 1:
                    results.append((total / ((5 + len(seq)) / 6) ** alpha, seq))
                else:
                    next_prefixes.append((seq, total))
                    rows.append(i)
                    next_tokens.append(y)
        if not next_prefixes:
            break
        prefixes = next_prefixes
        states = tf.nest.map_structure(lambda x, r=rows: tf.gather(x, r), states)
        tokens = tf.constant(next_tokens, tf.int32)
    return max(results)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_equals_greedy(seed):
    step, initial = make_step(seed)
    state = initial(5)
    greedy = greedy_search(step, state, starts(5), END, max_length=7)
    beam = beam_search(step, state, starts(5), END, max_length=7, beam_width=1)
    np.testing.assert_array_equal(beam.sequences.numpy(), greedy.sequences.numpy())
    np.testing.assert_array_equal(beam.lengths.numpy(), greedy.lengths.numpy())
    np.testing.assert_allclose(beam.scores.numpy(), greedy.scores.numpy(), rtol=1e-5)
    np.testing.assert_allclose(beam.attention.numpy(), greedy.attention.numpy(), atol=1e-6)


def test_beam_width_one_with_length_penalty_is_never_worse_than_greedy():
    step, initial = make_step(3)
    state = initial(6)
    greedy = greedy_search(step, state, starts(6), END, max_length=7, length_penalty=1.0)
    beam = beam_search(step, state, starts(6), END, 7, beam_width=1, length_penalty=1.0)
    assert np.all(beam.scores.numpy() >= greedy.scores.numpy() - 1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_beam_is_never_worse_than_greedy_under_its_own_score(alpha):
    for seed, width in [(10, 2), (11, 3), (12, 5)]:
        step, initial = make_step(seed, vocab=7, sharpness=1.0)
        state = initial(8)
        greedy = greedy_search(step, state, starts(8), END, 8, length_penalty=alpha)
        beam = beam_search(step, state, starts(8), END, 8, beam_width=width,
                           length_penalty=alpha)
        assert np.all(beam.scores.numpy() >= greedy.scores.numpy() - 1e-5), (seed, width)


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_wide_beam_finds_the_exhaustive_optimum(alpha):
    vocab, max_length, batch = 4, 4, 3
    step, initial = make_step(7, vocab=vocab, sharpness=0.7)
    state = initial(batch)
    beam = beam_search(step, state, starts(batch), END, max_length, beam_width=vocab**max_length,
                       length_penalty=alpha)
    for b in range(batch):
        one = tf.nest.map_structure(lambda x, b=b: x[b : b + 1], state)
        best_score, best_seq = all_hypotheses(step, one, max_length, alpha, vocab)
        length = int(beam.lengths[b])
        assert tuple(beam.sequences[b, :length].numpy()) == best_seq
        np.testing.assert_allclose(float(beam.scores[b]), best_score, rtol=1e-5)
        # Narrow beams cannot do better than the optimum.
        narrow = beam_search(step, one, starts(1), END, max_length, 2, length_penalty=alpha)
        assert float(narrow.scores[0]) <= best_score + 1e-5


def test_scores_are_log_probability_over_length_penalty():
    step, initial = make_step(4)
    state = initial(3)
    alpha = 0.7
    result = beam_search(step, state, starts(3), END, 6, beam_width=3, length_penalty=alpha)
    # Re-score the returned sequences with teacher forcing.
    tokens, total, s = starts(3), np.zeros(3), state
    for t in range(6):
        logits, s, _ = step(tokens, s)
        log_probs = tf.nn.log_softmax(logits).numpy()
        chosen = result.sequences[:, t].numpy()
        live = t < result.lengths.numpy()
        total += np.where(live, log_probs[np.arange(3), chosen], 0.0)
        tokens = tf.constant(chosen, tf.int32)
    expected = total / length_penalty(result.lengths, alpha).numpy()
    np.testing.assert_allclose(result.scores.numpy(), expected, rtol=1e-5)


def test_attention_is_the_chosen_hypothesis_own():
    """Attention at step t is a one-hot of the token fed at t; checks beam reordering."""
    step_rnn, initial = make_step(5, vocab=6)

    def step(tokens, state):
        logits, new_state, _ = step_rnn(tokens, state)
        return logits, new_state, tf.one_hot(tokens, 6)

    state = initial(4)
    result = beam_search(step, state, starts(4), END, 7, beam_width=3)
    att = result.attention.numpy()
    seqs, lengths = result.sequences.numpy(), result.lengths.numpy()
    for b in range(4):
        fed = [1] + list(seqs[b, : lengths[b] - 1])
        np.testing.assert_array_equal(att[b, : lengths[b]].argmax(-1), fed)
        assert np.all(att[b, lengths[b] :] == 0)
        assert np.all(seqs[b, lengths[b] :] == 0)


@pytest.mark.slow
def test_runs_in_tf_function_with_dynamic_batch_and_spatial_attention():
    rng = np.random.default_rng(0)
    table = tf.constant(rng.normal(size=(6, 6)) * 2, tf.float32)

    def step(tokens, state):
        logits = tf.gather(table, tokens) + state["bias"]
        spatial = tf.reshape(tf.nn.softmax(logits[:, :4] * 0 + state["bias"][:, :4]), [-1, 2, 2])
        return logits, {"bias": state["bias"] * 0.5}, spatial

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    def decode(bias):
        batch = tf.shape(bias)[0]
        b = beam_search(step, {"bias": bias}, tf.fill([batch], 1), END, 5, beam_width=3,
                        length_penalty=0.6)
        g = greedy_search(step, {"bias": bias}, tf.fill([batch], 1), END, 5)
        return b.sequences, b.attention, g.sequences, b.scores

    bias = tf.constant(rng.normal(size=(3, 6)), tf.float32)
    seqs, att, greedy, scores = decode(bias)
    assert att.shape == (3, 5, 2, 2)
    eager = beam_search(step, {"bias": bias}, tf.fill([3], 1), END, 5, 3, length_penalty=0.6)
    np.testing.assert_array_equal(seqs.numpy(), eager.sequences.numpy())
    np.testing.assert_allclose(scores.numpy(), eager.scores.numpy(), rtol=1e-5)
    empty = decode(tf.zeros([0, 6]))
    assert empty[0].shape == (0, 5) and empty[1].shape == (0, 5, 2, 2)


def test_without_attention_and_tiny_vocabulary():
    def step(tokens, state):
        return tf.stack([tf.zeros_like(state), state], axis=1), state + 1.0, None

    result = beam_search(step, tf.constant([-1.0, 3.0]), tf.constant([1, 1]), END, 4,
                         beam_width=4)
    assert result.attention is None
    assert result.sequences.shape == (2, 4)
    greedy = greedy_search(step, tf.constant([-1.0, 3.0]), tf.constant([1, 1]), END, 4)
    assert greedy.attention is None
    np.testing.assert_array_equal(greedy.sequences.numpy()[0], [0, 0, 0, 0])
    assert int(greedy.lengths[0]) == 1


def test_max_length_reached_without_end():
    def step(tokens, state):
        return tf.one_hot(tf.fill(tf.shape(tokens), 2), 4) * 5.0, state, None

    for result in (
        greedy_search(step, tf.zeros([2]), tf.constant([1, 1]), END, 3),
        beam_search(step, tf.zeros([2]), tf.constant([1, 1]), END, 3, beam_width=2),
    ):
        np.testing.assert_array_equal(result.sequences.numpy(), [[2, 2, 2], [2, 2, 2]])
        np.testing.assert_array_equal(result.lengths.numpy(), [3, 3])


def test_expand_to_beams_repeats_rows():
    out = expand_to_beams({"a": tf.constant([[1], [2]])}, 3)
    np.testing.assert_array_equal(out["a"].numpy()[:, 0], [1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize(
    "kwargs, name",
    [({"max_length": 0}, "max_length"), ({"beam_width": 0}, "beam_width"),
     ({"length_penalty": -0.5}, "length_penalty"), ({"max_length": 2.5}, "max_length")],
)
def test_bad_arguments_are_named(kwargs, name):
    step, initial = make_step(0)
    args = {"max_length": 4, "beam_width": 2, "length_penalty": 0.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        beam_search(step, initial(1), starts(1), END, **args)
    if name != "beam_width":
        args.pop("beam_width")
        with pytest.raises(ValueError, match=name):
            greedy_search(step, initial(1), starts(1), END, **args)


def test_step_function_contract_errors_are_clear():
    with pytest.raises(ValueError, match="logits, new_state, attention"):
        greedy_search(lambda t, s: (tf.zeros([1, 3]), s), tf.zeros([1]), starts(1), END, 3)


def test_length_penalty_formula():
    for length, alpha in itertools.product([1, 4, 9], [0.0, 0.6, 1.0]):
        assert float(length_penalty(length, alpha)) == pytest.approx(
            (5 + length) ** alpha / 6**alpha
        )
