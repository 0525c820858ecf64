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
