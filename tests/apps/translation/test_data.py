"""The gettext_translations builder (on fixture packages) and the input pipeline."""

import os

import numpy as np
import pytest

from apps.translation import data
from tests.apps.translation import fixtures

SPECIAL_FR = {
    "Save file as %s": "Enregistrer le fichier sous %s",
    "Open {0} now": "Ouvrir {0} maintenant",
    "<b>Bold</b> text here": "<b>Gras</b> texte ici",
    "_Quit the program": "_Quitter le programme",
    "menu label\x04Print the page": "Imprimer la page",
    "One red file\x00%d red files": "Un fichier rouge\x00%d fichiers rouges",
    "Line one\nline two": "Ligne un\nligne deux",
    "Untranslated words": "Untranslated words",
    "Single": "Seul",
    "failed to delete NOTES_MERGE_REF now": "impossible de supprimer NOTES_MERGE_REF maintenant",
    "Use &Drag and drop": "Utiliser &glisser-déposer",
    "Drag & drop files": "Glisser & déposer des fichiers",
    " ".join(["word"] * 25): " ".join(["mot"] * 25),
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("debs")
    synthetic = fixtures.sentence_pairs(80, seed=1)
    fixtures.build_deb(str(root), "fixture-a", "1.0", {
        "fr": {"alpha": {**synthetic, **SPECIAL_FR}},
        "de": {"alpha": {"Open the red file": "Die rote Datei öffnen"}},
        "fr_CA": {"alpha": {"Close all windows": "Fermer toutes les fenêtres (CA)"}},
    })
    fixtures.build_deb(str(root), "fixture-b", "2.0", {
        "fr": {
            "beta": {"Quit the program": "Fermer le programme"},
            "gamma": {"QUIT  the program": "Fermer le programme",
                      "Show the blue menu now": "Afficher le menu bleu maintenant"},
        },
    })
    return str(root), synthetic


@pytest.fixture(scope="module")
def builder(packages, tmp_path_factory):
    deb_dir, _ = packages
    return data.gettext_builder(
        "fr", str(tmp_path_factory.mktemp("tfds")),
        packages=[("fixture-a", "1.0"), ("fixture-b", "2.0")], deb_dir=deb_dir,
    )


def _all_pairs(builder):
    out = {}
    for split in ("train", "validation", "test"):
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            out[example["en"].decode()] = (example["fr"].decode(), split,
                                           example["package"].decode())
    return out


def test_mo_writer_reads_back_with_contexts_and_plurals(tmp_path):
    path = fixtures.write_mo(str(tmp_path / "x.mo"), {
        "ctx\x04Open": "Ouvrir", "file\x00files": "fichier\x00fichiers", "Quit": "Quitter"})
    pairs = dict(data.read_catalogue(path))
    assert pairs == {"Open": "Ouvrir", "file": "fichier", "Quit": "Quitter"}


@pytest.mark.parametrize("source, target, expected", [
    ("Save as %s", "Enregistrer sous %s", None),
    ("Save %1$s here", "Enregistrer %1$s ici", None),
    ("Open {name} now", "Ouvrir {name} maintenant", None),
    ("You have mail in $_", "Vous avez du courrier dans $_", None),
    ("<i>Italic</i> words", "<i>Italique</i> mots", None),
    ("Press &lt; key", "Appuyer sur &lt;", None),
    ("Two\nlines", "Deux\nlignes", None),
    ("Tab\there", "Tab\tici", None),
    ("Word", "Mot", None),
    ("Same text", "Same text", None),
    ("_Open File", "_Ouvrir le fichier", ("Open File", "Ouvrir le fichier")),
    ("Sa_ve the file", "En_registrer le fichier", ("Save the file", "Enregistrer le fichier")),
    ("&Open the file", "&Ouvrir le fichier", ("Open the file", "Ouvrir le fichier")),
    ("Drag & drop", "Glisser & déposer", ("Drag & drop", "Glisser & déposer")),
    ("fts_close failed badly", "échec de fts_close", ("fts_close failed badly",
                                                      "échec de fts_close")),
    ("a  spaced   source", " une  source ", ("a spaced source", "une source")),
])
def test_clean_pair(source, target, expected):
    assert data.clean_pair(source, target) == expected


def test_clean_pair_word_limits():
    assert data.clean_pair(" ".join(["w"] * 24), "x y") is not None
    assert data.clean_pair(" ".join(["w"] * 25), "x y") is None


def test_builder_cleans_deduplicates_and_records_metadata(builder, packages):
    _, synthetic = packages
    pairs = _all_pairs(builder)
    # Every synthetic pair is there (sources are distinct), with its translation.
    for source, target in synthetic.items():
        assert pairs[source][0] == target
    assert pairs["Print the page"][0] == "Imprimer la page"  # context stripped
    assert pairs["One red file"][0] == "Un fichier rouge"  # plural: singular form
    assert pairs["Use Drag and drop"][0] == "Utiliser glisser-déposer"
    assert pairs["Drag & drop files"][0] == "Glisser & déposer des fichiers"
    assert "failed to delete NOTES_MERGE_REF now" in pairs
    # Rejected: format directives, markup, newlines, one word, untranslated, too long.
    joined = " ".join(pairs)
    for bad in ("%", "{0}", "<b>", "\n", "Untranslated", "word word"):
        assert bad not in joined
    assert "Single" not in pairs
    # Other languages and locale variants are not read.
    assert "Open the red file" not in pairs and "Close all windows" not in pairs
    # Deduplicated by folded source; the majority translation wins across packages.
    quits = [s for s in pairs if s.casefold().split() == ["quit", "the", "program"]]
    assert len(quits) == 1
    assert pairs[quits[0]][0] == "Fermer le programme"
    assert pairs[quits[0]][2] == "fixture-b"
    assert len(pairs) == len(synthetic) + 7

    metadata = builder.info.metadata
    assert [p["name"] for p in metadata["packages"]] == ["fixture-a", "fixture-b"]
    assert [p["used"] for p in metadata["packages"]] == ["1.0", "2.0"]
    kept = {p["name"]: p["kept"] for p in metadata["packages"]}
    assert kept == {"fixture-a": len(synthetic) + 5, "fixture-b": 2}
    assert metadata["pairs"] == len(pairs)
    assert sum(metadata["split_sizes"].values()) == len(pairs)


def test_splits_are_disjoint_and_follow_the_source_hash(builder):
    pairs = _all_pairs(builder)
    folded = {}
    for source, (_, split, _) in pairs.items():
        assert split == data.split_of(source)
        assert folded.setdefault(data.fold(source), split) == split
    counts = {s: sum(1 for v in pairs.values() if v[1] == s) for s in ("train", "test")}
    assert counts["train"] > counts["test"] > 0
    # Case and spacing do not change the split.
    assert data.split_of("Open  the FILE") == data.split_of("open the file")


def test_unavailable_pinned_version_falls_back_and_is_recorded(tmp_path, monkeypatch, packages):
    deb_dir, _ = packages
    calls = []

    def fake_download(name, version, directory, timeout):
        calls.append(version)
        if version is not None:
            return None  # The pinned version left the mirror.
        src = os.path.join(deb_dir, "fixture-b_2.0_all.deb")
        dst = os.path.join(directory, "fixture-b_2.0_all.deb")
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        return dst, "2.0"

    monkeypatch.setattr(data, "_apt_download", fake_download)
    got = data.fetch_packages([("fixture-b", "1.9")], str(tmp_path))
    assert calls == ["1.9", None]
    assert got["fixture-b"][1] == "2.0"
    # Cached now: no second download.
    data.fetch_packages([("fixture-b", "1.9")], str(tmp_path))
    assert calls == ["1.9", None]


def test_missing_apt_lists_say_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_apt_download", lambda *a: None)
    monkeypatch.setattr(data, "_apt_lists_present", lambda: False)
    with pytest.raises(RuntimeError, match="apt-get update"):
        data.fetch_packages([("no-such-package", "1")], str(tmp_path))


def test_read_tsv_splits_by_source_and_rejects_bad_lines(tmp_path):
    path = tmp_path / "pairs.tsv"
    pairs = fixtures.sentence_pairs(120, seed=2)
    lines = [f"{s}\t{t}" for s, t in pairs.items()] + ["", "Open the file\tdoublon"]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"bad \xff bytes\tmauvais\n")
    splits = data.read_tsv(str(path))
    total = sum(len(s) for s in splits.values())
    assert total == len(pairs) + 1 or total == len(pairs) + 2
    for name, split in splits.items():
        for source in split.sources:
            assert data.split_of(source) == name
    (tmp_path / "bad.tsv").write_text("only one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match="source<TAB>target"):
        data.read_tsv(str(tmp_path / "bad.tsv"))


def test_make_dataset_teacher_forcing_shapes():
    pairs = data.Pairs(["Open the file", "Close all the new windows now"],
                       ["Ouvrir le fichier", "Fermer toutes les nouvelles fenêtres"])
    src_tok, tgt_tok = data.make_tokenizers(pairs, 100, 100, 8, 8)
    (src, tgt_in), tgt_out = next(iter(data.make_dataset(pairs, src_tok, tgt_tok, 2)))
    assert src.shape == (2, 6) and tgt_in.shape == tgt_out.shape == (2, 6)
    assert np.all(tgt_in.numpy()[:, 0] == tgt_tok.start_id)
    np.testing.assert_array_equal(tgt_in.numpy()[:, 1:], tgt_out.numpy()[:, :-1])
    lengths = np.sum(tgt_out.numpy() != 0, axis=1)
    assert tgt_out.numpy()[0, lengths[0] - 1] == tgt_tok.end_id
    assert tgt_tok.vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert "fenêtres" in tgt_tok.vocabulary


def test_source_length_thirds():
    sources = ["a b", "a b c", "a b c d", "a b c d e f", "a b", "a b c d e f g h"]
    buckets, bounds = data.source_length_thirds(sources)
    assert list(buckets) == [0, 1, 1, 2, 0, 2]
    assert bounds[0][0] == 2 and bounds[2][1] == 8
    assert data.source_length_thirds([])[0].shape == (0,)
