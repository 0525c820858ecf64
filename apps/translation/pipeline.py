"""From sentence pairs to `tf.data`: the splits, the tokenizers, teacher-forcing batches.

`load_splits` reads one of:

- the embedded `gettext_translations/<lang>` (`apps.translation.builder`; UI
  strings, en->fr by default), built once under the data dir through
  `apps.common.data.prepare`;
- the embedded `long_translations/<lang>` (`apps.translation.long_builder`: man
  pages and package descriptions, 3-150 English words), built the same way;
- several of the embedded datasets joined with `+`
  (`gettext_translations/fr+long_translations/fr`, the default of the app): the
  training and validation splits are concatenated, the test splits are kept
  apart (`load_parts`) so that each is scored on its own; all must share one
  target language;
- a user's own `source<TAB>target` file (`--config=train_tsv=PATH`), split like the
  embedded data by a hash of the source;
- the public tfds datasets `ted_hrlr_translate/pt_to_en` and `wmt14_translate/fr-en`
  (en->fr), through `apps.common.data.online_builder` (machines that are online).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.common import subword
from apps.common import text as common_text
from apps.translation import builder as translation_builder
from apps.translation import long_builder
from apps.translation import text as translation_text
from apps.translation.builder import EMBEDDED, LANGUAGES, SPLITS, fold, split_of

# name -> (tfds name, source key, target key): public datasets for machines online.
ONLINE = {
    "ted_hrlr_translate/pt_to_en": ("ted_hrlr_translate/pt_to_en", "pt", "en"),
    "wmt14_translate/fr-en": ("wmt14_translate/fr-en", "en", "fr"),
}
ONLINE_TRAIN_LIMIT = 300_000
LONG = long_builder.NAME
#: The datasets that `+` may join (each also stands alone).
JOINABLE = ((EMBEDDED,) + tuple(f"{EMBEDDED}/{lang}" for lang in LANGUAGES)
            + (LONG,) + tuple(f"{LONG}/{lang}" for lang in long_builder.LANGUAGES))
DATASETS = JOINABLE + tuple(ONLINE)
#: Vocabularies: `subword` (one joint WordPiece vocabulary, `apps.common.subword`) or
#: `word` (a word list per language, unknown words become [UNK]).
VOCABULARIES = ("subword", "word")


def dataset_parts(dataset: str) -> tuple[str, ...]:
    """The datasets `dataset` joins with `+`, in order; raises ValueError naming the bad part.

    `"gettext_translations/fr+long_translations/fr"` -> both names; a single name
    -> a 1-tuple. Parts must be embedded datasets (`JOINABLE`) when there are
    several, each named once, with one target language.
    """
    parts = tuple(dataset.split("+"))
    if len(parts) == 1:
        if dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}, or "
                             "several of the embedded ones joined with '+'.")
        return parts
    for part in parts:
        if part not in JOINABLE:
            raise ValueError(f"dataset {dataset!r}: part {part!r} cannot be joined; expected "
                             f"embedded datasets joined with '+', each one of {JOINABLE}.")
    if len(set(parts)) != len(parts):
        raise ValueError(f"dataset {dataset!r} names a part twice.")
    languages = {_language(p) for p in parts}
    if len(languages) != 1:
        raise ValueError(f"dataset {dataset!r} mixes target languages {sorted(languages)}; "
                         "joined datasets must share one.")
    return parts


def _language(part: str) -> str:
    return part.split("/", 1)[1] if "/" in part else "fr"


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
    """The `(source_key, target_key)` text pairs of a tfds split, in order (read in batches:
    2.7x faster than one example at a time on the 70,806 long pairs)."""
    sources, targets = [], []
    ds = ds.take(limit) if limit else ds
    ds = ds.map(lambda example: (example[source_key], example[target_key])).batch(4096)
    for source, target in tfds.as_numpy(ds):
        sources += [_decode(x) for x in source]
        targets += [_decode(x) for x in target]
    return Pairs(sources, targets)


def gettext_builder(language: str, data_dir: str, **kwargs):
    """The prepared (built once, verified) `gettext_translations/<language>` builder.

    `kwargs` go to `GettextTranslations` (`packages`, `deb_dir`).
    """
    if language not in LANGUAGES:
        raise ValueError(f"Unknown language {language!r}; expected one of {sorted(LANGUAGES)}.")
    return common_data.prepare(translation_builder.GettextTranslations, data_dir,
                               config=language, **kwargs)


def long_translations_builder(language: str, data_dir: str, **kwargs):
    """The prepared (built once, verified) `long_translations/<language>` builder."""
    if language not in long_builder.LANGUAGES:
        raise ValueError(f"Unknown language {language!r} for {LONG}; expected one of "
                         f"{sorted(long_builder.LANGUAGES)}.")
    return common_data.prepare(long_builder.LongTranslations, data_dir, config=language,
                               **kwargs)


def read_tsv(path: str) -> dict[str, Pairs]:
    """A user's `source<TAB>target` file, split by a hash of the source like the embedded data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"train_tsv={path!r} is not a file.")
    splits = {name: Pairs([], []) for name in SPLITS}
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


