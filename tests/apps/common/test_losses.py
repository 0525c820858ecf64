"""The shared token loss and accuracy (translation, captioning): values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from apps.common import losses


def _log_probs(seed=0, shape=(2, 3, 7)):
    logits = np.random.default_rng(seed).normal(size=shape).astype("float32")
    return tf.nn.log_softmax(tf.constant(logits))


def test_smoothed_loss_and_its_gradient_are_the_closed_forms():
    log_probs = _log_probs()
    labels = tf.constant([[1, 6, 0], [3, 0, 0]])
    epsilon, vocab = 0.1, 7
    loss = losses.masked_cross_entropy(epsilon, log_probabilities=True)
    with tf.GradientTape() as tape:
        tape.watch(log_probs)
        value = loss(labels, log_probs)
    grad = tape.gradient(value, log_probs).numpy()
    lp = log_probs.numpy()
    tokens = [(0, 0, 1), (0, 1, 6), (1, 0, 3)]
    expected = np.mean([-(1 - epsilon) * lp[b, t, y] - epsilon * lp[b, t].mean()
                        for b, t, y in tokens])
    assert float(value) == pytest.approx(expected, rel=1e-5)
    # d loss / d log p(v) = -q_v / tokens, q = (1-ε) onehot(y) + ε/V; 0 at padding.
    want = np.zeros_like(lp)
    for b, t, y in tokens:
        want[b, t] = -epsilon / vocab / len(tokens)
        want[b, t, y] -= (1 - epsilon) / len(tokens)
    np.testing.assert_allclose(grad, want, atol=1e-7)


def test_loss_from_logits_is_sparse_cross_entropy_and_zero_without_tokens():
    logits = tf.constant(np.random.default_rng(1).normal(size=(2, 4, 5)), tf.float32)
    labels = tf.constant([[2, 4, 1, 0], [1, 0, 0, 0]])
    value = float(losses.masked_cross_entropy()(labels, logits))
    full = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    assert value == pytest.approx(float(tf.reduce_mean(tf.boolean_mask(full, labels != 0))),
                                  rel=1e-5)
    assert float(losses.masked_cross_entropy(0.2)(tf.zeros((2, 4), tf.int32), logits)) == 0.0


def test_accuracy_counts_labels_scored_highest_and_skips_padding():
    scores = np.full((2, 3, 4), -1.0, "float32")
    scores[0, 0, 2] = scores[0, 1, 3] = scores[1, 0, 1] = 2.0  # right, wrong, right
    scores[0, 2, 1] = 5.0  # a padding position, whatever it predicts
    labels = tf.constant([[2, 1, 0], [1, 0, 0]])
    assert float(losses.masked_accuracy(labels, tf.constant(scores))) == pytest.approx(2 / 3)
    # On random scores it agrees with argmax.
    rng = np.random.default_rng(2)
    random_scores = tf.constant(rng.normal(size=(4, 9, 11)), tf.float32)
    random_labels = tf.constant(rng.integers(1, 11, (4, 9)))
    argmax = np.mean(np.argmax(random_scores.numpy(), -1) == random_labels.numpy())
    assert float(losses.masked_accuracy(random_labels, random_scores)) == pytest.approx(argmax)
