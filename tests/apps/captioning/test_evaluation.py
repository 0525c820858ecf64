"""BLEU against several references, attention correctness, caption words."""

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from apps.captioning import evaluation
from apps.common import boxes


def test_bleu_uses_every_reference_of_each_image():
    references = [["a dog to the left of a cat", "a cat to the right of a dog"],
                  ["a dog, a cat and a key from left to right"]]
    perfect = evaluation.bleu(["a cat to the right of a dog",
                               "a dog, a cat and a key from left to right"], references)
    assert perfect == {f"bleu{n}": pytest.approx(1.0) for n in range(1, 5)}
    hypotheses = ["a cat to the left of a dog", "a key, a cat and a dog from left to right"]
    scores = evaluation.bleu(hypotheses, references)
    for n in range(1, 5):
        streams = [[references[0][0], references[1][0]], [references[0][1], None]]
        expected = BLEU(max_ngram_order=n).corpus_score(hypotheses, streams).score / 100
        assert scores[f"bleu{n}"] == pytest.approx(expected)
    assert scores["bleu1"] > scores["bleu4"] > 0
    with pytest.raises(ValueError, match="reference"):
        evaluation.bleu(["a"], [])


def test_object_positions_find_multi_word_names():
    words = "a red apple to the left of a dog".split()
    assert evaluation.object_positions(words, "red apple") == [1, 2]
    assert evaluation.object_positions(words, "dog") == [8]
    assert evaluation.object_positions(words, "green apple") == []


def test_attention_correctness_against_uniform():
    words = [["a", "dog", "above", "a", "red", "apple"]]
    box_dog = [0.0, 0.0, 0.5, 0.5]  # top-left quarter
    box_apple = [0.5, 0.5, 1.0, 1.0]  # bottom-right quarter
    maps = np.full((1, 6, 4, 4), 1 / 16)
    maps[0, 1] = 0
    maps[0, 1, :2, :2] = 0.25  # "dog": all mass on the dog
    maps[0, 4] = 0
    maps[0, 4, 3, 3] = 1.0  # "red": all mass on the apple
    # "apple" (step 5) stays uniform: a quarter inside.
    result = evaluation.attention_correctness(words, maps, [np.array([box_dog, box_apple])],
                                              [["dog", "red apple"]])
    assert result["words_scored"] == 3
    assert result["attention_in_box"] == pytest.approx((1 + 1 + 0.25) / 3)
    assert result["uniform_in_box"] == pytest.approx(0.25)
    assert result["ratio"] == pytest.approx(3.0)
    assert result["objects_named"] == 1.0
    # Steps 0 ("a", uniform: a quarter on the dog) and 3 ("a", uniform: a quarter on the apple).
    assert result["step_before_in_box"] == pytest.approx(0.25)
    missed = evaluation.attention_correctness([["a", "cat"]], maps[:, :2], [np.array([box_dog])],
                                              [["dog"]])
    assert missed["words_scored"] == 0 and missed["objects_named"] == 0.0
    assert np.isnan(missed["ratio"])


def test_mass_in_box_counts_partial_cells():
    maps = np.zeros((2, 2, 2))
    maps[0, 0, 0] = 1.0
    maps[1] = 0.25
    got = boxes.mass_in_box(maps, [[0.0, 0.0, 0.25, 0.5], [0.0, 0.0, 0.5, 1.0]])
    np.testing.assert_allclose(got, [0.5, 0.5])
    np.testing.assert_allclose(boxes.uniform_in_box([[0.0, 0.0, 0.5, 1.0]]), [0.5])
    with pytest.raises(ValueError, match="same n"):
        boxes.mass_in_box(maps, [[0, 0, 1, 1]])


def test_caption_words_stop_at_end():
    row = [b"a", b"dog", b"above", b"a", b"cat", b"[END]", b"", b""]
    assert evaluation.caption_words(row) == ["a", "dog", "above", "a", "cat"]
    assert evaluation.caption_words([b"[END]", b""]) == []
