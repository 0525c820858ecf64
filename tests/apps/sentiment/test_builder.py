"""The `vader_sentiment` builder on the fixture archive: splits, labels, metadata, parsing."""

from __future__ import annotations

import os

import pytest
import tensorflow_datasets as tfds

from apps.sentiment import builder, pipeline
from tests.apps.sentiment import fixture_archive
from tests.apps.sentiment.fixtures import kept


def test_builder_splits_labels_and_metadata(fixture, tmp_path):
    table = fixture["tables"]["movies"]
    kept_rows = kept(table)
    data_dir = str(tmp_path / "data")
    prepared = pipeline.vader_builder("movies", data_dir, fixture["sdist"])
    # Prepared once; tfds.load finds it by name like any tfds dataset.
    ds = tfds.load("vader_sentiment/movies", data_dir=data_dir,
                   download=False, split=["train", "validation", "test"])
    seen = {}
    for split, part in zip(("train", "validation", "test"), ds, strict=True):
        for ex in tfds.as_numpy(part):
            key = ex["id"].decode()
            assert key not in seen, f"{key} is in two splits"
            seen[key] = (split, int(ex["label"]), ex["text"].decode(), float(ex["mean_rating"]))
    expected = {i: (m, t) for i, m, t in kept_rows}
    assert set(seen) == set(expected)  # near-neutral sentences dropped, nothing else
    for key, (split, label, text, mean) in seen.items():
        assert label == int(expected[key][0] > 0)
        assert text == expected[key][1]  # CRLF stripped, UTF-8 (café) intact
        assert mean == pytest.approx(expected[key][0], abs=1e-5)
        assert split == builder.split_of("movies", key)
    counts = {s: sum(v[0] == s for v in seen.values()) for s in ("train", "validation", "test")}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0

    meta = prepared.info.metadata
    assert meta["sentences"] == len(table) and meta["kept"] == len(kept_rows)
    assert meta["positive"] == sum(m > 0 for _, m, _ in kept_rows)
    assert meta["split_sizes"] == counts
    assert meta["archive_found_by"] == "archive argument"
    # Built once: the second call reads the verified cache.
    again = pipeline.vader_builder("movies", data_dir, fixture["sdist"])
    assert again.info.metadata["split_sizes"] == counts


def test_split_of_is_a_stable_function_of_the_sentence():
    ids = [str(i) for i in range(2000)]
    first = [builder.split_of("movies", i) for i in ids]
    assert first == [builder.split_of("movies", i) for i in reversed(ids)][::-1]
    share = {s: first.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert 0.76 < share["train"] < 0.84 and 0.07 < share["test"] < 0.13
    # Another domain's sentence "1" is a different item.
    assert [builder.split_of("tweets", i) for i in ids] != first


def test_inner_tarball_and_sdist_read_the_same(fixture):
    for domain, filename in fixture_archive.FILES.items():
        a = builder.read_ground_truth(fixture["sdist"], filename)
        b = builder.read_ground_truth(fixture["inner"], filename)
        assert a == b == [(i, m, t) for i, m, t in fixture["tables"][domain]]


def test_a_wheel_or_other_archive_is_a_clear_error(tmp_path):
    import tarfile

    other = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(__file__, arcname="vaderSentiment/vaderSentiment.py")
    with pytest.raises(ValueError, match="not the wheel"):
        builder.read_ground_truth(str(other), fixture_archive.FILES["movies"])


def test_manual_dir_is_used(fixture, tmp_path, monkeypatch):
    monkeypatch.delenv("VADER_SENTIMENT_ARCHIVE", raising=False)
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    os.link(fixture["sdist"], manual / "vaderSentiment-3.3.2.tar.gz")
    prepared = pipeline.vader_builder("nyt", str(tmp_path))
    assert prepared.info.metadata["archive_found_by"] == "manual dir"
    assert prepared.info.splits.total_num_examples == len(kept(fixture["tables"]["nyt"]))