def _concat(pairs: list) -> Pairs:
    return Pairs([s for p in pairs for s in p.sources], [t for p in pairs for t in p.targets])


def load_parts(dataset: str, data_dir: str, train_tsv: str | None = None,
               limit: int | None = None) -> tuple[dict[str, dict[str, Pairs]], str, str]:
    """`({part: {"train", "validation", "test"} -> Pairs}, source language, target language)`.

    One entry per dataset `dataset` joins with `+` (see `dataset_parts`); a
    user's TSV is the one part `"train_tsv"`. `limit` caps the training pairs
    read from an online dataset (default `ONLINE_TRAIN_LIMIT`); the embedded
    corpora and TSV files are read whole.
    """
    if train_tsv:
        return {"train_tsv": read_tsv(train_tsv)}, "source", "target"
    parts = dataset_parts(dataset)
    out = {}
    for part in parts:
        if part in ONLINE:
            name, source_key, target_key = ONLINE[part]
            limit = limit or ONLINE_TRAIN_LIMIT  # wmt14 has 40M pairs: more than memory holds.
            builder = common_data.online_builder(name, data_dir)
            out[part] = {
                split: _from_tfds(builder.as_dataset(split=split, shuffle_files=False),
                                  source_key, target_key, limit if split == "train" else None)
                for split in SPLITS
            }
            return out, source_key, target_key
        language = _language(part)
        if part.split("/", 1)[0] == LONG:
            builder, keys = long_translations_builder(language, data_dir), ("source", "target")
        else:
            builder, keys = gettext_builder(language, data_dir), ("en", language)
        out[part] = {name: _from_tfds(builder.as_dataset(split=name, shuffle_files=False), *keys)
                     for name in SPLITS}
    return out, "en", _language(parts[0])


def load_splits(dataset: str, data_dir: str, train_tsv: str | None = None,
                limit: int | None = None) -> tuple[dict[str, Pairs], str, str]:
    """`({"train", "validation", "test"} -> Pairs, source language, target language)`.

    The splits of every part of `dataset` concatenated, in the order named (see
    `load_parts`).
    """
    parts, source, target = load_parts(dataset, data_dir, train_tsv, limit)
    return {name: _concat([splits[name] for splits in parts.values()]) for name in SPLITS}, \
        source, target


def make_tokenizers(train: Pairs, source_vocab: int, target_vocab: int, max_source: int,
                    max_target: int, min_count: int = 1, vocabulary: str = "word"):
    """Source tokenizer (plain) and target tokenizer (START ... END) from the training pairs.

    `vocabulary="word"`: a word list per language, the most frequent
    `source_vocab` / `target_vocab` tokens (reserved ones included) seen at least
    `min_count` times in training (rarer ones become [UNK]).

    `vocabulary="subword"`: ONE joint WordPiece vocabulary of at most
    `source_vocab` pieces (`apps.common.subword`, byte fallback: never [UNK])
    learnt from the training sources and targets together, shared by both
    tokenizers (`target_vocab` is not used). Joint, because English and French
    program text share identifiers, option names, numbers and technical terms
    that a translation copies: one vocabulary cuts them into the same pieces on
    both sides. `min_count` is the trainer's least pair frequency.

    The source tokenizer keeps `max_source` tokens; the target one keeps
    `max_target` tokens after START (END included).
    """
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}. Received: {vocabulary!r}")
    if vocabulary == "subword":
        pieces = subword.train_vocabulary(train.sources + train.targets, source_vocab,
                                          min_frequency=max(2, min_count))
        return (subword.SubwordTokenizer(pieces, max_source),
                subword.SubwordTokenizer(pieces, max_target + 1, bos_eos=True))
    t = translation_text
    src_vocab = t.build_vocabulary(train.sources, source_vocab, min_count=min_count)
    tgt_vocab = t.build_vocabulary(train.targets, target_vocab, min_count=min_count,
                                   reserved=(t.PAD, t.UNK, t.START, t.END))
    return (t.Tokenizer(src_vocab, max_source),
            t.Tokenizer(tgt_vocab, max_target + 1, bos_eos=True))


def save_tokenizers(source_tokenizer, target_tokenizer, directory: str) -> list[str]:
    """Writes the vocabularies under `directory`; returns the paths written.

    Word level: `source_vocabulary.json`, `target_vocabulary.json`. Subword:
    `subword/` (`vocab.txt`, one piece per line, and the source tokenizer's
    options), the joint vocabulary of both sides.
    """
    if isinstance(source_tokenizer, subword.SubwordTokenizer):
        path = os.path.join(directory, "subword")
        source_tokenizer.save(path)
        return [path]
    paths = [os.path.join(directory, f"{side}_vocabulary.json") for side in ("source", "target")]
    source_tokenizer.save(paths[0])
    target_tokenizer.save(paths[1])
    return paths


