"""benchmarks/sentiment_real_reviews.py on sentences made in the test (no dataset, no export)."""

import numpy as np
import pytest

from apps.sentiment import pipeline
from benchmarks import sentiment_real_reviews as real


def _sites():
    return {"amazon": pipeline.Split(np.array([b"Great phone.", b"Junk."], dtype=object),
                                     np.array([1, 0], np.int32)),
            "yelp": pipeline.Split(np.array([b"We left.", b"Loved  the pasta"], dtype=object),
                                   np.array([0, 1], np.int32))}


def test_rows_count_per_site_and_over_all():
    sites = _sites()
    out = real.row("m", {"amazon": [1, 1], "yelp": [0, 1]}, sites)
    assert (out["amazon"], out["yelp"], out["all"], out["examples"]) == (0.5, 1.0, 0.75, 4)
    low, high = out["all_interval"]
    assert low < 0.75 < high and 0.0 <= low and high <= 1.0
    # "We left." has no rated word: positive at >= 0, negative at > 0.
    vader_ge, vader_gt, _ = real.lexicon_rows(sites)
    assert vader_gt["yelp"] > vader_ge["yelp"]
    table = real.markdown({"meta": {"command": "c", "machine": {"cpu": "x"}},
                           "counts": {"amazon": 2, "yelp": 2}, "overlap": 1,
                           "rows": [out]})
    assert "amazon 2, yelp 2; 1 of them in the VADER training corpus" in table
    assert "| m | 0.500 | 1.000 | **0.750** [" in table


def test_overlap_ignores_case_and_spacing_only():
    assert real.overlap(_sites(), [b"great PHONE.", "loved the pasta", b"Junk"]) == 2


def test_wilson_interval_matches_a_known_value():
    low, high = real.wilson_interval(81, 100)
    assert low == pytest.approx(0.7222, abs=1e-3) and high == pytest.approx(0.8749, abs=1e-3)
