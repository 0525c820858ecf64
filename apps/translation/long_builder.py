"""The `long_translations` tfds builder: long English sentences and their translations.

Configs `fr` (default) and `de`. Pairs of English and translated text from two
kinds of Debian data, parsed and aligned by `apps.translation.long_corpus`:

- `origin="manpages"`: paragraphs (or their sentences) of the Linux man pages
  (`manpages`, `manpages-dev`) and of their translations
  (`manpages-<lang>`, `manpages-<lang>-dev`), `source_id` the page
  (`man2/dup.2`);
- `origin="ddtp"`: package descriptions in `Translation-en` and
  `Translation-<lang>`, matched by `Description-md5`, `source_id` the source
  package.

The builder

1. fetches Debian's `Packages` and `Translation-*` indices once with a
   private apt configuration (`acquire.fetch_indices`, verified against the
   signed InRelease) into `<data_dir>/downloads/long_translations/apt/`, and the
   six man-page `.deb`s with `apt-get download` (checked against the SHA-256
   in the `Packages` index) into `<data_dir>/downloads/long_translations/`;
2. aligns, filters and splits into sentences (see `long_corpus`);
3. deduplicates by folded English across both origins and drops every source
   that is also an English message of `gettext_translations` (the same
   language's catalogues, read from that builder's pinned packages), so the
   UI-strings test split stays unseen when both corpora are trained on;
4. splits by a hash of `origin:source_id` (80/10/10, as `gettext_translations`
   does with its sources), so that a man page or a source package never spans
   two splits.

Metadata: the versions and digests used, counts by origin and by English length
bucket for every split, and the alignment statistics. Loadable like any tfds
dataset once this module is imported: `tfds.load("long_translations/fr", ...)`.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import os
import tempfile

import tensorflow_datasets as tfds

from apps.translation import acquire, long_corpus
from apps.translation import builder as gettext_builder

NAME = "long_translations"
LANGUAGES = {"fr": "French", "de": "German"}
SPLITS = gettext_builder.SPLITS


def read_manpages(trees: list[str], name: str, language: str | None = None) -> dict[str, str]:
    """`{page key: roff text}` of the man pages under unpacked package trees (no symlinks).

    Pages are gzip'd UTF-8 roff. A file that is not (a damaged package) raises
    `long_corpus.FormatError` naming it. `language` None reads every page (a
    package of one language, as `manpages-fr`); "en" only the untranslated
    pages (`usr/share/man/man*/`), another code only `usr/share/man/<code>/man*/`
    (a program's own package that ships its translations beside its pages).
    """
    man = ("usr", "share", "man")
    pattern = (os.path.join(*man, "**", "*") if language is None else
               os.path.join(*man, *([] if language == "en" else [language]), "man*", "*"))
    pages = {}
    for tree in trees:
        for path in sorted(glob.glob(os.path.join(tree, pattern), recursive=language is None)):
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            key = long_corpus.page_key(path)
            if key is None:
                continue
            try:
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    pages[key] = f.read().decode("utf-8")
            except (OSError, EOFError, UnicodeDecodeError) as err:
                raise long_corpus.FormatError(
                    f"{path} (from {name}): expected a gzip'd UTF-8 man page ({err})") from err
    return pages


def split_of(pair: long_corpus.Pair) -> str:
    """The split of a pair: the hash of its origin and source id (one page, one split)."""
    return gettext_builder.split_of(f"{pair.origin}:{pair.source_id}")


def read_index(path: str, language: str, name: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return long_corpus.parse_translation_index(f, language, name)


@dataclasses.dataclass
class LongConfig(tfds.core.BuilderConfig):
    """English -> one target language."""

    language: str = "fr"


class LongTranslations(tfds.core.GeneratorBasedBuilder):
    """Long English sentences and their human translations from Debian man pages and the DDTP.

    Args:
        manpages: `{"en": [(name, version)], "<lang>": [...]}` instead of the
            pinned packages in `acquire` (tests).
        deb_dir: a directory that already holds those `.deb` files.
        indices: `{"main/binary-amd64/Packages": path, "main/i18n/Translation-en": path,
            "main/i18n/Translation-<lang>": path}` to read instead of fetching
            (tests, offline copies); no digests are then checked.
        exclude_gettext: drop sources that are English messages of
            `gettext_translations` (needs its packages; on by default).
        **kwargs: `data_dir`, `config`, `version` as for any tfds builder.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Linux man pages 6.03 / manpages-l10n 4.18.1 aligned by macro order, and "
        "bookworm DDTP descriptions by Description-md5; sentence-split where both sides "
        "agree; deduplicated; split by a hash of the page / source package.",
        "1.1.0": "Deduplicated against gettext_translations 2.0.0 (its 164 packages).",
    }
    BUILDER_CONFIGS = [LongConfig(name=code, language=code, description=f"English -> {name}")
                       for code, name in LANGUAGES.items()]
    DEFAULT_CONFIG_NAME = "fr"

    def __init__(self, *, manpages=None, deb_dir: str | None = None, indices=None,
                 exclude_gettext: bool = True, **kwargs):
        self._manpages = manpages
        self._deb_dir = deb_dir
        self._indices = indices
        self._exclude_gettext = exclude_gettext
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        language = self.builder_config.language
        return self.dataset_info_from_configs(
            description=(f"English -> {LANGUAGES[language]} paragraphs and sentences of the "
                         "Linux man pages and of Debian package descriptions (DDTP)."),
            features=tfds.features.FeaturesDict({
                "source": tfds.features.Text(), "target": tfds.features.Text(),
                "origin": tfds.features.Text(), "source_id": tfds.features.Text()}),
            supervised_keys=("source", "target"),
            homepage="https://ddtp.debian.org/",
            metadata=tfds.core.MetadataDict(),
            license="Man pages: their upstream licences (mostly GPL/BSD-style); translations "
                    "GPL-3+; package descriptions: Debian's.",
        )

    def _split_generators(self, dl_manager):
        language = self.builder_config.language
        directory = self._deb_dir or os.path.join(os.fspath(dl_manager.download_dir), NAME)
        indices, index_info = self._read_indices(directory, language)
        manpages = self._manpages or {"en": acquire.MANPAGES_ENGLISH,
                                      language: acquire.MANPAGES_TRANSLATED[language]}
        packages = [*manpages["en"], *manpages[language]]
        if self._indices is None:
            digests = acquire.deb_digests(indices["main/binary-amd64/Packages"],
                                          [n for n, _ in packages])
            debs = acquire.fetch_verified_packages(packages, directory, digests)
        else:
            debs = acquire.fetch_packages(packages, directory)
        with tempfile.TemporaryDirectory(prefix="long-") as tmp:
            trees = {n: acquire.unpack(debs[n][0], os.path.join(tmp, n)) for n, _ in packages}
            english = read_manpages([trees[n] for n, _ in manpages["en"]], "English pages")
            translated = read_manpages([trees[n] for n, _ in manpages[language]],
                                       f"{language} pages")
        man_pairs, man_stats = long_corpus.manpage_pairs(english, translated, language)

        en = read_index(indices["main/i18n/Translation-en"], "en", "Translation-en")
        xx = read_index(indices[f"main/i18n/Translation-{language}"], language,
                        f"Translation-{language}")
        with open(indices["main/binary-amd64/Packages"], encoding="utf-8") as f:
            sources = long_corpus.parse_sources(f)
        ddtp_pairs, ddtp_stats = long_corpus.ddtp_pairs(en, xx, language, sources)

        exclude = self._gettext_sources(language, dl_manager) if self._exclude_gettext else set()
        pairs, dedup_stats = long_corpus.deduplicate(man_pairs + ddtp_pairs, exclude)
        if not pairs:
            raise RuntimeError(f"No English-{LANGUAGES[language]} pairs could be aligned from "
                               f"{sorted(debs)} and {sorted(indices.values())}.")
        splits = {name: [] for name in SPLITS}
        for pair in pairs:
            splits[split_of(pair)].append(pair)
        self.info.metadata.update({
            "language": language,
            "packages": [{"name": n, "pinned": v, "used": debs[n][1]} for n, v in packages],
            "indices": index_info,
            "counts": {name: long_corpus.counts(items) for name, items in splits.items()},
            "total": long_corpus.counts(pairs),
            "alignment": {"manpages": man_stats, "ddtp": ddtp_stats, "dedup": dedup_stats,
                          "excluded_gettext_sources": len(exclude)},
            "rules": _RULES,
        })
        return {name: self._generate_examples(items) for name, items in splits.items()}

    def _read_indices(self, directory: str, language: str):
        if self._indices is not None:
            return dict(self._indices), {"given": dict(self._indices)}
        # All three languages at once: apt drops the lists of languages it is not asked for.
        fetched = acquire.fetch_indices(os.path.join(directory, "apt"), ("en", *LANGUAGES))
        return fetched["files"], {"mirror": acquire.DEBIAN_MIRROR,
                                  "suite": acquire.DEBIAN_SUITE, "release_date": fetched["date"],
                                  "sha256": fetched["sha256"]}

    def _gettext_sources(self, language: str, dl_manager) -> set[str]:
        """The folded English messages of `gettext_translations/<language>` (its packages)."""
        directory = os.path.join(os.fspath(dl_manager.download_dir), gettext_builder.EMBEDDED)
        pairs, _, _ = gettext_builder.read_packages(acquire.PACKAGES, language, directory)
        return {long_corpus.fold(source) for source, _, _ in pairs}

    def _generate_examples(self, pairs):
        for pair in pairs:
            key = hashlib.sha256(long_corpus.fold(pair.source).encode("utf-8")).hexdigest()[:24]
            yield key, {"source": pair.source, "target": pair.target, "origin": pair.origin,
                        "source_id": pair.source_id}


_RULES = (f"{long_corpus.MIN_WORDS}-{long_corpus.MAX_WORDS} English words; character length "
          f"ratio target/source within {long_corpus.LENGTH_RATIO} (+-{long_corpus.SLACK_CHARS} "
          "chars); untranslated text dropped; DDTP paragraphs in more than "
          f"{long_corpus.BOILERPLATE_SOURCES} source packages dropped; sentence pairs where both "
          "sides split alike, else paragraphs; dedup by folded English (and against "
          "gettext_translations); split by sha256('origin:source_id') % 100 (80/10/10)")
