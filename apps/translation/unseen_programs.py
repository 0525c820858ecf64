"""An evaluation set of UI strings from programs the translation model never saw (issue 17).

`gettext_translations` (the training corpus, `apps.translation.builder`) is
made of the catalogues of the 164 Debian packages that `acquire.PACKAGES` pins;
its test split holds other strings of those same programs, so it measures how
well the model knows *those* programs. This set asks the other question: how
does it translate the messages of programs it has never read? It holds English
gettext messages and their human translations from the Debian 12 (bookworm)
packages of `PACKAGES` below, none of them in `acquire.PACKAGES`, and is
evaluation data only: nothing trains on it.

How it is made (`prepare`):

1. each `.deb` is fetched once (`acquire.fetch_packages`: `apt-get download`,
   cached under `<data_dir>/downloads/unseen_programs/`) and its catalogues
   for the language are unpacked (`builder.unpack_catalogues`);
2. the pairs are cleaned and deduplicated exactly as the training corpus is
   (`builder.collect_pairs`: 2-24 English words, no format directives, markup
   or control characters, mnemonics stripped, untranslated entries dropped,
   one translation per folded source; package order is priority);
3. every pair whose folded English source (`builder.fold`: case and spacing
   folded) is also a source of the training corpus, in any of its splits
   (`gettext_translations/<language>`), is removed: programs share strings
   (gnulib's "memory exhausted", GTK's "Open File"), and a string the model has
   trained on says nothing about programs it has not.

The result is cached as `<data_dir>/unseen_programs/<language>.tsv`
(`en<TAB><language><TAB>package`, a header line, rows in the order of their
folded source) beside `<language>.json`: per-package counts (catalogue files,
entries read, clean pairs, unique pairs the package won, of those removed as
seen in training, kept), the versions used, the row count and the TSV's
SHA-256, and a digest of the training sources it was filtered against. Both
are written atomically (temporary file, then rename). A cache whose TSV does
not match its record (truncated, edited, half-written) is rebuilt with a
warning; one made from other packages or another training corpus is rebuilt
too.

Of the fifteen packages first chosen, two ship no French catalogue in
bookworm and were dropped: `e2fsprogs` 1.47.0-2+b2 (0 catalogues; its
translations are in `e2fsprogs-l10n`) and `transmission-common`
3.00-2.1+deb12u1 (0 catalogues; they are in `transmission-gtk` and
`transmission-qt`). A package of the list that has no catalogue for another
language is skipped, with a warning, and counted with zeros.

A second set, `kind="manpages"`, holds long sentences: the man pages that
Debian's own tools ship with their French and German translations (dpkg, apt,
debhelper, devscripts, po4a, ...: `MANPAGE_PACKAGES`), none of them pages of the
Linux man-pages project that `long_translations` reads. Each package's English
pages (`usr/share/man/man*/`) are aligned with its translated ones
(`usr/share/man/<language>/man*/`) by `long_corpus.manpage_pairs`, with the
long corpus' rules (macro order, length ratio, untranslated text dropped,
sentence split where both sides agree); one pair per folded source
(`long_corpus.deduplicate`), and every pair whose folded source is a source of
`gettext_translations/<language>` or `long_translations/<language>` (any
split) is removed. It is cached as `<data_dir>/unseen_manpages/<language>.tsv`
and `.json` in the same way. Some of these packages also give UI strings to
the training corpus (dpkg, apt, man-db, ...): their pages were never trained
on, their programs' short messages may have been.

Usage:
    python -m apps.translation.unseen_programs --language=fr [--data_dir=DIR]
    python -m apps.translation.unseen_programs --kind=manpages --language=de
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable

from absl import app, flags, logging

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.translation import acquire, builder, long_corpus

NAME = "unseen_programs"
#: Bookworm packages with French catalogues that the training corpus does not read,
#: with the versions the published set was made from (order = priority between
#: translations of one source, as in `acquire.PACKAGES`).
PACKAGES = (
    ("vlc-l10n", "3.0.23-0+deb12u1"),
    ("evince-common", "43.1-2+deb12u1"),
    ("gedit-common", "44.2-1"),
    ("nautilus-data", "43.2-1"),
    ("thunar-data", "4.18.4-1"),
    ("mousepad", "0.5.10-2"),
    ("gnome-control-center-data", "1:43.6-2~deb12u1"),
    ("procps", "2:4.0.2-3"),
    ("psmisc", "23.6-1"),
    ("make", "4.3-4.1"),
    ("gawk", "1:5.2.1-2"),
    ("cpio", "2.13+dfsg-7.1"),
    ("bison", "2:3.8.2+dfsg-1+b1"),
)
#: Bumped when the making of the set changes, so that older caches are rebuilt.
FORMAT = 2
RULES = ("the training corpus' cleaning and deduplication (builder.collect_pairs); pairs whose "
         "folded source (builder.fold) is a source of any split of the training corpus removed")

#: Bookworm packages of Debian tools that ship their man pages with French and/or
#: German translations (po4a), for the man-page set (`kind="manpages"`). Not the
#: Linux man-pages project (`manpages`, read by `long_translations`). A package
#: without pages in the language asked for is skipped with a warning (five have
#: no German pages).
MANPAGE_PACKAGES = (
    ("debhelper", "13.11.4"), ("dpkg-dev", "1.21.23"), ("dpkg", "1.21.23"),
    ("dselect", "1.21.23"), ("apt", "2.6.2"), ("apt-utils", "2.6.2"),
    ("devscripts", "2.23.4+deb12u2"), ("po4a", "0.69-1"), ("po-debconf", "1.0.21+nmu1"),
    ("debconf-doc", "1.5.82"), ("debconf-utils", "1.5.82"), ("man-db", "2.11.2-2"),
    ("adduser", "3.134"), ("debianutils", "5.7-0.5~deb12u1"),
    ("sensible-utils", "0.0.17+nmu1"), ("procps", "2:4.0.2-3"), ("psmisc", "23.6-1"),
    ("xz-utils", "5.4.1-1+deb12u2"), ("passwd", "1:4.13+dfsg1-1+deb12u2"),
    ("login", "1:4.13+dfsg1-1+deb12u2"), ("uidmap", "1:4.13+dfsg1-1+deb12u2"),
    ("cups-client", "2.4.2-3+deb12u11"), ("cups-daemon", "2.4.2-3+deb12u11"),
    ("cups-bsd", "2.4.2-3+deb12u11"), ("net-tools", "2.10-0.1+deb12u2"),
    ("sysvinit-core", "3.06-4"), ("schroot", "1.6.13-3+b2"), ("fakeroot", "1.31-1.2"),
    ("dos2unix", "7.4.3-1"), ("svn-buildpackage", "0.8.8"), ("multistrap", "2.2.11"),
    ("kdesdk-scripts", "4:22.12.3-1"), ("vim-common", "2:9.0.1378-2+deb12u2"),
    ("live-build", "1:20230502"), ("menu", "2.1.49"), ("module-assistant", "0.11.11"),
    ("gputils", "1.4.0-0.2"),
)
MANPAGE_RULES = ("long_corpus.manpage_pairs per package (macro order, length ratio, "
                 "untranslated text dropped, sentences where both sides agree), "
                 "long_corpus.deduplicate; pairs whose folded source is a source of any split "
                 "of gettext_translations or long_translations removed")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One evaluation set: the packages it reads, the corpora it excludes, its cache."""

    name: str  # the cache folder under data_dir (and under data_dir/downloads)
    packages: tuple
    format: int  # bumped when the making of the set changes
    rules: str
    languages: tuple
    training: tuple  # the datasets whose sources are removed
    counts: tuple  # per-package counts in the record
    totalled: tuple  # those summed in the record's totals


