"""The long_translations builder (issue 17) on fixture man pages and description indices.

Everything is written by the tests: roff pages packed into `.deb`s with
`dpkg-deb --build`, and `Translation-*` / `Packages` index files. No network
and no apt-get.
"""

import collections
import hashlib
import os

import pytest

from apps.common import acquire as common_acquire
from apps.translation import acquire
from apps.translation import long_corpus as lc
from tests.apps.translation import fixtures

# ------------------------------------------------------------------------ fixtures
EN_PAGE = r""".\" Copyright line, a comment
.TH DEMO 2 2023-02-05 "Linux man-pages 6.03"
.SH NAME
demo \- show a demonstration
.SH DESCRIPTION
The
.BR demo ()
system call copies the file descriptor
.I oldfd
into a new one \(em and returns it.
It never blocks, e.g.\& when the file is a pipe.
.PP
.\" A comment that po4a moves around.
If the call fails, the descriptor
.IR newfd ,
is not changed at all.
.TP
.B EBADF
The descriptor \fIoldfd\fP is not open for reading \e or writing.
.IP \[bu] 3
A list item with the \[lq]quoted\[rq] word and a\ non-breaking space.
.nf
int demo(int oldfd);
.fi
.SH NOTES
This page section has words that differ between both languages here.
.SH "SEE ALSO"
.BR dup (2)
"""

FR_PAGE = r""".\" -*- coding: UTF-8 -*-
.\" This file was generated with po4a.
.TH DEMO 2 "5 février 2023" "Pages du manuel de Linux 6.03"
.SH NOM
demo \- montrer une démonstration
.SH DESCRIPTION
L'appel système \fBdemo\fP() copie le descripteur de fichier \fIoldfd\fP dans un
nouveau \(em et le renvoie. Il ne bloque jamais, par exemple quand le fichier est un tube.
.PP
Si l'appel échoue, le descripteur \fInewfd\fP, n'est pas modifié du tout.
.\" A comment that po4a moved.
.TP
\fBEBADF\fP
Le descripteur \fIoldfd\fP n'est pas ouvert en lecture \e ou en écriture.
.IP \[bu] 3
Un élément de liste avec le mot \[Fo]entre guillemets\[Fc] et une\ espace insécable.
.nf
int demo(int oldfd);
.fi
.SH NOTES
Cette section a des mots différents.
.PP
Et un paragraphe de plus que l'anglais.
.SH "VOIR AUSSI"
\fBdup\fP(2)
.PP
.SH TRADUCTION
La traduction française de cette page a été faite par des bénévoles très patients.
"""


def _index(entries, language):
    """A `Translation-<language>` index: entries `(package, md5, short, [paragraphs])`."""
    out = []
    for package, md5, short, paragraphs in entries:
        body = "\n .\n".join("\n".join(" " + line for line in p.split("\n")) for p in paragraphs)
        out.append(f"Package: {package}\nDescription-md5: {md5}\n"
                   f"Description-{language}: {short}\n{body}\n")
    return "\n".join(out)


def _md5(text):
    return hashlib.md5(text.encode()).hexdigest()


