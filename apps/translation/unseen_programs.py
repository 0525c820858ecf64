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

Usage:
    python -m apps.translation.unseen_programs --language=fr [--data_dir=DIR]
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

from absl import app, flags, logging

from apps.common import acquire as common_acquire
from apps.common import data as common_data
from apps.translation import acquire, builder

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

Pair = tuple[str, str, str]


class _Unusable(Exception):
    """The cache cannot be used; the message says why."""


def cache_paths(language: str, data_dir: str) -> tuple[str, str]:
    """`(<data_dir>/unseen_programs/<language>.tsv, ....json)`."""
    base = os.path.join(data_dir, NAME, language)
    return base + ".tsv", base + ".json"


def training_corpus_sources(language: str, data_dir: str) -> list[str]:
    """The English sources of every split of `gettext_translations/<language>` (built once)."""
    from apps.translation import pipeline  # TensorFlow and tfds: only when needed.

    parts, _, _ = pipeline.load_parts(f"{builder.EMBEDDED}/{language}", data_dir)
    return [s for splits in parts.values() for pairs in splits.values() for s in pairs.sources]


def _digest(folded: set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(folded)).encode("utf-8")).hexdigest()


def _check_arguments(language: str, packages) -> None:
    if language not in builder.LANGUAGES:
        raise ValueError(f"language={language!r}: expected one of {sorted(builder.LANGUAGES)}.")
    names = [name for name, _ in packages]
    if not names:
        raise ValueError("packages=(): name at least one (name, version) package.")
    if len(set(names)) != len(names):
        raise ValueError(f"packages={names}: a package is named twice.")
    trained = sorted(set(names) & {name for name, _ in acquire.PACKAGES})
    if trained:
        raise ValueError(f"packages: {trained} are in the training corpus (acquire.PACKAGES); "
                         "their strings are not unseen.")


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
            packages=PACKAGES) -> tuple[list[Pair], dict]:
    """The unseen-programs set of `language` and its record, built once and cached.

    Args:
        language: a `builder.LANGUAGES` code.
        data_dir: the cache root (`apps.common.data.data_dir`).
        deb_dir: a directory that already holds the `.deb`s (default
            `<data_dir>/downloads/unseen_programs/`, filled with apt-get).
        training_sources: the English sources to exclude (default: every split of
            `gettext_translations/<language>`, built under `data_dir` if needed).
        packages: `[(name, version)]`, none of them in `acquire.PACKAGES`.

    Returns:
        `(pairs, record)`: pairs `[(source, target, package)]`; the record is
        what `<language>.json` holds (counts per package, rows, SHA-256, ...).
    """
    packages = tuple((str(n), str(v)) for n, v in packages)
    _check_arguments(language, packages)
    data_dir = common_data.data_dir(data_dir)
    if training_sources is None:
        dataset = f"{builder.EMBEDDED}/{language}"
        training_sources = training_corpus_sources(language, data_dir)
    else:
        dataset = "given"
    training = {builder.fold(s) for s in training_sources}
    wanted = {
        "format": FORMAT, "language": language,
        "requested": [list(p) for p in packages],
        "training": {"dataset": dataset, "sources": len(training), "sha256": _digest(training)},
    }
    tsv, record_path = cache_paths(language, data_dir)
    if os.path.exists(record_path) or os.path.exists(tsv):
        try:
            return _read_cache(tsv, record_path, wanted)
        except _Unusable as err:
            message = f"The unseen-programs cache {tsv} cannot be used: {err}. Rebuilding it."
            logging.warning(message)
            print(message, flush=True)
    pairs, counts = build(language, packages, deb_dir or os.path.join(
        data_dir, "downloads", NAME), training)
    if not pairs:
        raise RuntimeError(f"No {builder.LANGUAGES[language]} pairs are left from packages "
                           f"{[n for n, _ in packages]} once those seen in training are removed.")
    os.makedirs(os.path.dirname(tsv), exist_ok=True)
    _write_atomically(tsv, _tsv_text(language, pairs))
    record = {**wanted, "rows": len(pairs), "sha256": common_acquire.sha256(tsv),
              "file": os.path.basename(tsv), "rules": RULES,
              "packages": [{"name": name, "pinned": version, **counts[name]}
                           for name, version in packages],
              "totals": {key: sum(c[key] for c in counts.values())
                         for key in ("entries", "clean", "unique", "removed_seen", "kept")}}
    _write_atomically(record_path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return pairs, record


def load(language: str = "fr", data_dir: str | None = None, deb_dir: str | None = None,
         training_sources: Iterable[str] | None = None, packages=PACKAGES) -> list[Pair]:
    """The set's `[(source, target, package)]` (see `prepare`: the same arguments)."""
    return prepare(language, data_dir, deb_dir, training_sources, packages)[0]


def counts_lines(record: dict) -> list[str]:
    """The record's per-package counts as aligned text lines (with a total line)."""
    keys = ("catalogues", "entries", "clean", "unique", "removed_seen", "kept")
    rows = [[p["name"], p["version"]] + [str(p[k]) for k in keys] for p in record["packages"]]
    rows.append(["total", ""] + ["" if k == "catalogues" else str(record["totals"][k])
                                 for k in keys])
    header = ["package", "version", *keys]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                      enumerate(zip(r, widths, strict=True))) for r in [header, *rows]]


def main(argv) -> None:
    from apps.common import flags as common_flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    language = flags.FLAGS.language
    data_dir = common_data.data_dir(common_flags.DATA_DIR.value)
    pairs, record = prepare(language, data_dir)
    tsv, _ = cache_paths(language, data_dir)
    print(f"{len(pairs)} unseen-program pairs en->{language} in {tsv} (training sources "
          f"excluded: {record['training']['sources']} from {record['training']['dataset']})")
    print("\n".join(counts_lines(record)))


if __name__ == "__main__":
    from apps.common import flags as _common_flags  # noqa: F401 (defines --data_dir)

    flags.DEFINE_enum("language", "fr", sorted(builder.LANGUAGES), "Target language.")
    app.run(main)