UI = Kind(NAME, PACKAGES, FORMAT, RULES, tuple(builder.LANGUAGES), (builder.EMBEDDED,),
          ("catalogues", "entries", "clean", "unique", "removed_seen", "kept"),
          ("entries", "clean", "unique", "removed_seen", "kept"))
MANPAGES = Kind("unseen_manpages", MANPAGE_PACKAGES, 1, MANPAGE_RULES, ("fr", "de"),
                (builder.EMBEDDED, "long_translations"),
                ("pages", "aligned", "pairs", "unique", "removed_seen", "kept"),
                ("pages", "aligned", "pairs", "unique", "removed_seen", "kept"))
KINDS = {"ui": UI, "manpages": MANPAGES}

Pair = tuple[str, str, str]


class _Unusable(Exception):
    """The cache cannot be used; the message says why."""


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {sorted(KINDS)}.")
    return KINDS[kind]


def cache_paths(language: str, data_dir: str, kind: str = "ui") -> tuple[str, str]:
    """`(<data_dir>/unseen_programs/<language>.tsv, ....json)` (`unseen_manpages/` for
    `kind="manpages"`)."""
    base = os.path.join(data_dir, _kind(kind).name, language)
    return base + ".tsv", base + ".json"


def training_dataset(language: str, kind: str = "ui") -> str:
    """The training corpora whose sources the set excludes, joined by `+`."""
    return "+".join(f"{name}/{language}" for name in _kind(kind).training)