SHARED = "This package contains the documentation of the library in HTML format."
SHARED_FR = "Ce paquet contient la documentation de la bibliothèque au format HTML."
EN_INDEX = _index([
    ("tool", _md5("tool"), "command line tool to convert files", [
        "The tool converts files between many formats. It keeps the metadata, e.g. dates.",
        "Features:\n * fast conversion of large files\n * a plain command line interface"]),
    ("tool-doc", _md5("tool-doc"), "documentation for the tool", [SHARED]),
    ("other", _md5("other"), "another package with a long short description", [
        "Its description has two paragraphs in English.", "This is the second paragraph."]),
    ("untranslated", _md5("untranslated"), "nobody translated this one yet", ["Nothing."]),
    *[(f"lib{i}-doc", _md5(f"lib{i}"), f"documentation of library number {i}", [SHARED])
      for i in range(4)],
], "en")
FR_INDEX = _index([
    ("tool", _md5("tool"), "outil en ligne de commande pour convertir des fichiers", [
        "L'outil convertit des fichiers entre de nombreux formats. Il garde les métadonnées, "
        "p. ex. les dates.",
        "Fonctionnalités :\n - conversion rapide de gros fichiers\n - une interface en ligne "
        "de commande simple"]),
    ("tool-doc", _md5("tool-doc"), "documentation de l'outil", [SHARED_FR]),
    ("other", _md5("other"), "un autre paquet avec une longue description courte", [
        "Sa description n'a qu'un paragraphe en français, qui réunit les deux."]),
    *[(f"lib{i}-doc", _md5(f"lib{i}"), f"documentation de la bibliothèque numéro {i}",
       [SHARED_FR]) for i in range(4)],
    ("stray", "0" * 32, "une description sans anglais", ["Rien."]),
], "fr")
PACKAGES_INDEX = "\n".join([
    "Package: tool\nVersion: 1.0\n", "Package: tool-doc\nSource: tool (1.0)\nVersion: 1.0\n",
    "Package: other\nVersion: 2\n",
    *[f"Package: lib{i}-doc\nSource: lib{i}\nVersion: 1\n" for i in range(4)]])


# ---------------------------------------------------------------------- roff text
@pytest.mark.parametrize("roff, text", [
    (r"\fBbold\fP and \fIitalic\fR, \f(CWcode\fP", "bold and italic, code"),
    (r"a \- b \(em c \[en] d \(hy e", "a - b — c – d - e"),
    (r"back\eslash, \(lqquote\(rq \[aq]x\[aq] \*(lqy\*(rq", "back\\slash, “quote” 'x' “y”"),
    (r"no\ break\~here, \&.dot and zero\|width\^s", "no break here, .dot and zerowidths"),
    (r"\s-1SMALL\s0 caps and \[u00E9]t\[u00E9] \N'233'", "SMALL caps and été é"),
    (r"trailing   spaces  ", "trailing spaces"),
    (r"a register \n(xx here", None),
    (r"a motion \h'3n' here", None),
    (r"an unknown glyph \[zzz] here", None),
])
def test_roff_text(roff, text):
    assert lc.roff_text(roff) == text


def test_roff_args_follow_quote_rules():
    assert lc.roff_args(r'"two words" one "with ""quote""" \fBx\fP y') == [
        "two words", "one", 'with "quote"', r"\fBx\fP", "y"]


def test_parse_manpage_inlines_font_macros_and_skips_code_and_comments():
    page = lc.parse_manpage(EN_PAGE, "demo.2")
    texts = [t for t in page.texts if t]
    assert texts[1] == ("The demo() system call copies the file descriptor oldfd into a new one "
                        "— and returns it. It never blocks, e.g. when the file is a pipe.")
    assert texts[2] == "If the call fails, the descriptor newfd, is not changed at all."
    assert "int demo(int oldfd);" not in " ".join(texts)  # .nf code skipped
    assert not any("comment" in t for t in texts)
    assert texts[4] == "A list item with the “quoted” word and a non-breaking space."
    # The .TP tag is structure, not text; .nf/.fi stay in the signature.
    assert "tag" in page.tokens and "nf" in page.tokens and "fi" in page.tokens
    defined = lc.parse_manpage('.TH X 1\n.de Vb\n.ft CW\nHidden text.\n..\n.SH NAME\n'
                               '.if n .ds Aq \'\n.ie t \\{\\\n.ds x y\n.\\}\nShown text.\n',
                               "defs.1")
    assert defined.texts == ["Shown text."]  # Macro definitions and conditionals skipped.
    assert lc.parse_manpage(".so man2/dup.2\n", "link.2") is None  # a link page
    assert lc.parse_manpage('.Dd 2020\n.Dt LS 1\n.Sh NAME\n', "mdoc.1") is None
    with pytest.raises(lc.FormatError, match="notroff.1: not a man page"):
        lc.parse_manpage("just some text\nwithout macros\n", "notroff.1")


