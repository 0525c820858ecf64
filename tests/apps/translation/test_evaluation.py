"""Scores by source length."""

from apps.translation import evaluation


def test_source_length_thirds():
    sources = ["a b", "a b c", "a b c d", "a b c d e f", "a b", "a b c d e f g h"]
    buckets, bounds = evaluation.source_length_thirds(sources)
    assert list(buckets) == [0, 1, 1, 2, 0, 2]
    assert bounds[0][0] == 2 and bounds[2][1] == 8
    assert evaluation.source_length_thirds([])[0].shape == (0,)


def test_corpus_scores_are_case_insensitive():
    scores = evaluation.corpus_scores(["Ouvrir le grand fichier rouge"],
                                        ["ouvrir le grand fichier rouge"])
    assert scores["bleu"] > 99 and "case:lc" in scores["bleu_signature"]
    assert evaluation.corpus_scores([], [])["bleu"] == 0.0


def test_translate_all_batches_by_length_and_keeps_the_sentences_order():
    import numpy as np
    import tensorflow as tf

    class Echo:  # a stand-in export: each sentence's "translation" is itself, upper-cased
        subword = True

        def __init__(self):
            self.batches = []

        def translate(self, text):
            words = [len(t.split()) for t in text]
            self.batches.append(words)
            n = len(text)
            return {"translation": tf.constant([t.upper() for t in text]),
                    "attention_weights": tf.constant(
                        np.array(words, "float32")[:, None, None] * np.ones((n, 2, 3), "float32")),
                    "source_tokens": tf.constant([[t, ""] for t in text]),
                    "target_tokens": tf.constant([[t.upper(), ""] for t in text])}

    sentences = ["a b c d e", "a", "a b c", "a b", "a b c d", "x y"]
    module = Echo()
    out = evaluation.translate_all(module, sentences, batch_size=2)
    assert module.batches == [[1, 2], [2, 3], [4, 5]]  # similar lengths share a batch
    assert out["translation"] == [s.upper() for s in sentences]
    assert out["raw_translation"] == out["translation"]
    np.testing.assert_array_equal(out["attention_weights"][:, 0, 0],
                                  [len(s.split()) for s in sentences])
    assert [t.decode() for t in out["source_tokens"][:, 0]] == sentences