def training_corpus_sources(language: str, data_dir: str, kind: str = "ui") -> list[str]:
    """The English sources of every split of the training corpora (`training_dataset`;
    built once)."""
    from apps.translation import pipeline  # TensorFlow and tfds: only when needed.

    parts, _, _ = pipeline.load_parts(training_dataset(language, kind), data_dir)
    return [s for splits in parts.values() for pairs in splits.values() for s in pairs.sources]


def _digest(folded: set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(folded)).encode("utf-8")).hexdigest()


def _check_arguments(language: str, packages, kind: Kind = UI) -> None:
    if language not in kind.languages:
        raise ValueError(f"language={language!r}: expected one of {sorted(kind.languages)}.")
    names = [name for name, _ in packages]
    if not names:
        raise ValueError("packages=(): name at least one (name, version) package.")
    if len(set(names)) != len(names):
        raise ValueError(f"packages={names}: a package is named twice.")
    if kind is UI:
        trained = sorted(set(names) & {name for name, _ in acquire.PACKAGES})
        if trained:
            raise ValueError(f"packages: {trained} are in the training corpus (acquire.PACKAGES); "
                             "their strings are not unseen.")
    else:
        read = {name for lists in (acquire.MANPAGES_ENGLISH, *acquire.MANPAGES_TRANSLATED.values())
                for name, _ in lists}
        trained = sorted(set(names) & read)
        if trained:
            raise ValueError(f"packages: {trained} are read by long_translations; their pages "
                             "are not unseen.")


def build(language: str, packages, deb_dir: str, training: set[str]) -> tuple[list[Pair], dict]:
    """The pairs of `packages` not in `training` (folded sources), and their counts.

    Returns:
        `(pairs, counts)`: pairs `[(source, target, package)]` in the order of
        their folded source; counts `{package: {"version", "catalogues",
        "entries", "clean", "unique", "removed_seen", "kept"}}`.
    """
    pairs, collected, debs = builder.read_packages(packages, language, deb_dir)
    for name, _ in packages:
        if not collected[name]["catalogues"]:
            logging.warning("%s %s ships no %s catalogue; skipped.", name, debs[name][1],
                            builder.LANGUAGES[language])
    kept = [pair for pair in pairs if builder.fold(pair[0]) not in training]
    counts = {}
    for name, _ in packages:
        unique = collected[name]["kept"]
        left = sum(1 for pair in kept if pair[2] == name)
        counts[name] = {"version": debs[name][1], "catalogues": collected[name]["catalogues"],
                        "entries": collected[name]["entries"], "clean": collected[name]["clean"],
                        "unique": unique, "removed_seen": unique - left, "kept": left}
    return kept, counts


