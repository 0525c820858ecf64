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
