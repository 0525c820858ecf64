"""Translation data: the `gettext_translations` tfds builder and the input pipeline.

`gettext_translations` holds real human translations of English program
messages, from the gettext catalogues (`.mo` files) of a pinned list of Debian
packages. Configs by target language: `fr` (default), `de`, `es`, `hi`. The
builder

1. fetches each package's `.deb` once with `apt-get download NAME=VERSION`
   (no root needed, nothing is installed; if that exact version has left the
   mirror, the current one is taken and recorded) into
   `<data_dir>/downloads/gettext_translations/`;
2. unpacks it with `dpkg-deb -x` into a temporary directory and reads every
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

The package list with the versions used and per-package counts (all entries,
clean pairs kept) are in the dataset's metadata. Loadable like any tfds dataset
once this module is imported: `tfds.load("gettext_translations/fr", data_dir=...)`.

Also: `--train_tsv=PATH` (a user's own `source<TAB>target` lines, split the
same way) and the public tfds datasets `ted_hrlr_translate/pt_to_en` and
`wmt14_translate/fr-en` (en->fr) through `apps.common.data.online_builder`.
"""

from __future__ import annotations

import collections
import dataclasses
import gettext
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from apps.common import data as common_data
from apps.translation import text as translation_text

EMBEDDED = "gettext_translations"
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "hi": "Hindi"}
# Debian 12 (bookworm) packages whose catalogues make the corpus, with the
# versions the published numbers were made from.
PACKAGES = (
    ("iso-codes", "4.15.0-1"),
    ("libgtk2.0-common", "2.24.33-2+deb12u1"),
    ("libgtk-3-common", "3.24.38-2~deb12u3"),
    ("libglib2.0-data", "2.74.6-2+deb12u9"),
    ("gsettings-desktop-schemas", "43.0-1"),
    ("git", "1:2.39.5-0+deb12u3"),
    ("coreutils", "9.1-1"),
    ("xkb-data", "2.35.1-1"),
    ("gnupg-l10n", "2.2.40-1.1+deb12u2"),
    ("util-linux-locales", "2.38.1-5+deb12u3"),
    ("libc-l10n", "2.36-9+deb12u14"),
    ("dpkg", "1.21.23"),
    ("apt", "2.6.1"),
    ("tar", "1.34+dfsg-1.2+deb12u1"),
    ("nano", "7.2-1+deb12u1"),
    ("bash", "5.2.15-2+b13"),
    ("diffutils", "1:3.8-4"),
    ("findutils", "4.9.0-4"),
    ("sed", "4.9-1+deb12u1"),
    ("grep", "3.8-5"),
    ("wget", "1.21.3-1+deb12u1"),
)
MIN_WORDS, MAX_WORDS = 2, 24
# name -> (tfds name, source key, target key): public datasets for machines online.
ONLINE = {
    "ted_hrlr_translate/pt_to_en": ("ted_hrlr_translate/pt_to_en", "pt", "en"),
    "wmt14_translate/fr-en": ("wmt14_translate/fr-en", "en", "fr"),
}
ONLINE_TRAIN_LIMIT = 300_000
DATASETS = (EMBEDDED,) + tuple(f"{EMBEDDED}/{lang}" for lang in LANGUAGES) + tuple(ONLINE)

# Split by hash bucket (0..99) of the folded source: [0, 80) train, [80, 90) validation.
_SPLIT_BOUNDS = (("train", 80), ("validation", 90), ("test", 100))

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
    for name, bound in _SPLIT_BOUNDS:
        if bucket < bound:
            return name
    raise AssertionError(bucket)


# ----------------------------------------------------------------------- catalogues
def read_catalogue(path: str) -> list[tuple[str, str]]:
    """`(msgid, msgstr)` of a `.mo` file: contexts stripped, plurals by their first form.

    Plural entries (`(msgid, n)` keys in `gettext`'s catalogue) give the
    singular msgid with form 0, which is the singular form in fr/de/es/hi.
    """
    with open(path, "rb") as f:
        catalogue = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 (documented use)
    pairs = []
    for key, value in catalogue.items():
        if isinstance(key, tuple):
            key, form = key
            if form != 0:
                continue
        if not key or not value:
            continue  # The header, or an empty translation.
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


# ------------------------------------------------------------------------ packages
def _apt_lists_present() -> bool:
    return bool(glob.glob("/var/lib/apt/lists/*_Packages*"))