# -------------------------------------------------------------------- alignment
def test_align_by_macro_order_drops_sections_that_differ_and_the_credits():
    english = lc.parse_manpage(EN_PAGE, "en")
    french = lc.parse_manpage(FR_PAGE, "fr")
    stats = collections.Counter()
    pairs = lc.align_pages(english, french, stats)
    assert [a for a, _ in pairs] == [*english.texts[:5], "dup(2)"]
    assert pairs[2] == ("If the call fails, the descriptor newfd, is not changed at all.",
                        "Si l'appel échoue, le descripteur newfd, n'est pas modifié du tout.")
    assert pairs[3][1] == "Le descripteur oldfd n'est pas ouvert en lecture \\ ou en écriture."
    # NOTES has one paragraph more in French: that section is dropped, nothing from it
    # pairs; the credits section (TRADUCTION) is not a section of the English page.
    joined = " ".join(b for _, b in pairs)
    assert "mots différents" not in joined and "bénévoles" not in joined
    # The part before NAME, NAME, DESCRIPTION and SEE ALSO agree; NOTES does not.
    assert stats == {"sections_aligned": 4, "sections_differ": 1}


def test_pages_whose_sections_do_not_line_up_are_dropped():
    english = lc.parse_manpage(EN_PAGE, "en")
    extra = FR_PAGE.replace(".SH NOTES", ".SH AUTRE\nUne section de plus.\n.SH NOTES")
    assert lc.align_pages(english, lc.parse_manpage(extra, "fr")) == []


def test_manpage_pairs_filter_untranslated_and_bad_ratio_and_split_sentences():
    english = {"man2/demo.2": EN_PAGE, "man1/only-en.1": EN_PAGE}
    untranslated = FR_PAGE.replace(
        "Si l'appel échoue, le descripteur \\fInewfd\\fP, n'est pas modifié du tout.",
        "If the call fails, the descriptor \\fInewfd\\fP, is not changed at all.")
    bad_ratio = untranslated.replace(
        "Un élément de liste avec le mot \\[Fo]entre guillemets\\[Fc] et une\\ espace "
        "insécable.", "Un élément.")
    pairs, stats = lc.manpage_pairs(english, {"man2/demo.2": bad_ratio}, "fr")
    assert stats["pages_in_both"] == 1 and stats["pages_aligned"] == 1
    # Untranslated: the replaced paragraph and "dup(2)" (SEE ALSO), the same in both.
    assert stats["dropped_untranslated"] == 2 and stats["dropped_ratio"] == 1
    sources = [p.source for p in pairs]
    assert "If the call fails, the descriptor newfd, is not changed at all." not in sources
    # The DESCRIPTION paragraph splits into the same two sentences on both sides.
    assert ("The demo() system call copies the file descriptor oldfd into a new one — and "
            "returns it.") in sources
    assert "It never blocks, e.g. when the file is a pipe." in sources
    by_source = {p.source: p for p in pairs}
    assert by_source["It never blocks, e.g. when the file is a pipe."].target == (
        "Il ne bloque jamais, par exemple quand le fichier est un tube.")
    assert {p.source_id for p in pairs} == {"man2/demo.2"} and {p.origin for p in pairs} == {
        "manpages"}


@pytest.mark.parametrize("source, target, ok", [
    ("A sentence of a sensible length here.", "Une phrase d'une longueur raisonnable ici.", True),
    ("A sentence of a sensible length here.", "Court.", False),
    ("Short.", "Une traduction beaucoup, beaucoup, beaucoup trop longue pour ce mot.", False),
    ("Yes.", "Oui, bien.", True),  # Short pairs get a few characters of slack.
])
def test_length_ratio(source, target, ok):
    assert lc.ratio_ok(source, target, "fr") is ok


def test_untranslated_detection():
    assert lc.untranslated("Open the file now.", "open  the FILE now.")
    assert lc.untranslated("The call fails with EINVAL if flags is wrong here.",
                           "The call fails with EINVAL if flags is wrong there.")
    assert not lc.untranslated("The call fails with EINVAL.", "L'appel échoue avec EINVAL.")


