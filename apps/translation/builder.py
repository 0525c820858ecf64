"""The `gettext_translations` tfds builder: English program messages and their translations.

`gettext_translations` holds real human translations of English program
messages, from the gettext catalogues (`.mo` files) of the Debian packages
that `apps.translation.acquire` pins. Configs by target language: `fr`
(default), `de`, `es`, `hi`. The builder

1. has `acquire` fetch each package's `.deb` once into
   `<data_dir>/downloads/gettext_translations/`;
2. unpacks it into a temporary directory and reads every
   `usr/share/locale/<lang>/LC_MESSAGES/*.mo` with Python's `gettext`
   (message contexts `ctx\\x04msgid` are stripped; of a plural entry the
   singular forms are kept);
3. keeps clean pairs: 2-24 English words; no printf/brace/shell format
   directives (`%s`, `{0}`, `$1`), no markup or entities, no control
   characters (newlines, tabs); mnemonic markers (`_File`, `&Open`) stripped;
   untranslated entries (target == source) dropped;
4. deduplicates by the English source (case and spacing folded; of several
   translations the most frequent, then the first by package order, wins);
5. splits by a hash of that source (80% train, 10% validation, 10% test), so
   no source sentence is in two splits, the same on every machine.

Apart from that cleaning, the text is stored as the catalogues have it: no
Unicode normalization (no NFKC). The package list with the versions used and
per-package counts (all entries, clean pairs kept) are in the dataset's
metadata. Loadable like any tfds dataset once this module is imported:
`tfds.load("gettext_translations/fr", data_dir=...)`.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import glob
import hashlib
import os
import re
import struct
import tempfile

import tensorflow_datasets as tfds
from absl import logging

from apps.translation import acquire

EMBEDDED = "gettext_translations"
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "hi": "Hindi"}
MIN_WORDS, MAX_WORDS = 2, 24

# Split by hash bucket (0..99) of the folded source: [0, 80) train, [80, 90) validation.
SPLIT_BOUNDS = (("train", 80), ("validation", 90), ("test", 100))
SPLITS = tuple(name for name, _ in SPLIT_BOUNDS)

# ------------------------------------------------------------------------ cleaning
_FORMAT = re.compile(
    r"%"  # printf (%s, %d, %1$s, %(name)s, %%): any percent sign
    r"|\{[\w.:!\[\]]*\}"  # Python/C# brace formats {0}, {name}, {}
    r"|\$\{?[\w#@*?!$-]"  # shell / positional ($1, ${var}, $_)
    r"|\\[ntr\\]"  # escaped control characters left in the text
)
_MARKUP = re.compile(r"<[A-Za-z/!?][^>]*>|&[A-Za-z]+;|&#\d+;")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MNEMONIC_AMP = re.compile(r"&(?=\w)")
_SPACES = re.compile(r"\s+")
_MO_MAGIC = 0x950412DE
_CHARSET = re.compile(r"charset=([A-Za-z0-9_.:-]+)")


def _strip_mnemonic(source: str, target: str) -> tuple[str, str] | None:
    """Removes GTK `_x` and Qt/KDE `&x` access-key markers; None if they can't be told apart.

    An underscore is a mnemonic when the source has exactly one, followed by a
    word character, and the word that holds it is not copied verbatim into the
    translation (identifiers like `NOTES_MERGE_REF` or `fts_close` are).
    """
    if "_" in source:
        underscored = [w.strip(".,:;!?()[]'\"") for w in source.split() if "_" in w]
        copied = all(_copied(w, target) for w in underscored)
        if copied:
            pass  # Identifiers (copied into the translation verbatim), kept as they are.
        elif source.count("_") == 1 and re.search(r"_\w", source) and target.count("_") <= 1:
            source = source.replace("_", "", 1)
            target = target.replace("_", "", 1)
        else:
            return None  # Underscores that are neither one mnemonic nor copied identifiers.
    source = _MNEMONIC_AMP.sub("", source)
    target = _MNEMONIC_AMP.sub("", target)
    return source, target


def _copied(word: str, target: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(word) + r"(?![\w])", target) is not None


def clean_pair(source: str, target: str) -> tuple[str, str] | None:
    """The cleaned `(source, target)` pair, or None when it is not a clean sentence pair."""
    for text in (source, target):
        if _FORMAT.search(text) or _MARKUP.search(text) or _CONTROL.search(text):
            return None
    stripped = _strip_mnemonic(source, target)
    if stripped is None:
        return None
    source, target = (_SPACES.sub(" ", t).strip() for t in stripped)
    if not source or not target or source == target:
        return None
    if not MIN_WORDS <= len(source.split()) <= MAX_WORDS:
        return None
    if not any(ch.isalpha() for ch in target):
        return None
    return source, target


def fold(source: str) -> str:
    """The deduplication key of a source sentence: case and spacing folded."""
    return _SPACES.sub(" ", source).strip().casefold()


def split_of(source: str) -> str:
    """The split of a source sentence: a stable hash of its folded form into 100 buckets."""
    digest = hashlib.sha256(fold(source).encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, bound in SPLIT_BOUNDS:
        if bucket < bound:
            return name
    raise AssertionError(bucket)


# ----------------------------------------------------------------------- catalogues
def read_catalogue(path: str) -> list[tuple[str, str]]:
    """`(msgid, msgstr)` of a `.mo` file: contexts stripped, plurals by their first form.

    The file is read by its published layout (a magic number, the count, and
    two tables of (length, offset) for the originals and the translations),
    not by `gettext.GNUTranslations`, which also evaluates the header's
    `Plural-Forms` and fails on catalogues whose header is malformed (Debian's
    `acl`). Strings are decoded by the header's charset (UTF-8 when none is
    named). A plural entry gives the singular msgid with its first form, which
    is the singular form in fr/de/es/hi.

    Raises:
        ValueError: naming `path`, when it is not a `.mo` file or is truncated.
    """
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if len(data) < 20:
        raise ValueError(f"{name}: {len(data)} bytes, too short for a .mo file.")
    for order in ("<", ">"):
        if struct.unpack(order + "I", data[:4])[0] == _MO_MAGIC:
            break
    else:
        raise ValueError(f"{name}: not a .mo file (bad magic number).")
    count, originals, translations = struct.unpack(order + "3I", data[8:20])

    def entry(table: int, i: int) -> bytes:
        start = table + 8 * i
        if start + 8 > len(data):
            raise ValueError(f"{name}: truncated string table (entry {i}).")
        length, offset = struct.unpack(order + "2I", data[start:start + 8])
        if offset + length > len(data):
            raise ValueError(f"{name}: truncated string {i}.")
        return data[offset:offset + length]

    raw = [(entry(originals, i), entry(translations, i)) for i in range(count)]
    charset = "utf-8"
    for msgid, msgstr in raw:
        if not msgid:
            found = _CHARSET.search(msgstr.decode("ascii", "replace"))
            if found and found.group(1).lower() not in ("charset", "char"):
                charset = found.group(1)
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    pairs = []
    for msgid, msgstr in raw:
        if not msgid or not msgstr:
            continue  # The header, or an empty translation.
        key = msgid.split(b"\x00", 1)[0].decode(charset)
        value = msgstr.split(b"\x00", 1)[0].decode(charset)
        if not key or not value:
            continue
        if "\x04" in key:
            key = key.split("\x04", 1)[1]
        pairs.append((key, value))
    return pairs


def catalogues_in(tree: str, language: str) -> list[str]:
    """The `.mo` files of `language` under an unpacked package tree (no locale variants)."""
    found = set()
    for path in glob.glob(os.path.join(tree, "**", "locale", language, "LC_MESSAGES", "*.mo"),
                          recursive=True):
        found.add(os.path.realpath(path) if os.path.exists(path) else path)
    return sorted(p for p in found if os.path.isfile(p))


def collect_pairs(catalogues: list[tuple[str, list[str]]]):
    """Cleans and deduplicates the pairs of `[(package, [mo paths])]` (package order = priority).

    Returns:
        `(pairs, counts)`: pairs `[(source, target, package)]` sorted by source;
        counts `{package: {"entries": n, "clean": n, "kept": n}}`.
    """
    by_source: dict[str, list] = collections.defaultdict(list)
    counts = {}
    for priority, (package, paths) in enumerate(catalogues):
        entries = clean = 0
        for path in paths:
            try:
                raw = read_catalogue(path)
            except (OSError, UnicodeDecodeError, ValueError) as err:
                logging.warning("Skipping unreadable catalogue %s: %s", path, err)
                continue
            entries += len(raw)
            for source, target in raw:
                pair = clean_pair(source, target)
                if pair is not None:
                    clean += 1
                    by_source[fold(pair[0])].append((pair[0], pair[1], package, priority))
        counts[package] = {"entries": entries, "clean": clean, "kept": 0}
    pairs = []
    for key in sorted(by_source):
        options = by_source[key]
        votes = collections.Counter(o[1] for o in options)
        best = min(options, key=lambda o: (-votes[o[1]], o[3], o[1], o[0]))
        pairs.append((best[0], best[1], best[2]))
        counts[best[2]]["kept"] += 1
    return pairs, counts


def unpack_catalogues(deb: str, language: str, into: str) -> list[str]:
    """The `.mo` files for `language` of a package, unpacked into `into`."""
    return catalogues_in(acquire.unpack(deb, into), language)


def read_packages(packages, language: str, directory: str):
    """The cleaned, deduplicated pairs of `packages`' catalogues for `language`.

    Each `(name, version)` is fetched once into `directory` (`acquire.fetch_packages`)
    and unpacked into a temporary directory.

    Returns:
        `(pairs, counts, debs)`: as `collect_pairs`, with `counts[name]["catalogues"]`
        added, and `{name: (deb path, version used)}`.
    """
    debs = acquire.fetch_packages(packages, directory)
    catalogues = []
    with tempfile.TemporaryDirectory(prefix="gettext-") as tmp:
        for name, _ in packages:
            catalogues.append((name, unpack_catalogues(debs[name][0], language,
                                                       os.path.join(tmp, name))))
        pairs, counts = collect_pairs(catalogues)
    for name, paths in catalogues:
        counts[name]["catalogues"] = len(paths)
    return pairs, counts, debs


def split_pairs(pairs, split: str) -> list:
    """The pairs `(source, ...)` whose source `split_of` puts in `split`."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {SPLITS}.")
    return [pair for pair in pairs if split_of(pair[0]) == split]


