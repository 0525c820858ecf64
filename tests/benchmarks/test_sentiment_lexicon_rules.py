"""benchmarks/sentiment_lexicon_rules.py on a split made in the test (no dataset)."""

import numpy as np

from apps.sentiment import pipeline
from benchmarks import sentiment_lexicon_rules as rules


def test_score_counts_what_each_arm_gets_right():
    split = pipeline.Split(
        np.array([b"what a good film", b"it was bad", b"seen it :)", b"seen it :(",
                  "a chair"], dtype=object),
        np.array([1, 0, 1, 0, 1], np.int32))
    out = rules.score(split)
    assert out["examples"] == 5 and out["with_emoticon"] == 0.4
    # Without emoticons the last three have no rated word (negative): right on ":(" only.
    assert out["rules"] == 3 / 5
    # With them, ":)" is right too; "a chair" stays unrated.
    assert out["rules_emoticons"] == 4 / 5
    assert 0.0 <= out["vader"] <= 1.0
    table = rules.markdown({"meta": {"command": "python benchmarks/sentiment_lexicon_rules.py",
                                     "machine": {"cpu": "x"}},
                            "rows": [{"domain": "tweets", "split": "test", **out}]})
    assert "| tweets | test | 5 | 40.0% |" in table and "| +20.0 |" in table


def test_product_moves_from_the_model_to_the_lexicon_as_the_weight_grows():
    # The model is right on the first two, wrong (and unsure) on the last two; the lexicon
    # is right on all four but weakly on the first two, which stay the model's.
    probabilities = np.array([[0.1, 0.9], [0.95, 0.05], [0.6, 0.4], [0.45, 0.55]])
    scores = np.array([-0.1, 0.1, 0.9, -0.9])
    labels = np.array([1, 0, 1, 0])
    out = rules.product(probabilities, scores, labels, [0, 1, 100])
    assert out == {"0": 0.5, "1": 1.0, "100": 0.5}
    table = rules.markdown({
        "meta": {"command": "c", "machine": {"cpu": "x"}, "export": "e/1"},
        "rows": [], "product_rows": [{"domain": "amazon", "examples": 4, "vader": out,
                                      "rules_emoticons": out}]})
    assert "| amazon | 4 | vader | 0.5000 | 1.0000 | 0.5000 |" in table