def load_tokenizers(directory: str, max_source: int, max_target: int,
                    vocabulary: str = "word"):
    """The tokenizers `save_tokenizers` wrote under `directory`, or None if it did not.

    The subword ones get `max_source` / `max_target` (+ START) as `make_tokenizers`
    gives them; the word ones keep the lengths they were saved with.
    """
    if vocabulary == "subword":
        path = os.path.join(directory, "subword")
        if not os.path.isfile(os.path.join(path, subword.VOCABULARY_FILE)):
            return None
        return (subword.SubwordTokenizer.load(path, max_length=max_source, bos_eos=False),
                subword.SubwordTokenizer.load(path, max_length=max_target + 1, bos_eos=True))
    paths = [os.path.join(directory, f"{side}_vocabulary.json") for side in ("source", "target")]
    if not all(os.path.isfile(p) for p in paths):
        return None
    return tuple(translation_text.Tokenizer.load(p) for p in paths)


def token_counts(tokenizer, texts: list, batch: int = 4096) -> np.ndarray:
    """Tokens (pieces for a subword tokenizer) of each text, before any truncation.

    START/END not counted. `batch` texts a call (4,096: 1.7x faster than 1,024 on the
    70,806 long sources, the same counts).
    """
    if isinstance(tokenizer, subword.SubwordTokenizer):
        counter = subword.SubwordTokenizer(
            tokenizer.vocabulary, max_length=1 << 16, lowercase=tokenizer.lowercase,
            unicode_words=tokenizer.unicode_words, max_word_chars=tokenizer.max_word_chars)

        def count(chunk):
            return counter.tokenize_ragged(chunk)[1].row_lengths()
    else:
        def count(chunk):
            return translation_text.split_words(chunk, tokenizer.lowercase).row_lengths()
    out = [count(tf.constant(texts[i : i + batch], tf.string)).numpy()
           for i in range(0, len(texts), batch)]
    return np.concatenate(out) if out else np.zeros([0], np.int64)


def fitting_pairs(pairs: Pairs, source_tokenizer, target_tokenizer) -> tuple[Pairs, int]:
    """The pairs that fit the tokenizers' lengths untruncated, and how many did not.

    A source fits in `source_tokenizer.max_length` tokens; a target in
    `target_tokenizer.max_length - 2` (START and END take the rest). Training on
    a cut source with a target that still says everything would teach the model
    to invent text; such pairs are dropped instead.
    """
    source = token_counts(source_tokenizer, pairs.sources)
    target = token_counts(target_tokenizer, pairs.targets)
    keep = (source <= source_tokenizer.max_length) & (target <= target_tokenizer.max_length - 2)
    kept = np.flatnonzero(keep)
    return (Pairs([pairs.sources[i] for i in kept], [pairs.targets[i] for i in kept]),
            int(len(pairs) - len(kept)))


def make_dataset(pairs: Pairs, source_tokenizer, target_tokenizer, batch_size: int,
                 training: bool = False, seed: int = 0, repeat: bool = False) -> tf.data.Dataset:
    """Batches `((source_ids, target_in), target_out)` for teacher forcing.

    `target_in` is START y_1 .. y_n, `target_out` is y_1 .. y_n END (0 = padding).
    Each batch is cut to its longest sentence, so short batches cost less. In
    `training`, the pairs are shuffled with `seed` (again each epoch) and
    sentences of similar length are batched together. With `repeat`, the pairs
    come round again without end (for a budget in steps), reshuffled each pass.
    """
    sources = tf.constant(pairs.sources, tf.string)
    targets = tf.constant(pairs.targets, tf.string)
    # Token ids made once, not every epoch (`text.token_ids`); the bytes of each pair for
    # the length buckets below.
    ds = tf.data.Dataset.from_tensor_slices((
        common_text.token_ids(source_tokenizer, pairs.sources),
        common_text.token_ids(target_tokenizer, pairs.targets),
        tf.strings.length(sources) + tf.strings.length(targets),
    ))
    if training:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def encode(src, tgt, _):
        src_len = tf.reduce_max(tf.reduce_sum(tf.cast(src != 0, tf.int32), axis=1))
        tgt_len = tf.reduce_max(tf.reduce_sum(tf.cast(tgt != 0, tf.int32), axis=1))
        src = src[:, : tf.maximum(src_len, 1)]
        tgt = tgt[:, : tf.maximum(tgt_len, 2)]
        return (src, tgt[:, :-1]), tgt[:, 1:]

    if training:
        # Sentences of similar length (16-character buckets, the last from 496 characters)
        # share a batch: little padding, still random.
        ds = ds.group_by_window(
            key_func=lambda s, t, length: tf.cast(tf.minimum(length // 16, 31), tf.int64),
            reduce_func=lambda _, window: window.batch(batch_size),
            window_size=batch_size,
        )
    else:
        ds = ds.batch(batch_size)
    ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
