"""The gettext_translations builder on fixture packages: reading, cleaning, splits, metadata."""

import pytest

from apps.translation import builder as translation_builder
from apps.translation import pipeline
from tests.apps.translation import fixtures


@pytest.fixture(scope="module")
def builder(packages, tmp_path_factory):
    deb_dir, _ = packages
    return pipeline.gettext_builder(
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
    pairs = dict(translation_builder.read_catalogue(path))
    assert pairs == {"Open": "Ouvrir", "file": "fichier", "Quit": "Quitter"}


def test_read_catalogue_malformed_plural_header_and_latin1(tmp_path):
    # Debian's acl ships a header whose Plural-Forms has no `plural=`, on which
    # gettext.GNUTranslations raises IndexError; the entries are still good.
    header = ("Content-Type: text/plain; charset=ISO-8859-1\n"
              "Plural-Forms: nplurals=2;\n")
    path = fixtures.write_mo(str(tmp_path / "acl.mo"), {"Remove the entry": "Supprimer l'entrée",
                                                        "file\x00files": "fichier\x00fichiers"},
                             header=header, encoding="latin-1")
    assert dict(translation_builder.read_catalogue(path)) == {
        "Remove the entry": "Supprimer l'entrée", "file": "fichier"}


@pytest.mark.parametrize("damage", ["not a catalogue at all", "truncated"])
def test_read_catalogue_rejects_what_is_not_a_mo_file(tmp_path, damage):
    path = str(tmp_path / "bad.mo")
    if damage == "truncated":
        fixtures.write_mo(path, {"Open the file": "Ouvrir le fichier"})
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:-12])
    else:
        with open(path, "wb") as f:
            f.write(damage.encode() * 3)
    with pytest.raises(ValueError, match="bad.mo"):
        translation_builder.read_catalogue(path)


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
    assert translation_builder.clean_pair(source, target) == expected


def test_clean_pair_word_limits():
    assert translation_builder.clean_pair(" ".join(["w"] * 24), "x y") is not None
    assert translation_builder.clean_pair(" ".join(["w"] * 25), "x y") is None


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
        assert split == translation_builder.split_of(source)
        assert folded.setdefault(translation_builder.fold(source), split) == split
    counts = {s: sum(1 for v in pairs.values() if v[1] == s) for s in ("train", "test")}
    assert counts["train"] > counts["test"] > 0
    # Case and spacing do not change the split.
    assert translation_builder.split_of("Open  the FILE") == translation_builder.split_of(
        "open the file")


def test_split_pairs_follows_split_of():
    pairs = [(f"Source number {i}", f"Source numéro {i}", "p") for i in range(300)]
    parts = {name: translation_builder.split_pairs(pairs, name)
             for name in translation_builder.SPLITS}
    assert sum(len(v) for v in parts.values()) == 300 and all(parts.values())
    for name, chosen in parts.items():
        assert all(translation_builder.split_of(p[0]) == name for p in chosen)
    with pytest.raises(ValueError, match="split='dev'"):
        translation_builder.split_pairs(pairs, "dev")
