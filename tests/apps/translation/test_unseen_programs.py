"""The unseen-programs evaluation set on fixture packages: filtering, cleaning, its cache."""

import json
import os

import pytest

from apps.translation import unseen_programs
from tests.apps.translation import fixtures

ALPHA = {
    "Open the red file": "Ouvrir le fichier rouge",  # seen in training, other case/spacing
    "Close  all WINDOWS": "Fermer toutes les fenêtres",  # seen in training
    "Show the hidden folders": "Afficher les dossiers cachés",
    "_Save the image": "_Enregistrer l'image",  # mnemonic stripped
    "Save file as %s": "Enregistrer le fichier sous %s",  # format directive: dropped
    "Quit": "Quitter",  # one word: dropped
    "Same words here": "Same words here",  # untranslated: dropped
}
BETA = {
    "Show the  hidden folders": "Montrer les dossiers cachés",  # alpha has priority
    "Copy the blue text": "Copier le texte bleu",
}
TRAINING = ["open the RED file", "Close all windows", "Delete everything now"]
PACKAGES = [("unseen-alpha", "1.0"), ("unseen-beta", "2.0"), ("unseen-german", "3.0")]


@pytest.fixture(scope="module")
def deb_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("unseen-debs"))
    fixtures.build_deb(root, "unseen-alpha", "1.0", {"fr": {"alpha": ALPHA}})
    fixtures.build_deb(root, "unseen-beta", "2.0", {"fr": {"beta": BETA}})
    fixtures.build_deb(root, "unseen-german", "3.0",
                       {"de": {"german": {"Open the file": "Die Datei öffnen"}}})
    return root


def _prepare(data_dir, deb_dir, training=TRAINING):
    return unseen_programs.prepare("fr", str(data_dir), deb_dir=deb_dir,
                                   training_sources=training, packages=PACKAGES)


