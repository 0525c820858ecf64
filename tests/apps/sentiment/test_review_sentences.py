"""The real-review evaluation set, read from an npm tarball made in the test (no network)."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from apps.sentiment import review_sentences


def _tarball(path, files: dict) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            raw = data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return str(path)


def _site(texts_labels):
    return [{"text": t, "class": c} for t, c in texts_labels] + [{"text": "", "class": None}]


def _fixtures(**override):
    files = {review_sentences.MEMBER.format(site=s): _site([(f"{s} was great", 1),
                                                            (f"{s} was awful ", 0)])
             for s in review_sentences.SITES}
    files.update(override)
    return files


def test_reads_every_site_and_drops_the_empty_record(tmp_path):
    path = _tarball(tmp_path / "sentiment-5.0.2.tgz", _fixtures())
    sites = review_sentences.parse(path)
    assert tuple(sites) == review_sentences.SITES
    yelp = sites["yelp"]
    assert list(yelp.texts) == [b"yelp was great", b"yelp was awful"]  # Stripped, UTF-8.
    np.testing.assert_array_equal(yelp.labels, [1, 0])
    # The same through `load`, with the archive named (no fetch).
    assert len(review_sentences.load(str(tmp_path / "data"), archive=path)["imdb"]) == 2


@pytest.mark.parametrize("member, data, message", [
    ("amazon", [{"text": "fine", "class": 2}], "record 0 has class 2"),
    ("imdb", [{"text": 3, "class": 1}], "record 0 is not"),
    ("yelp", {"text": "fine"}, "expected a JSON list"),
    ("yelp", b"[{\"text\": ", "is not UTF-8 JSON"),
    ("amazon", [{"text": "", "class": None}], "holds no labelled sentence"),
])
def test_a_bad_fixture_is_named(tmp_path, member, data, message):
    name = review_sentences.MEMBER.format(site=member)
    path = _tarball(tmp_path / "bad.tgz", _fixtures(**{name: data}))
    with pytest.raises(ValueError, match=message) as err:
        review_sentences.parse(path)
    assert name in str(err.value)


def test_a_wrong_or_corrupt_tarball_is_named(tmp_path):
    files = _fixtures()
    del files[review_sentences.MEMBER.format(site="imdb")]
    with pytest.raises(ValueError, match="has no package/test/fixtures/imdb.json"):
        review_sentences.parse(_tarball(tmp_path / "other.tgz", files))
    corrupt = tmp_path / "corrupt.tgz"
    corrupt.write_bytes(open(_tarball(tmp_path / "ok.tgz", _fixtures()), "rb").read()[:100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        review_sentences.parse(str(corrupt))