def fetch_packages(packages, directory: str, timeout: float = 600) -> dict[str, tuple[str, str]]:
    """`apt-get download`s each `(name, version)` into `directory` once.

    Returns `{name: (deb path, version)}`. An exact version that is no longer on
    the mirror is replaced by the current one, with a warning.
    """
    os.makedirs(directory, exist_ok=True)
    if shutil.which("dpkg-deb") is None:
        raise RuntimeError(
            "Building gettext_translations needs `dpkg-deb` and `apt-get` (Debian/Ubuntu). "
            "On other systems, bring your own pairs with --train_tsv=PATH or use "
            "--dataset=ted_hrlr_translate/pt_to_en on a machine that is online."
        )
    out = {}
    for name, version in packages:
        cached = _cached_deb(directory, name, version) or _cached_deb(directory, name, None)
        if cached:
            out[name] = cached
            continue
        got = _apt_download(name, version, directory, timeout)
        if got is None:
            logging.warning("%s=%s is no longer on the mirror; taking its current version.",
                            name, version)
            got = _apt_download(name, None, directory, timeout)
        if got is None:
            raise RuntimeError(_apt_error(name))
        out[name] = got
    return out


def _deb_field(path: str, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", path, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def _cached_deb(directory: str, name: str, version: str | None):
    for path in sorted(glob.glob(os.path.join(directory, f"{glob.escape(name)}_*.deb"))):
        try:
            if _deb_field(path, "Package") != name:
                continue
            found = _deb_field(path, "Version")
        except (subprocess.CalledProcessError, OSError):
            continue  # A truncated download: fetched again.
        if version is None or found == version:
            return path, found
    return None


def _apt_download(name, version, directory, timeout):
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            "Building gettext_translations needs `apt-get` (Debian/Ubuntu) to fetch the "
            "packages; bring your own pairs with --train_tsv=PATH instead."
        )
    spec = name if version is None else f"{name}={version}"
    tmp = tempfile.mkdtemp(prefix=".apt-", dir=directory)
    try:
        print(f"Fetching {spec} once: apt-get download {spec}", flush=True)
        try:
            proc = subprocess.run(["apt-get", "download", spec], cwd=tmp, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None
        debs = glob.glob(os.path.join(tmp, "*.deb"))
        if proc.returncode != 0 or len(debs) != 1:
            logging.warning("apt-get download %s failed: %s", spec, proc.stderr.strip()[-500:])
            return None
        final = os.path.join(directory, os.path.basename(debs[0]))
        os.replace(debs[0], final)
        return final, _deb_field(final, "Version")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _apt_error(name: str) -> str:
    if not _apt_lists_present():
        return (
            f"apt-get could not download {name}: this machine has no apt package lists. Run "
            "`sudo apt-get update` once (it needs access to a Debian/Ubuntu mirror), then run "
            "this again; or bring your own pairs with --train_tsv=PATH."
        )
    return (
        f"apt-get could not download {name} (see the warnings above). Check that a Debian or "
        "Ubuntu mirror is reachable and `apt-get download "
        f"{name}` works, or bring your own pairs with --train_tsv=PATH."
    )


def unpack_catalogues(deb: str, language: str, into: str) -> list[str]:
    """`dpkg-deb -x` the package into `into` and return its `.mo` files for `language`."""
    os.makedirs(into, exist_ok=True)
    proc = subprocess.run(["dpkg-deb", "-x", deb, into], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()[-500:]}")
    return catalogues_in(into, language)


# ------------------------------------------------------------------------- builder
@dataclasses.dataclass
class GettextConfig(tfds.core.BuilderConfig):
    """English -> one target language."""

    language: str = "fr"


class GettextTranslations(tfds.core.GeneratorBasedBuilder):
    """Human translations of English program messages from Debian's gettext catalogues.

    Args:
        packages: `[(name, version)]` to read instead of `PACKAGES` (tests, experiments).
        deb_dir: a directory that already holds the `.deb` files (skips apt-get for them).
        **kwargs: `data_dir`, `config`, `version` as for any tfds builder.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "21 Debian 12 packages; 2-24 English words, no format directives, markup "
        "or control characters, mnemonics stripped, untranslated entries dropped; "
        "deduplicated by folded source; 80/10/10 splits by a hash of the source.",
    }
    BUILDER_CONFIGS = [
        GettextConfig(name=code, language=code, description=f"English -> {name}")
        for code, name in LANGUAGES.items()
    ]
    DEFAULT_CONFIG_NAME = "fr"

    def __init__(self, *, packages=None, deb_dir: str | None = None, **kwargs):
        self._packages = tuple(packages) if packages is not None else PACKAGES
        self._deb_dir = deb_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        language = self.builder_config.language
        return self.dataset_info_from_configs(
            description=(
                "Real human translations of English program messages (menus, errors, "
                "settings, language and place names) from the gettext catalogues of Debian "
                f"packages, English -> {LANGUAGES[language]}."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "en": tfds.features.Text(),
                    language: tfds.features.Text(),
                    "package": tfds.features.Text(),
                }
            ),
            supervised_keys=("en", language),
            homepage="https://www.debian.org/international/l10n/po/",
            metadata=tfds.core.MetadataDict(),
            license="Each catalogue carries its package's licence (GPL/LGPL and others).",
        )

    def _split_generators(self, dl_manager):
        language = self.builder_config.language
        if self._deb_dir:
            directory = self._deb_dir
        else:
            directory = os.path.join(os.fspath(dl_manager.download_dir), EMBEDDED)
        debs = fetch_packages(self._packages, directory)
        catalogues = []
        with tempfile.TemporaryDirectory(prefix="gettext-") as tmp:
            for name, _ in self._packages:
                deb, _version = debs[name]
                catalogues.append(
                    (name, unpack_catalogues(deb, language, os.path.join(tmp, name)))
                )
            pairs, counts = collect_pairs(catalogues)
        splits = {name: [] for name, _ in _SPLIT_BOUNDS}
        for pair in pairs:
            splits[split_of(pair[0])].append(pair)
        self.info.metadata.update(
            {
                "language": language,
                "packages": [
                    {"name": n, "pinned": v, "used": debs[n][1], **counts[n]}
                    for n, v in self._packages
                ],
                "pairs": len(pairs),
                "split_sizes": {k: len(v) for k, v in splits.items()},
                "rules": f"{MIN_WORDS}-{MAX_WORDS} words; no format directives, markup, "
                "control characters; mnemonics stripped; target != source; dedup by "
                "folded source; split by sha256(folded source) % 100 (80/10/10)",
            }
        )
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


# ------------------------------------------------------------------------ pipeline
@dataclasses.dataclass
class Pairs:
    """One split in memory: source and target sentences (Python strings)."""

    sources: list
    targets: list

    def __len__(self):
        return len(self.sources)

    def head(self, n: int) -> Pairs:
        return Pairs(self.sources[:n], self.targets[:n])


def _decode(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _from_tfds(ds, source_key, target_key, limit=None) -> Pairs:
    sources, targets = [], []
    for example in tfds.as_numpy(ds.take(limit) if limit else ds):
        sources.append(_decode(example[source_key]))
        targets.append(_decode(example[target_key]))
    return Pairs(sources, targets)


def gettext_builder(language: str, data_dir: str, **kwargs):
    """The prepared (built once, verified) `gettext_translations/<language>` builder."""
    if language not in LANGUAGES:
        raise ValueError(f"Unknown language {language!r}; expected one of {sorted(LANGUAGES)}.")
    return common_data.prepare(GettextTranslations, data_dir, config=language, **kwargs)


def read_tsv(path: str) -> dict[str, Pairs]:
    """A user's `source<TAB>target` file, split by a hash of the source like the embedded data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--train_tsv={path!r} is not a file.")
    splits = {name: Pairs([], []) for name, _ in _SPLIT_BOUNDS}
    seen = set()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
                raise ValueError(
                    f"{path}:{number}: expected `source<TAB>target`, got {line[:80]!r}."
                )
            source, target = parts[0].strip(), parts[1].strip()
            if fold(source) in seen:
                continue
            seen.add(fold(source))
            split = splits[split_of(source)]
            split.sources.append(source)
            split.targets.append(target)
    if not splits["train"].sources:
        raise ValueError(f"{path} has no training pairs.")
    return splits


def load_splits(dataset: str, data_dir: str, train_tsv: str | None = None,
                limit: int | None = None) -> tuple[dict[str, Pairs], str, str]:
    """`({"train", "validation", "test"} -> Pairs, source language, target language)`.

    `limit` caps the training pairs read from an online dataset (default
    `ONLINE_TRAIN_LIMIT`); the embedded corpus and TSV files are read whole.
    """
    if train_tsv:
        return read_tsv(train_tsv), "source", "target"
    if dataset == EMBEDDED or dataset.startswith(EMBEDDED + "/"):
        language = dataset.split("/", 1)[1] if "/" in dataset else "fr"
        builder = gettext_builder(language, data_dir)
        return {
            name: _from_tfds(builder.as_dataset(split=name, shuffle_files=False), "en", language)
            for name in ("train", "validation", "test")
        }, "en", language
    if dataset in ONLINE:
        name, source_key, target_key = ONLINE[dataset]
        limit = limit or ONLINE_TRAIN_LIMIT  # wmt14 has 40M pairs: more than memory holds.
        builder = common_data.online_builder(name, data_dir)
        splits = {"train": "train", "validation": "validation", "test": "test"}
        return {
            key: _from_tfds(builder.as_dataset(split=spec, shuffle_files=False), source_key,
                            target_key, limit if key == "train" else None)
            for key, spec in splits.items()
        }, source_key, target_key
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")


def make_tokenizers(train: Pairs, source_vocab: int, target_vocab: int, max_source: int,
                    max_target: int, min_count: int = 1):
    """Source tokenizer (plain) and target tokenizer (START ... END) from the training pairs.

    Vocabularies: the most frequent `source_vocab` / `target_vocab` tokens seen at
    least `min_count` times in training (rarer ones become [UNK]).
    """
    t = translation_text
    src_vocab = t.build_vocabulary(train.sources, source_vocab, min_count=min_count)
    tgt_vocab = t.build_vocabulary(train.targets, target_vocab, min_count=min_count,
                                   reserved=(t.PAD, t.UNK, t.START, t.END))
    return (t.Tokenizer(src_vocab, max_source),
            t.Tokenizer(tgt_vocab, max_target + 1, bos_eos=True))


def make_dataset(pairs: Pairs, source_tokenizer, target_tokenizer, batch_size: int,
                 shuffle: bool = False, seed: int = 0, bucket: bool = False) -> tf.data.Dataset:
    """Batches `((source_ids, target_in), target_out)` for teacher forcing.

    `target_in` is START y_1 .. y_n, `target_out` is y_1 .. y_n END (0 = padding).
    Each batch is cut to its longest sentence, so short batches cost less; with
    `bucket`, sentences of similar length are batched together (in training).
    """
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(pairs.sources, tf.string), tf.constant(pairs.targets, tf.string))
    )
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)

    def encode(source, target):
        src = source_tokenizer.tokenize(source)[1]
        tgt = target_tokenizer.tokenize(target)[1]
        src_len = tf.reduce_max(tf.reduce_sum(tf.cast(src != 0, tf.int32), axis=1))
        tgt_len = tf.reduce_max(tf.reduce_sum(tf.cast(tgt != 0, tf.int32), axis=1))
        src = src[:, : tf.maximum(src_len, 1)]
        tgt = tgt[:, : tf.maximum(tgt_len, 2)]
        return (src, tgt[:, :-1]), tgt[:, 1:]

    if bucket:
        # Sort within windows of 20 batches by length, then batch: little padding, still random.
        def length(source, target):
            return tf.strings.length(source) + tf.strings.length(target)

        ds = ds.group_by_window(
            key_func=lambda s, t: tf.cast(tf.minimum(length(s, t) // 16, 15), tf.int64),
            reduce_func=lambda _, window: window.batch(batch_size),
            window_size=batch_size,
        )
    else:
        ds = ds.batch(batch_size)
    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def source_lengths(sources: list) -> np.ndarray:
    """Source lengths in tokens (words and punctuation marks), as the model sees them."""
    if not sources:
        return np.zeros([0], np.int64)
    return np.array(translation_text.split_words(tf.constant(sources)).row_lengths())


def source_length_thirds(sources: list) -> tuple[np.ndarray, list[int]]:
    """Length bucket of each source (0 short, 1 middle, 2 long third) and the bucket bounds.

    Lengths are counted in source tokens (words and punctuation marks). The cut
    points are the 1/3 and 2/3 quantiles, so sentences of one length always share
    a bucket (the thirds are therefore only roughly equal in size).

    Returns:
        `(buckets, [[lo, hi] per bucket])`.
    """
    if not sources:
        return np.zeros([0], np.int32), [[0, 0]] * 3
    lengths = source_lengths(sources)
    low, high = (int(np.quantile(lengths, q, method="lower")) for q in (1 / 3, 2 / 3))
    if high <= low:
        high = low + 1
    buckets = np.where(lengths <= low, 0, np.where(lengths <= high, 1, 2)).astype(np.int32)
    bounds = [[int(lengths.min()), low], [low + 1, high], [high + 1, int(lengths.max())]]
    return buckets, bounds