def test_seen_pairs_removed_cleaned_and_counted(tmp_path, deb_dir):
    pairs, record = _prepare(tmp_path, deb_dir)
    assert pairs == [
        ("Copy the blue text", "Copier le texte bleu", "unseen-beta"),
        ("Save the image", "Enregistrer l'image", "unseen-alpha"),
        ("Show the hidden folders", "Afficher les dossiers cachés", "unseen-alpha"),
    ]
    counts = {p["name"]: p for p in record["packages"]}
    assert counts["unseen-alpha"] == {
        "name": "unseen-alpha", "pinned": "1.0", "version": "1.0", "catalogues": 1,
        "entries": 7, "clean": 4, "unique": 4, "removed_seen": 2, "kept": 2}
    assert counts["unseen-beta"]["unique"] == 1 and counts["unseen-beta"]["clean"] == 2
    assert counts["unseen-german"] == {
        "name": "unseen-german", "pinned": "3.0", "version": "3.0", "catalogues": 0,
        "entries": 0, "clean": 0, "unique": 0, "removed_seen": 0, "kept": 0}
    assert record["rows"] == 3 and record["totals"]["removed_seen"] == 2
    assert record["training"]["sources"] == 3 and record["training"]["dataset"] == "given"
    tsv, json_path = unseen_programs.cache_paths("fr", str(tmp_path))
    with open(tsv, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == "en\tfr\tpackage" and lines[1:] == ["\t".join(p) for p in pairs]
    with open(json_path, encoding="utf-8") as f:
        assert json.load(f) == record
    assert not [n for n in os.listdir(os.path.dirname(tsv)) if ".tmp" in n]
    assert unseen_programs.load("fr", str(tmp_path), deb_dir=deb_dir, training_sources=TRAINING,
                                packages=PACKAGES) == pairs


def test_cache_reused_then_rebuilt_when_corrupt_or_stale(tmp_path, deb_dir, monkeypatch,
                                                         capsys):
    pairs, record = _prepare(tmp_path, deb_dir)
    build = unseen_programs.build
    calls = []

    def counting_build(*args):
        calls.append(args)
        return build(*args)

    monkeypatch.setattr(unseen_programs, "build", counting_build)
    assert _prepare(tmp_path, deb_dir) == (pairs, record)
    assert calls == []  # reused
    tsv, json_path = unseen_programs.cache_paths("fr", str(tmp_path))
    with open(tsv, "r+b") as f:  # truncated: the last row lost
        f.truncate(os.path.getsize(tsv) - 10)
    capsys.readouterr()
    assert _prepare(tmp_path, deb_dir) == (pairs, record)
    assert len(calls) == 1
    assert "does not match the SHA-256" in capsys.readouterr().out
    with open(json_path, "w", encoding="utf-8") as f:
        f.write('{"rows": 3, "sha2')  # a half-written record
    assert _prepare(tmp_path, deb_dir)[0] == pairs
    assert len(calls) == 2 and "is unreadable" in capsys.readouterr().out
    os.remove(tsv)
    assert _prepare(tmp_path, deb_dir)[0] == pairs
    assert len(calls) == 3 and "is missing" in capsys.readouterr().out
    # Another training corpus: the set is made again against it.
    again, changed = _prepare(tmp_path, deb_dir, training=["Copy the blue text"])
    assert len(calls) == 4 and "other training" in capsys.readouterr().out
    assert [p[0] for p in again] == ["Close all WINDOWS", "Open the red file", "Save the image",
                                     "Show the hidden folders"]
    assert changed["totals"]["removed_seen"] == 1


def test_errors_name_the_input(tmp_path, deb_dir):
    with pytest.raises(ValueError, match="in the training corpus"):
        unseen_programs.prepare("fr", str(tmp_path), deb_dir=deb_dir, training_sources=[],
                                packages=[("grep", "3.8-5")])
    with pytest.raises(ValueError, match="language='xx'"):
        unseen_programs.prepare("xx", str(tmp_path), training_sources=[])
    with pytest.raises(RuntimeError, match="No French pairs are left"):
        unseen_programs.prepare("fr", str(tmp_path), deb_dir=deb_dir,
                                training_sources=TRAINING + ["Show the hidden folders",
                                                             "Copy the blue text",
                                                             "Save the image"],
                                packages=PACKAGES)


def test_pinned_packages_are_not_trained_on():
    names = [name for name, _ in unseen_programs.PACKAGES]
    assert len(names) == len(set(names)) == 13
    assert not set(names) & {name for name, _ in unseen_programs.acquire.PACKAGES}
    lines = unseen_programs.counts_lines({
        "packages": [{"name": "a", "version": "1", "catalogues": 1, "entries": 10, "clean": 5,
                      "unique": 4, "removed_seen": 1, "kept": 3}],
        "totals": {"entries": 10, "clean": 5, "unique": 4, "removed_seen": 1, "kept": 3}})
    assert lines[0].split() == ["package", "version", "catalogues", "entries", "clean",
                                "unique", "removed_seen", "kept"]
    assert lines[-1].split() == ["total", "10", "5", "4", "1", "3"]


# ------------------------------------------------------------- the man-page set
def _tool_pages(english, french, keys, prefix=""):
    """The tree of a tool's package: English pages, and the French of `keys` beside them."""
    pages = {key: english[key] for key in english if not prefix or key.startswith(prefix)}
    pages.update({f"fr/{key}": french[key] for key in keys})
    return pages


@pytest.fixture(scope="module")
def manpage_debs(tmp_path_factory):
    """tool-a: pages 0-2, French of 0 and 1; tool-b: page 0 again (a duplicate) and page 3
    with its French; tool-c: English pages only."""
    root = str(tmp_path_factory.mktemp("unseen-manpage-debs"))
    english, french = fixtures.generated_pages(4)
    fixtures.manpage_deb(root, "tool-a", "1.0", _tool_pages(
        {k: english[k] for k in ("man1/p0.1", "man1/p1.1", "man1/p2.1")}, french,
        ["man1/p0.1", "man1/p1.1"]))
    fixtures.manpage_deb(root, "tool-b", "2.0", _tool_pages(
        {k: english[k] for k in ("man1/p0.1", "man1/p3.1")}, french,
        ["man1/p0.1", "man1/p3.1"]))
    fixtures.manpage_deb(root, "tool-c", "3.0", {"man1/p2.1": english["man1/p2.1"]})
    return root, english, french


MANPAGE_TOOLS = [("tool-a", "1.0"), ("tool-b", "2.0"), ("tool-c", "3.0")]


def _page_pairs(english_page, french_page):
    from apps.translation import long_corpus

    pairs, _ = long_corpus.manpage_pairs({"k": english_page}, {"k": french_page}, "fr")
    return [(p.source, p.target) for p in pairs]


def test_manpage_set_aligns_each_tools_pages_dedups_and_drops_training(tmp_path,
                                                                       manpage_debs):
    root, english, french = manpage_debs
    expected = {page: _page_pairs(english[f"man1/{page}.1"], french[f"man1/{page}.1"])
                for page in ("p0", "p1", "p3")}
    assert all(len(pairs) == 3 for pairs in expected.values())
    seen = expected["p1"][0][0]  # one sentence of page 1 is in the training corpora
    pairs, record = unseen_programs.prepare(
        "fr", str(tmp_path), deb_dir=root, training_sources=[seen.upper()],
        packages=MANPAGE_TOOLS, kind="manpages")
    wanted = ([(s, t, "tool-a") for page in ("p0", "p1") for s, t in expected[page]]
              + [(s, t, "tool-b") for s, t in expected["p3"]])
    wanted.remove((seen, expected["p1"][0][1], "tool-a"))
    assert sorted(pairs) == sorted(wanted)
    assert [p[0].casefold() for p in pairs] == sorted(p[0].casefold() for p in pairs)
    counts = {p["name"]: p for p in record["packages"]}
    assert counts["tool-a"] == {"name": "tool-a", "pinned": "1.0", "version": "1.0",
                                "pages": 2, "aligned": 2, "pairs": 6, "unique": 6,
                                "removed_seen": 1, "kept": 5}
    # Page 0 again in tool-b: its pairs are tool-a's (the package name breaks the tie).
    assert counts["tool-b"]["pairs"] == 6 and counts["tool-b"]["unique"] == 3
    assert counts["tool-c"]["pages"] == 0 and counts["tool-c"]["kept"] == 0
    assert record["totals"]["kept"] == len(pairs) == 8 and record["rules"].startswith(
        "long_corpus.manpage_pairs")
    tsv, _ = unseen_programs.cache_paths("fr", str(tmp_path), "manpages")
    assert os.path.basename(os.path.dirname(tsv)) == "unseen_manpages" and os.path.isfile(tsv)
    assert not os.path.exists(unseen_programs.cache_paths("fr", str(tmp_path))[0])
    assert unseen_programs.load("fr", str(tmp_path), deb_dir=root,
                                training_sources=[seen.upper()], packages=MANPAGE_TOOLS,
                                kind="manpages") == pairs
    lines = unseen_programs.counts_lines(record, "manpages")
    assert lines[0].split()[2:] == ["pages", "aligned", "pairs", "unique", "removed_seen",
                                    "kept"]
    assert lines[-1].split() == ["total", "4", "4", "12", "9", "1", "8"]


def test_manpage_set_errors_name_the_input(tmp_path, manpage_debs):
    root = manpage_debs[0]
    with pytest.raises(ValueError, match="language='es'.*'de', 'fr'"):
        unseen_programs.prepare("es", str(tmp_path), deb_dir=root, training_sources=[],
                                packages=MANPAGE_TOOLS, kind="manpages")
    with pytest.raises(ValueError, match=r"\['manpages-fr'\] are read by long_translations"):
        unseen_programs.prepare("fr", str(tmp_path), deb_dir=root, training_sources=[],
                                packages=[("manpages-fr", "4.18.1-1")], kind="manpages")
    with pytest.raises(ValueError, match="kind='pages'"):
        unseen_programs.cache_paths("fr", str(tmp_path), "pages")


def test_manpage_packages_are_tools_not_the_long_corpus():
    names = [name for name, _ in unseen_programs.MANPAGE_PACKAGES]
    assert len(names) == len(set(names))
    unseen_programs._check_arguments("fr", unseen_programs.MANPAGE_PACKAGES,
                                     unseen_programs.MANPAGES)
    from apps.translation import long_builder

    assert set(unseen_programs.MANPAGES.languages) == set(long_builder.LANGUAGES)
    assert unseen_programs.training_dataset("de", "manpages") == (
        "gettext_translations/de+long_translations/de")