# --------------------------------------------------------------------- sentences
@pytest.mark.parametrize("language, text, sentences", [
    ("en", "First one. Second one! Third one? Fourth.",
     ["First one.", "Second one!", "Third one?", "Fourth."]),
    ("en", "Use e.g. Foo or i.e. Bar, etc. Then stop.",
     ["Use e.g. Foo or i.e. Bar, etc. Then stop."]),
    ("en", "Since Linux 2.6.27. The flag exists.", ["Since Linux 2.6.27.", "The flag exists."]),
    ("en", "See /etc/passwd. The file is text.", ["See /etc/passwd.", "The file is text."]),
    ("en", "Written by J. Smith and others. Done.", ["Written by J. Smith and others.", "Done."]),
    ("en", "It returns -1. Otherwise it is fine.", ["It returns -1.", "Otherwise it is fine."]),
    ("en", "Wait... More text. (Quoted sentence.) \"Next\" one.",
     ["Wait... More text.", "(Quoted sentence.)", "\"Next\" one."]),
    ("en", "lowercase follows. fork() creates.", ["lowercase follows. fork() creates."]),
    ("fr", "Voir p. ex. Truc, c.-à-d. Machin. Fin ! Vraiment ? Oui.",
     ["Voir p. ex. Truc, c.-à-d. Machin.", "Fin !", "Vraiment ?", "Oui."]),
    ("fr", "Entre 500 av. J.C. et 500. « Citation » ici.",
     ["Entre 500 av. J.C. et 500.", "« Citation » ici."]),
    ("de", "Das ist z. B. Text, d. h. Beispiel. Am 3. Januar. Ende.",
     ["Das ist z. B. Text, d. h. Beispiel.", "Am 3. Januar.", "Ende."]),
    ("de", "Siehe u.a. Dateien bzw. Ordner. »Zitat« hier.",
     ["Siehe u.a. Dateien bzw. Ordner.", "»Zitat« hier."]),
])
def test_split_sentences(language, text, sentences):
    assert lc.split_sentences(text, language) == sentences


def test_segment_pairs_sentences_only_when_both_sides_agree():
    en = "The tool converts files quickly. It keeps every date."
    fr = "L'outil convertit vite les fichiers. Il garde toutes les dates."
    assert lc.segment(en, fr, "fr") == [("The tool converts files quickly.",
                                         "L'outil convertit vite les fichiers."),
                                        ("It keeps every date.", "Il garde toutes les dates.")]
    merged = "L'outil convertit vite les fichiers et garde toutes les dates."
    assert lc.segment(en, merged, "fr") == [(en, merged)]
    # Same count, but one sentence pair is misaligned by length: the paragraph is kept.
    skewed = "L'outil. Il garde toutes les dates de tous les fichiers qu'il convertit vite."
    assert lc.segment(en, skewed, "fr") == [(en, skewed)]


# ---------------------------------------------------------------------------- DDTP
def test_translation_index_parsing_and_md5_matching():
    english = lc.parse_translation_index(EN_INDEX.splitlines(True), "en", "Translation-en")
    french = lc.parse_translation_index(FR_INDEX.splitlines(True), "fr", "Translation-fr")
    tool = english[_md5("tool")]
    assert tool.packages == ["tool"] and tool.short == "command line tool to convert files"
    assert tool.paragraphs[1] == [("text", "Features:"),
                                  ("item", "fast conversion of large files"),
                                  ("item", "a plain command line interface")]
    sources = lc.parse_sources(PACKAGES_INDEX.splitlines(True))
    assert sources["tool-doc"] == "tool" and sources["other"] == "other"
    pairs, stats = lc.ddtp_pairs(english, french, "fr", sources)
    got = {p.source: p for p in pairs}
    # Matched by md5: the stray French entry and the untranslated English one give nothing.
    assert stats["descriptions_in_both"] == 7
    assert not any("Rien" in p.target or "Nothing" in p.source for p in pairs)
    assert got["command line tool to convert files"].target == (
        "outil en ligne de commande pour convertir des fichiers")
    # Sentences, with "e.g." and "p. ex." not taken for sentence ends.
    assert got["It keeps the metadata, e.g. dates."].target == (
        "Il garde les métadonnées, p. ex. les dates.")
    # List items pair one by one, whatever the bullet character.
    assert got["fast conversion of large files"].target == "conversion rapide de gros fichiers"
    # Paragraph counts differ ("other"): only its short description is used.
    assert "Its description has two paragraphs in English." not in got
    assert stats["descriptions_layout_differs"] == 1
    # The source id is the source package, for every binary package of it.
    assert got["documentation for the tool"].source_id == "tool"


