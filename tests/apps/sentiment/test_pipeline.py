"""Splits, tokenizer and tf.data batches."""

from __future__ import annotations

import numpy as np
import pytest

from apps.sentiment import pipeline


def _split():
    texts = np.array([f"good film {i}".encode() if i % 2 else f"bad plot {i}".encode()
                      for i in range(10)], dtype=object)
    return pipeline.Split(texts, np.array([i % 2 for i in range(10)], dtype=np.int32))


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'imdb'"):
        pipeline.load_splits("imdb", str(tmp_path))


def test_domain_of_the_datasets():
    assert pipeline.domain_of("vader_sentiment") == "movies"
    assert pipeline.domain_of("vader_sentiment/nyt") == "nyt"
    assert pipeline.domain_of("glue/sst2") is None and pipeline.domain_of("imdb_reviews") is None


def test_several_domains_join_with_plus_or_all():
    assert pipeline.domains_of("vader_sentiment/nyt+movies") == ("movies", "nyt")
    assert pipeline.domains_of("vader_sentiment/all") == ("movies", "tweets", "amazon", "nyt")
    for bad in ("vader_sentiment/movies+films", "vader_sentiment/nyt+nyt", "vader_sentiment/"):
        assert pipeline.domains_of(bad) == () and not pipeline.is_dataset(bad)
    assert pipeline.domain_of("vader_sentiment/all") is None
    assert pipeline.is_dataset("vader_sentiment/tweets+amazon") and pipeline.is_dataset("glue/sst2")


def test_multi_domain_splits_join_and_keep_each_test_apart(fixture):
    data_dir = str(fixture["root"] / "data")
    joined = pipeline.load_splits("vader_sentiment/tweets+nyt", data_dir, fixture["sdist"])
    tests = pipeline.domain_tests("vader_sentiment/tweets+nyt", data_dir, fixture["sdist"])
    assert set(tests) == {"tweets", "nyt"}
    assert len(joined["test"]) == sum(len(t) for t in tests.values())
    held_out = pipeline.out_of_domain(data_dir, fixture["sdist"], train_domains=("tweets", "nyt"))
    assert set(held_out) == {"movies", "amazon"}


def test_the_lexicon_baseline_reads_sentiment_words():
    from apps.sentiment import evaluation

    split = pipeline.Split(np.array([b"a wonderful, moving film", b"dull, awful and boring",
                                     "sup\u00e9rbe".encode(), b""], dtype=object),
                           np.array([1, 0, 1, 0], np.int32))
    scores = evaluation.lexicon_baseline(split)
    assert scores["examples"] == 4 and scores["accuracy"] == 0.75  # no lexicon word: negative


def test_make_dataset_batches_ids_and_shuffles_with_the_seed():
    split = _split()
    tokenizer = pipeline.make_tokenizer(split, 20, 4)
    assert {"good", "film", "bad", "plot"} <= set(tokenizer.vocabulary)
    batches = list(pipeline.make_dataset(split, tokenizer, 4).as_numpy_iterator())
    assert [b[0].shape for b in batches] == [(4, 4), (4, 4), (2, 4)]
    labels = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(labels, split.labels)  # not training: in order

    def order(seed):
        ds = pipeline.make_dataset(split, tokenizer, 10, training=True, seed=seed)
        return [tuple(b[0][:, 2]) for b in ds.take(1).as_numpy_iterator()]

    assert order(1) == order(1)
    assert sorted(order(1)[0]) == sorted(order(2)[0])
    assert order(1) != order(2)


def test_split_head_and_take():
    split = _split()
    assert len(split.head(3)) == 3
    taken = split.take([4, 1])
    assert list(taken.texts) == [split.texts[4], split.texts[1]]
    assert list(taken.labels) == [0, 1]
