"""In-graph post-processing of the SavedModel: joining tokens and [UNK] replacement."""

import numpy as np
import tensorflow as tf

from apps.translation import export


def test_join_tokens_drops_markers_and_reattaches_punctuation():
    tokens = tf.constant([
        ["[START]", "ouvrir", "l'arrière", "-", "plan", ",", "(", "1", ".", "5", ")", "[END]"],
        ["«", "eject", "»", ":", "a", "/", "b", "[END]", "", "", "", ""],
    ])
    text = [t.decode() for t in export.join_tokens(tokens).numpy()]
    assert text == ["ouvrir l'arrière-plan, (1.5)", "« eject »: a/b"]


def test_unknown_words_take_the_most_attended_source_word():
    target = tf.constant([["zapotèque", ",", "[UNK]", "[END]"], ["[UNK]", "[END]", "", ""]])
    source = tf.constant([["zapotec", ",", "mazaltepec", ""], ["x", "", "", ""]])
    attention = tf.constant([
        [[0.9, 0.1, 0.0, 0.0], [0.1, 0.8, 0.1, 0.0], [0.2, 0.1, 0.7, 0.0], [0, 0, 1.0, 0]],
        np.zeros((4, 4)),  # no attention (seq2seq): left as [UNK]
    ], tf.float32)
    words = export.replace_unknown(target, attention, source)
    assert [w.decode() for w in words.numpy()[0]] == ["zapotèque", ",", "mazaltepec", "[END]"]
    assert words.numpy()[1][0].decode() == "[UNK]"
    assert export.join_tokens(words).numpy()[0].decode() == "zapotèque, mazaltepec"