def test_boilerplate_in_many_source_packages_is_dropped():
    english = lc.parse_translation_index(EN_INDEX.splitlines(True), "en")
    french = lc.parse_translation_index(FR_INDEX.splitlines(True), "fr")
    sources = lc.parse_sources(PACKAGES_INDEX.splitlines(True))
    # SHARED is in the descriptions of 5 source packages (tool, lib0..lib3): dropped.
    assert lc.boilerplate(english, sources) == {lc.fold(SHARED)}
    pairs, stats = lc.ddtp_pairs(english, french, "fr", sources)
    assert SHARED not in {p.source for p in pairs}
    assert stats["dropped_boilerplate"] == 5
    # With a higher limit it is kept (and deduplicated to one pair later).
    pairs, _ = lc.ddtp_pairs(english, french, "fr", sources, limit=5)
    assert [p.target for p in pairs if p.source == SHARED] == [SHARED_FR] * 5
    assert len([p for p in lc.deduplicate(pairs)[0] if p.source == SHARED]) == 1


@pytest.mark.parametrize("text, message", [
    ("Package: a\nDescription-fr: x\n y\n", "expected Package, Description-md5"),
    ("Package: a\nDescription-md5: xyz\nDescription-fr: x\n", "is not 32 hex digits"),
    (" orphan continuation\n", "continuation line outside a description"),
    ("no colon here\n", "expected 'Field: value'"),
    ("", "no Description-fr stanzas"),
])
def test_bad_index_names_the_file(text, message):
    with pytest.raises(lc.FormatError, match=message) as caught:
        lc.parse_translation_index(text.splitlines(True), "fr", "Translation-fr")
    assert "Translation-fr" in str(caught.value)


# --------------------------------------------------------------------- the corpus
def test_deduplicate_majority_exclusions_and_counts():
    pairs = [lc.Pair("Open the file now please.", "Ouvrez le fichier.", "ddtp", "b"),
             lc.Pair("open  the FILE now please.", "Ouvrir le fichier.", "manpages", "z"),
             lc.Pair("Open the file now please.", "Ouvrir le fichier.", "ddtp", "a"),
             lc.Pair("A message of the UI here.", "Un message de l'interface.", "ddtp", "c"),
             lc.Pair(" ".join(["word"] * 25), " ".join(["mot"] * 25), "manpages", "m"),
             lc.Pair("Same in both languages.", "same in both  languages.", "ddtp", "d")]
    kept, stats = lc.deduplicate(pairs, exclude={lc.fold("a message of the UI here.")})
    # Sorted by origin and source id; the majority translation, then the first origin wins
    # (spacing normalized).
    assert [(p.source, p.target, p.source_id) for p in kept] == [
        (" ".join(["word"] * 25), " ".join(["mot"] * 25), "m"),
        ("open the FILE now please.", "Ouvrir le fichier.", "z")]
    assert stats == {"dropped_in_excluded_corpus": 1, "dropped_untranslated": 1,
                     "dropped_duplicate": 2}
    counts = lc.counts(kept)
    assert counts["manpages"]["pairs"] == 2 and counts["ddtp"]["pairs"] == 0
    assert counts["all"]["by_length"] == {"<=10": 1, "10-20": 0, "20-30": 1, "30-40": 0,
                                          "40-60": 0, ">60": 0}
    assert [lc.length_bucket(n) for n in (10, 11, 20, 21, 60, 61)] == [
        "<=10", "10-20", "10-20", "20-30", "40-60", ">60"]


