"""From sentence pairs to `tf.data`: the splits, the tokenizers, teacher-forcing batches.

`load_splits` reads one of:

- the embedded `gettext_translations/<lang>` (`apps.translation.builder`; en->fr by
  default), built once under the data dir through `apps.common.data.prepare`;
- a user's own `source<TAB>target` file (`--config=train_tsv=PATH`), split like the
  embedded data by a hash of the source;
- the public tfds datasets `ted_hrlr_translate/pt_to_en` and `wmt14_translate/fr-en`
  (en->fr), through `apps.common.data.online_builder` (machines that are online).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.translation import builder as translation_builder
from apps.translation import text as translation_text
from apps.translation.builder import EMBEDDED, LANGUAGES, SPLITS, fold, split_of

# name -> (tfds name, source key, target key): public datasets for machines online.
ONLINE = {
    "ted_hrlr_translate/pt_to_en": ("ted_hrlr_translate/pt_to_en", "pt", "en"),
    "wmt14_translate/fr-en": ("wmt14_translate/fr-en", "en", "fr"),
}
ONLINE_TRAIN_LIMIT = 300_000
DATASETS = (EMBEDDED,) + tuple(f"{EMBEDDED}/{lang}" for lang in LANGUAGES) + tuple(ONLINE)


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
    """The prepared (built once, verified) `gettext_translations/<language>` builder.

    `kwargs` go to `GettextTranslations` (`packages`, `deb_dir`).
    """
    if language not in LANGUAGES:
        raise ValueError(f"Unknown language {language!r}; expected one of {sorted(LANGUAGES)}.")
    return common_data.prepare(translation_builder.GettextTranslations, data_dir,
                               config=language, **kwargs)


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
            for name in SPLITS
        }, "en", language
    if dataset in ONLINE:
        name, source_key, target_key = ONLINE[dataset]
        limit = limit or ONLINE_TRAIN_LIMIT  # wmt14 has 40M pairs: more than memory holds.
        builder = common_data.online_builder(name, data_dir)
        return {
            split: _from_tfds(builder.as_dataset(split=split, shuffle_files=False), source_key,
                              target_key, limit if split == "train" else None)
            for split in SPLITS
        }, source_key, target_key
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")


def make_tokenizers(train: Pairs, source_vocab: int, target_vocab: int, max_source: int,
                    max_target: int, min_count: int = 1):
    """Source tokenizer (plain) and target tokenizer (START ... END) from the training pairs.

    Vocabularies: the most frequent `source_vocab` / `target_vocab` tokens (reserved
    ones included) seen at least `min_count` times in training (rarer ones become [UNK]).
    The target tokenizer keeps `max_target` tokens after START (END included).
    """
    t = translation_text
    src_vocab = t.build_vocabulary(train.sources, source_vocab, min_count=min_count)
    tgt_vocab = t.build_vocabulary(train.targets, target_vocab, min_count=min_count,
                                   reserved=(t.PAD, t.UNK, t.START, t.END))
    return (t.Tokenizer(src_vocab, max_source),
            t.Tokenizer(tgt_vocab, max_target + 1, bos_eos=True))


def make_dataset(pairs: Pairs, source_tokenizer, target_tokenizer, batch_size: int,
                 training: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches `((source_ids, target_in), target_out)` for teacher forcing.

    `target_in` is START y_1 .. y_n, `target_out` is y_1 .. y_n END (0 = padding).
    Each batch is cut to its longest sentence, so short batches cost less. In
    `training`, the pairs are shuffled with `seed` (again each epoch) and
    sentences of similar length are batched together.
    """
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(pairs.sources, tf.string), tf.constant(pairs.targets, tf.string))
    )
    if training:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)

    def encode(source, target):
        src = source_tokenizer.tokenize(source)[1]
        tgt = target_tokenizer.tokenize(target)[1]
        src_len = tf.reduce_max(tf.reduce_sum(tf.cast(src != 0, tf.int32), axis=1))
        tgt_len = tf.reduce_max(tf.reduce_sum(tf.cast(tgt != 0, tf.int32), axis=1))
        src = src[:, : tf.maximum(src_len, 1)]
        tgt = tgt[:, : tf.maximum(tgt_len, 2)]
        return (src, tgt[:, :-1]), tgt[:, 1:]

    if training:
        # Sentences of similar length (16-character buckets) share a batch: little padding,
        # still random.
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
