"""`benchmarks/sentiment_compare.py`: configurations' domain records paired by seed."""

import pytest

from benchmarks import sentiment_compare as compare


def _record(accuracy_by_seed, lexicon=0.7):
    """A sentiment_domains record: two held-out runs and the all-four run, per seed."""
    rows = []
    for seed, (movies_out, tweets_out, movies_test) in accuracy_by_seed.items():
        rows += [
            {"run": "without_movies", "seed": seed,
             "scores": {"movies": {"accuracy": movies_out, "lexicon_accuracy": lexicon}}},
            {"run": "without_tweets", "seed": seed,
             "scores": {"tweets": {"accuracy": tweets_out, "lexicon_accuracy": lexicon + 0.2}}},
            {"run": "all", "seed": seed,
             "scores": {"movies": {"accuracy": movies_test, "lexicon_accuracy": lexicon}}},
        ]
    return {"rows": rows, "command": "x"}


def test_arms_are_paired_by_seed_with_means_and_intervals():
    base = _record({1: (0.60, 0.70, 0.80), 2: (0.62, 0.72, 0.80), 3: (0.61, 0.71, 0.79)})
    # Seed 4 has no baseline run: left out everywhere.
    better = _record({1: (0.65, 0.70, 0.81), 2: (0.66, 0.74, 0.80), 3: (0.67, 0.75, 0.80),
                      4: (0.9, 0.9, 0.9)})
    rows = {r["row"]: r for r in compare.compare({"none": base, "new": better}, "none")}
    assert list(rows) == ["movies held out", "tweets held out", "movies test (all four)",
                          compare.HELD_OUT_MEAN, compare.IN_DOMAIN_MEAN]
    movies = rows["movies held out"]
    assert movies["seeds"] == [1, 2, 3] and movies["lexicon"] == pytest.approx(0.7)
    assert movies["arms"]["new"]["mean"] == pytest.approx(0.66)
    paired = movies["arms"]["new"]["vs_baseline"]
    assert paired["mean"] == pytest.approx(0.05) and paired["won"] == 3
    assert paired["low"] > 0  # differences 0.05, 0.04, 0.06
    assert rows["movies held out"]["arms"]["none"]["vs_baseline"]["mean"] == 0.0
    # The held-out mean averages the two held-out domains per seed first.
    held = rows[compare.HELD_OUT_MEAN]
    assert held["arms"]["none"]["values"] == pytest.approx([0.65, 0.67, 0.66])
    assert held["lexicon"] == pytest.approx(0.8)
    markdown = compare.table(list(rows.values()), "none")
    assert "| movies held out | 3 | 0.610 | 0.660 | 0.700 | +5.0 [" in markdown


def test_bad_inputs_are_named():
    base = _record({1: (0.6, 0.7, 0.8)})
    with pytest.raises(ValueError, match="baseline='nope'"):
        compare.compare({"none": base}, "nope")
    twice = _record({1: (0.6, 0.7, 0.8)})
    twice["rows"] += twice["rows"][:1]
    with pytest.raises(ValueError, match="'movies held out' appears twice for seed 1"):
        compare.scores(twice)