def build_manpages(language: str, packages, deb_dir: str,
                   training: set[str]) -> tuple[list[Pair], dict]:
    """The aligned man-page pairs of `packages` not in `training` (folded sources).

    Returns:
        `(pairs, counts)`: pairs `[(source, target, package)]` in the order of
        their folded source; counts `{package: {"version", "pages" (in both
        languages), "aligned" (pages), "pairs", "unique", "removed_seen", "kept"}}`.
    """
    from apps.translation import long_builder  # tfds: only when needed.

    debs = acquire.fetch_packages(packages, deb_dir)
    found, counts = [], {}
    with tempfile.TemporaryDirectory(prefix="unseen-manpages-") as tmp:
        for name, _ in packages:
            tree = acquire.unpack(debs[name][0], os.path.join(tmp, name))
            english = long_builder.read_manpages([tree], f"{name} (English pages)", "en")
            translated = long_builder.read_manpages([tree], f"{name} ({language} pages)",
                                                    language)
            if not translated:
                logging.warning("%s %s ships no %s man pages; skipped.", name, debs[name][1],
                                language)
            pairs, stats = long_corpus.manpage_pairs(english, translated, language)
            found += [dataclasses.replace(p, source_id=f"{name}:{p.source_id}") for p in pairs]
            counts[name] = {"version": debs[name][1], "pages": stats.get("pages_in_both", 0),
                            "aligned": stats.get("pages_aligned", 0), "pairs": len(pairs)}
    unique, _ = long_corpus.deduplicate(found)
    kept = sorted(((p.source, p.target, p.source_id.partition(":")[0]) for p in unique
                   if long_corpus.fold(p.source) not in training),
                  key=lambda pair: (long_corpus.fold(pair[0]), pair[1], pair[2]))
    for name, _ in packages:
        owned = sum(1 for p in unique if p.source_id.partition(":")[0] == name)
        left = sum(1 for pair in kept if pair[2] == name)
        counts[name].update(unique=owned, removed_seen=owned - left, kept=left)
    return kept, counts


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tsv_text(language: str, pairs: list[Pair]) -> str:
    lines = [f"en\t{language}\tpackage"] + ["\t".join(pair) for pair in pairs]
    return "\n".join(lines) + "\n"