# -------------------------------------------------------------- acquisition errors
def _fake_release(directory, files):
    """Writes index files and an InRelease listing their SHA-256 (as apt would leave them)."""
    lines = ["Origin: Debian", "Date: Sat, 11 Jul 2026 10:16:37 UTC", "SHA256:"]
    for index, text in files.items():
        path = acquire._list_file(directory, index)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        lines.append(f" {common_acquire.sha256(path)} {len(text)} {index}")
    with open(acquire._list_file(directory, "InRelease"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def test_damaged_cached_index_is_fetched_again(tmp_path, monkeypatch):
    directory = str(tmp_path / "apt")
    os.makedirs(os.path.join(directory, "lists"))
    files = {"main/binary-amd64/Packages": PACKAGES_INDEX, "main/i18n/Translation-en": EN_INDEX,
             "main/i18n/Translation-fr": FR_INDEX}
    updates = []

    def fake_update(where, languages, timeout):
        updates.append(languages)
        _fake_release(where, files)

    monkeypatch.setattr(acquire, "_apt_update", fake_update)
    got = acquire.fetch_indices(directory, ("en", "fr"))
    assert len(updates) == 1  # Nothing cached: fetched once.
    assert acquire.fetch_indices(directory, ("en", "fr"))["files"] == got["files"]
    assert len(updates) == 1  # Cached and verified: not fetched again.
    with open(got["files"]["main/i18n/Translation-fr"], "a", encoding="utf-8") as f:
        f.write("damaged tail\n")
    acquire.fetch_indices(directory, ("en", "fr"))
    assert len(updates) == 2  # The damaged index was noticed and fetched again.
    assert got["date"] == "Sat, 11 Jul 2026 10:16:37 UTC"

    def broken_update(where, languages, timeout):  # A mirror that serves a bad file.
        _fake_release(where, files)
        with open(acquire._list_file(where, "main/i18n/Translation-en"), "a") as f:
            f.write("x")

    monkeypatch.setattr(acquire, "_apt_update", broken_update)
    os.remove(acquire._list_file(directory, "InRelease"))
    with pytest.raises(common_acquire.AcquireError, match="Translation-en does not have the "
                       "sha256"):
        acquire.fetch_indices(directory, ("en", "fr"))


def test_without_apt_get_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(acquire.shutil, "which", lambda name: None)
    with pytest.raises(common_acquire.AcquireError, match="needs `apt-get`.*train_tsv"):
        acquire._apt_update(str(tmp_path), ("en", "fr"), 10)


def test_private_apt_config_keeps_away_from_the_system(tmp_path):
    config = acquire._apt_config(str(tmp_path), ("en", "fr"))
    text = open(config, encoding="utf-8").read()
    assert f'Dir::State::Lists "{tmp_path}/lists";' in text
    assert f'Dir::Etc::parts "{tmp_path}/etc/parts";' in text
    assert 'Acquire::Languages { "en"; "fr"; };' in text
    assert os.listdir(tmp_path / "etc" / "parts") == []
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path / "etc"))


def test_damaged_deb_is_deleted_fetched_again_then_named(tmp_path, monkeypatch):
    deb = fixtures.manpage_deb(str(tmp_path), "fx-pages", "1.0", {"man1/a.1": ".TH A 1\n"})
    good = common_acquire.sha256(deb)
    fetches = []

    def fake_fetch(packages, directory, timeout=600):
        fetches.append(os.path.exists(deb))
        if not os.path.exists(deb):
            fixtures.manpage_deb(str(tmp_path), "fx-pages", "1.0", {"man1/a.1": ".TH A 1\n"})
        return {"fx-pages": (deb, "1.0")}

    monkeypatch.setattr(acquire, "fetch_packages", fake_fetch)
    assert acquire.fetch_verified_packages([("fx-pages", "1.0")], str(tmp_path), {
        ("fx-pages", "1.0"): good})["fx-pages"] == (deb, "1.0")
    with pytest.raises(common_acquire.AcquireError, match="fx-pages_1.0_all.deb: not the SHA"):
        acquire.fetch_verified_packages([("fx-pages", "1.0")], str(tmp_path),
                                        {("fx-pages", "1.0"): "0" * 64})
    assert fetches == [True, True, False]  # The damaged file was deleted before the refetch.