# ------------------------------------------------------------------------- builder
@dataclasses.dataclass
class GettextConfig(tfds.core.BuilderConfig):
    """English -> one target language."""

    language: str = "fr"


_DESCRIPTION = ("Real human translations of English program messages (menus, errors, settings, "
                "language and place names) from the gettext catalogues of Debian packages, "
                "English -> {}.")
_RULES = (f"{MIN_WORDS}-{MAX_WORDS} words; no format directives, markup, control characters; "
          "mnemonics stripped; target != source; dedup by folded source; split by "
          "sha256(folded source) % 100 (80/10/10)")


class GettextTranslations(tfds.core.GeneratorBasedBuilder):
    """Human translations of English program messages from Debian's gettext catalogues.

    Args:
        packages: `[(name, version)]` to read instead of `acquire.PACKAGES` (tests,
            experiments).
        deb_dir: a directory that already holds the `.deb` files (skips apt-get for them).
        **kwargs: `data_dir`, `config`, `version` as for any tfds builder.
    """

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "21 Debian 12 packages; 2-24 English words, no format directives, markup "
        "or control characters, mnemonics stripped, untranslated entries dropped; "
        "deduplicated by folded source; 80/10/10 splits by a hash of the source.",
        "2.0.0": "164 packages (acquire.PACKAGES_V1 + PACKAGES_MORE: desktop programs and "
        "more system tools); .mo files read by their layout (a malformed Plural-Forms "
        "header no longer loses a catalogue). Same cleaning and split function, so every "
        "1.0.0 test source is still a test source.",
    }
    BUILDER_CONFIGS = [
        GettextConfig(name=code, language=code, description=f"English -> {name}")
        for code, name in LANGUAGES.items()
    ]
    DEFAULT_CONFIG_NAME = "fr"

    def __init__(self, *, packages=None, deb_dir: str | None = None, **kwargs):
        self._packages = tuple(packages) if packages is not None else acquire.PACKAGES
        self._deb_dir = deb_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        language = self.builder_config.language
        features = {"en": tfds.features.Text(), language: tfds.features.Text(),
                    "package": tfds.features.Text()}
        return self.dataset_info_from_configs(
            description=_DESCRIPTION.format(LANGUAGES[language]),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("en", language),
            homepage="https://www.debian.org/international/l10n/po/",
            metadata=tfds.core.MetadataDict(),
            license="Each catalogue carries its package's licence (GPL/LGPL and others).",
        )

    def _split_generators(self, dl_manager):
        language = self.builder_config.language
        directory = self._deb_dir or os.path.join(os.fspath(dl_manager.download_dir), EMBEDDED)
        pairs, counts, debs = read_packages(self._packages, language, directory)
        splits = {name: [] for name in SPLITS}
        for pair in pairs:
            splits[split_of(pair[0])].append(pair)
        self.info.metadata.update({
            "language": language,
            "packages": [{"name": n, "pinned": v, "used": debs[n][1], **counts[n]}
                         for n, v in self._packages],
            "pairs": len(pairs),
            "split_sizes": {k: len(v) for k, v in splits.items()},
            "rules": _RULES,
        })
        if not pairs:
            raise RuntimeError(
                f"No {LANGUAGES[language]} catalogue pairs were found in {directory}."
            )
        return {name: self._generate_examples(items) for name, items in splits.items()}

    def _generate_examples(self, pairs):
        language = self.builder_config.language
        for source, target, package in pairs:
            key = hashlib.sha256(fold(source).encode("utf-8")).hexdigest()[:24]
            yield key, {"en": source, language: target, "package": package}