def _read_cache(tsv: str, record_path: str, wanted: dict) -> tuple[list[Pair], dict]:
    """The cached pairs and record; raises `_Unusable` saying what is wrong."""
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        expected = {key: record[key] for key in wanted}
        rows, digest = int(record["rows"]), record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _Unusable(f"its record {record_path} is unreadable ({err})") from err
    if expected != wanted:
        changed = sorted(key for key in wanted if expected[key] != wanted[key])
        raise _Unusable(f"it was made with other {', '.join(changed)}")
    if not os.path.isfile(tsv):
        raise _Unusable(f"{tsv} is missing")
    if common_acquire.sha256(tsv) != digest:
        raise _Unusable(f"{tsv} does not match the SHA-256 in its record (truncated or edited)")
    with open(tsv, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows_read = [tuple(line.split("\t")) for line in lines[1:-1]]
    if lines[-1] != "" or len(rows_read) != rows or any(len(r) != 3 for r in rows_read):
        raise _Unusable(f"{tsv} does not hold the {rows} rows of its record")
    return rows_read, record


def prepare(language: str = "fr", data_dir: str | None = None, deb_dir: str | None = None,
            training_sources: Iterable[str] | None = None,
            packages=None, kind: str = "ui") -> tuple[list[Pair], dict]:
    """The unseen-programs set of `language` and its record, built once and cached.

    Args:
        language: a `builder.LANGUAGES` code (`fr` or `de` for the man pages).
        data_dir: the cache root (`apps.common.data.data_dir`).
        deb_dir: a directory that already holds the `.deb`s (default
            `<data_dir>/downloads/<kind's name>/`, filled with apt-get).
        training_sources: the English sources to exclude (default: every split of
            the kind's training corpora, `training_dataset`, built under `data_dir`
            if needed).
        packages: `[(name, version)]` (default the kind's: `PACKAGES`, none of them
            in `acquire.PACKAGES`, or `MANPAGE_PACKAGES`).
        kind: "ui" (UI strings) or "manpages" (long sentences of man pages).

    Returns:
        `(pairs, record)`: pairs `[(source, target, package)]`; the record is
        what `<language>.json` holds (counts per package, rows, SHA-256, ...).
    """
    spec = _kind(kind)
    packages = tuple((str(n), str(v)) for n, v in (spec.packages if packages is None
                                                  else packages))
    _check_arguments(language, packages, spec)
    data_dir = common_data.data_dir(data_dir)
    if training_sources is None:
        dataset = training_dataset(language, kind)
        training_sources = training_corpus_sources(language, data_dir, kind)
    else:
        dataset = "given"
    training = {builder.fold(s) for s in training_sources}
    wanted = {
        "format": spec.format, "language": language,
        "requested": [list(p) for p in packages],
        "training": {"dataset": dataset, "sources": len(training), "sha256": _digest(training)},
    }
    tsv, record_path = cache_paths(language, data_dir, kind)
    if os.path.exists(record_path) or os.path.exists(tsv):
        try:
            return _read_cache(tsv, record_path, wanted)
        except _Unusable as err:
            message = f"The {spec.name} cache {tsv} cannot be used: {err}. Rebuilding it."
            logging.warning(message)
            print(message, flush=True)
    make = build if spec is UI else build_manpages  # looked up now (tests replace them)
    pairs, counts = make(language, packages, deb_dir or os.path.join(
        data_dir, "downloads", spec.name), training)
    if not pairs:
        raise RuntimeError(f"No {builder.LANGUAGES[language]} pairs are left from packages "
                           f"{[n for n, _ in packages]} once those seen in training are removed.")
    os.makedirs(os.path.dirname(tsv), exist_ok=True)
    _write_atomically(tsv, _tsv_text(language, pairs))
    record = {**wanted, "rows": len(pairs), "sha256": common_acquire.sha256(tsv),
              "file": os.path.basename(tsv), "rules": spec.rules,
              "packages": [{"name": name, "pinned": version, **counts[name]}
                           for name, version in packages],
              "totals": {key: sum(c[key] for c in counts.values()) for key in spec.totalled}}
    _write_atomically(record_path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return pairs, record


def load(language: str = "fr", data_dir: str | None = None, deb_dir: str | None = None,
         training_sources: Iterable[str] | None = None, packages=None,
         kind: str = "ui") -> list[Pair]:
    """The set's `[(source, target, package)]` (see `prepare`: the same arguments)."""
    return prepare(language, data_dir, deb_dir, training_sources, packages, kind)[0]


def counts_lines(record: dict, kind: str = "ui") -> list[str]:
    """The record's per-package counts as aligned text lines (with a total line)."""
    spec = _kind(kind)
    keys = spec.counts
    rows = [[p["name"], p["version"]] + [str(p[k]) for k in keys] for p in record["packages"]]
    rows.append(["total", ""] + [str(record["totals"][k]) if k in spec.totalled else ""
                                 for k in keys])
    header = ["package", "version", *keys]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                      enumerate(zip(r, widths, strict=True))) for r in [header, *rows]]


def main(argv) -> None:
    from apps.common import flags as common_flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    language, kind = flags.FLAGS.language, flags.FLAGS.kind
    if language not in _kind(kind).languages:
        raise app.UsageError(f"--language={language}: the {kind} set has "
                             f"{sorted(_kind(kind).languages)}.")
    data_dir = common_data.data_dir(common_flags.DATA_DIR.value)
    pairs, record = prepare(language, data_dir, kind=kind)
    tsv, _ = cache_paths(language, data_dir, kind)
    print(f"{len(pairs)} unseen {kind} pairs en->{language} in {tsv} (training sources "
          f"excluded: {record['training']['sources']} from {record['training']['dataset']})")
    print("\n".join(counts_lines(record, kind)))


if __name__ == "__main__":
    from apps.common import flags as _common_flags  # noqa: F401 (defines --data_dir)

    flags.DEFINE_enum("language", "fr", sorted(builder.LANGUAGES), "Target language.")
    flags.DEFINE_enum("kind", "ui", sorted(KINDS), "ui: UI strings of programs never seen; "
                      "manpages: long sentences of Debian tools' man pages.")
    app.run(main)