def test_deb_digests_read_the_packages_index(tmp_path):
    path = tmp_path / "Packages"
    path.write_text("Package: a\nVersion: 1\nSHA256: " + "a" * 64 + "\n\nPackage: b\nVersion: 2"
                    "\nSHA256: " + "b" * 64 + "\n", encoding="utf-8")
    assert acquire.deb_digests(str(path), ["b", "c"]) == {("b", "2"): "b" * 64}


# ------------------------------------------------------------------------ builder
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from apps.common import data as common_data
    from apps.translation import long_builder

    root = str(tmp_path_factory.mktemp("long"))
    english, french = fixtures.generated_pages(30)
    english["man2/demo.2"], french["man2/demo.2"] = EN_PAGE, FR_PAGE
    fixtures.manpage_deb(root, "fx-manpages", "1.0", english)
    fixtures.manpage_deb(root, "fx-manpages-fr", "2.0", french)
    indices = {}
    for index, text in (("main/binary-amd64/Packages", PACKAGES_INDEX),
                        ("main/i18n/Translation-en", EN_INDEX),
                        ("main/i18n/Translation-fr", FR_INDEX)):
        indices[index] = os.path.join(root, index.replace("/", "_"))
        with open(indices[index], "w", encoding="utf-8") as f:
            f.write(text)
    builder = common_data.prepare(
        long_builder.LongTranslations, str(tmp_path_factory.mktemp("tfds")), config="fr",
        manpages={"en": [("fx-manpages", "1.0")], "fr": [("fx-manpages-fr", "2.0")]},
        deb_dir=root, indices=indices, exclude_gettext=False)
    examples = []
    for split in ("train", "validation", "test"):
        for ex in builder.as_dataset(split=split).as_numpy_iterator():
            examples.append({k: v.decode() for k, v in ex.items()} | {"split": split})
    return builder, examples


def test_builder_features_splits_by_source_and_metadata(built):
    from apps.translation import long_builder

    builder, examples = built
    assert set(examples[0]) == {"source", "target", "origin", "source_id", "split"}
    by_source = {e["source"]: e for e in examples}
    assert by_source["It never blocks, e.g. when the file is a pipe."]["target"] == (
        "Il ne bloque jamais, par exemple quand le fichier est un tube.")
    assert by_source["fast conversion of large files"]["origin"] == "ddtp"
    assert by_source["Page 7 paragraph 1: " + list(fixtures.sentence_pairs(
        3, seed=107, min_words=4, max_words=8))[1] + "."]["source_id"] == "man1/p7.1"
    # One page / one source package: one split, the one its hash gives.
    split_of_id = {}
    for e in examples:
        key = (e["origin"], e["source_id"])
        assert split_of_id.setdefault(key, e["split"]) == e["split"]
        assert e["split"] == long_builder.split_of(
            lc.Pair(e["source"], e["target"], e["origin"], e["source_id"]))
    assert {s for s in split_of_id.values()} == {"train", "validation", "test"}
    assert len(by_source) == len(examples)  # deduplicated

    meta = builder.info.metadata
    assert [p["used"] for p in meta["packages"]] == ["1.0", "2.0"]
    for split in ("train", "validation", "test"):
        got = [e for e in examples if e["split"] == split]
        counts = meta["counts"][split]
        assert counts["all"]["pairs"] == len(got) == builder.info.splits[split].num_examples
        assert counts["ddtp"]["pairs"] == sum(e["origin"] == "ddtp" for e in got)
        assert sum(counts["all"]["by_length"].values()) == len(got)
    assert meta["total"]["all"]["pairs"] == len(examples)
    assert meta["alignment"]["manpages"]["pages_in_both"] == 31
    assert meta["alignment"]["ddtp"]["dropped_boilerplate"] == 5
