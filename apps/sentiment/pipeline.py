"""From a prepared sentiment dataset to `tf.data`: splits, tokenizer, batches.

`DATASETS`: the embedded `vader_sentiment` (its `movies` domain by default,
`vader_sentiment/<domain>`, several domains joined with `+` such as
`vader_sentiment/movies+tweets+amazon`, or `vader_sentiment/all` for the four;
each domain built once by `apps.sentiment.builder` through
`apps.common.data.prepare`), and the public `imdb_reviews` and `glue/sst2`
(for machines online), read through `apps.common.data.online_builder`.
`LONG`: the long documents of `apps.sentiment.long_documents` (`polarity_reviews`,
`spam_assassin`), built once like VADER's; `label_names` gives a dataset's labels.

Several domains train together: their train and validation splits are joined,
and `domain_tests` keeps each domain's test split apart, so a run reports one
test accuracy per domain; the domains left out are scored whole by
`out_of_domain`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import data as common_data
from apps.common import text as common_text
from apps.sentiment import builder as sentiment_builder
from apps.sentiment import lexicon, long_documents
from apps.sentiment.builder import DOMAINS, EMBEDDED

ONLINE = ("imdb_reviews", "glue/sst2")
LONG = tuple(long_documents.BUILDERS)
ALL = "all"
DATASETS = (EMBEDDED,) + tuple(f"{EMBEDDED}/{d}" for d in DOMAINS + (ALL,)) + ONLINE + LONG


def label_names(dataset: str) -> tuple[str, ...]:
    """The names of labels 0 and 1 of `dataset` (("ham", "spam") for spam_assassin)."""
    if dataset in long_documents.BUILDERS:
        return long_documents.BUILDERS[dataset].LABEL_NAMES
    return sentiment_builder.LABELS


def is_dataset(dataset: str) -> bool:
    """Whether `dataset` is one of `DATASETS` or a `+`-joined set of VADER domains."""
    return dataset in DATASETS or bool(domains_of(dataset))


@dataclasses.dataclass
class Split:
    """One split in memory: raw texts (bytes) and integer labels (0 negative, 1 positive)."""

    texts: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def head(self, n: int) -> Split:
        return Split(self.texts[:n], self.labels[:n])

    def take(self, indices) -> Split:
        """The examples at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return Split(self.texts[indices], self.labels[indices])


def _to_split(ds: tf.data.Dataset, text_key: str) -> Split:
    texts, labels = [], []
    for example in tfds.as_numpy(ds):
        texts.append(example[text_key])
        labels.append(example["label"])
    return Split(np.array(texts, dtype=object), np.array(labels, dtype=np.int32))


def domains_of(dataset: str) -> tuple[str, ...]:
    """The VADER domains `dataset` trains on (`("movies",)` for plain `vader_sentiment`);
    () for a dataset that is not VADER's or names an unknown domain."""
    if dataset == EMBEDDED:
        return (sentiment_builder.VaderSentiment.DEFAULT_CONFIG_NAME,)
    if not dataset.startswith(EMBEDDED + "/"):
        return ()
    spec = dataset.split("/", 1)[1]
    if spec == ALL:
        return DOMAINS
    parts = tuple(spec.split("+"))
    if not parts or any(p not in DOMAINS for p in parts) or len(set(parts)) != len(parts):
        return ()
    return tuple(d for d in DOMAINS if d in parts)


def domain_of(dataset: str) -> str | None:
    """The VADER domain of a one-domain `dataset` (`movies` for plain `vader_sentiment`)."""
    domains = domains_of(dataset)
    return domains[0] if len(domains) == 1 else None


def concat(splits: list[Split]) -> Split:
    """The examples of `splits` one after another."""
    return Split(np.concatenate([s.texts for s in splits]),
                 np.concatenate([s.labels for s in splits]))


def vader_builder(domain: str, data_dir: str, archive: str | None = None):
    """The prepared (built once, verified) `vader_sentiment/<domain>` builder."""
    if domain not in DOMAINS:
        raise ValueError(f"Unknown VADER domain {domain!r}; expected one of {DOMAINS}.")
    kwargs = {"archive": archive} if archive else {}
    return common_data.prepare(sentiment_builder.VaderSentiment, data_dir, config=domain,
                               **kwargs)


def load_splits(dataset: str, data_dir: str, archive: str | None = None) -> dict[str, Split]:
    """`{"train", "validation", "test"}` -> Split for `dataset` (see `DATASETS`)."""
    domains = domains_of(dataset)
    if domains:
        builders = [vader_builder(d, data_dir, archive) for d in domains]
        return {
            name: concat([_to_split(b.as_dataset(split=name, shuffle_files=False), "text")
                           for b in builders])
            for name in ("train", "validation", "test")
        }
    if dataset in long_documents.BUILDERS:
        kwargs = {"archive": archive} if archive else {}
        builder = common_data.prepare(long_documents.BUILDERS[dataset], data_dir, **kwargs)
        splits = {name: name for name in ("train", "validation", "test")}
        key = "text"
    elif dataset == "imdb_reviews":
        builder = common_data.online_builder("imdb_reviews/plain_text", data_dir)
        splits = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
        key = "text"
    elif dataset == "glue/sst2":
        # GLUE's test labels are hidden (-1): evaluate on its validation split.
        builder = common_data.online_builder("glue/sst2", data_dir)
        splits = {"train": "train[:95%]", "validation": "train[95%:]", "test": "validation"}
        key = "sentence"
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    return {
        name: _to_split(builder.as_dataset(split=spec, shuffle_files=False), key)
        for name, spec in splits.items()
    }


def check_fold(fold: int | None, folds: int) -> None:
    """Raises ValueError unless `folds` is an integer >= 3 and `fold` None or in [0, folds)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 3:
        raise ValueError(f"folds must be an integer >= 3. Received: folds={folds!r}")
    if fold is not None and (not isinstance(fold, int) or isinstance(fold, bool)
                             or not 0 <= fold < folds):
        raise ValueError(f"fold must be None or an integer in [0, folds={folds}). "
                         f"Received: fold={fold!r}")


def cross_validation_fold(splits: dict[str, Split], fold: int, folds: int = 10
                          ) -> dict[str, Split]:
    """Fold `fold` of a `folds`-fold cross-validation of the documents of `splits`.

    The three splits are pooled; per label, the distinct texts in the order of
    their hash (`long_documents.text_key`, as the builders split) are cut into
    `folds` parts as equal as can be; the fold tests on part `fold`, validates
    on part `fold - 1` (mod `folds`) and trains on the rest, so across the folds
    every document is tested once, by a model that never saw it. With 10 folds,
    fold 9 is the builders' own 80/10/10 split. Identical texts share a part.
    """
    check_fold(fold, folds)
    if fold is None:
        raise ValueError("fold must be an integer in [0, folds), not None.")
    pooled = concat([splits[name] for name in ("train", "validation", "test")])
    texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
             for t in pooled.texts]
    keys = [long_documents.text_key(t) for t in texts]
    part = np.empty(len(pooled), dtype=np.int64)
    for label in np.unique(pooled.labels):
        mine = np.flatnonzero(pooled.labels == label)
        distinct = sorted({keys[i] for i in mine})
        if len(distinct) < folds:
            raise ValueError(f"label {int(label)} has {len(distinct)} distinct documents, "
                             f"fewer than folds={folds}.")
        rank = {key: i for i, key in enumerate(distinct)}
        for i in mine:
            part[i] = rank[keys[i]] * folds // len(distinct)
    roles = {"test": fold, "validation": (fold - 1) % folds}
    out = {name: pooled.take(np.flatnonzero(part == p)) for name, p in roles.items()}
    out["train"] = pooled.take(np.flatnonzero(~np.isin(part, list(roles.values()))))
    return {name: out[name] for name in ("train", "validation", "test")}


def domain_tests(dataset: str, data_dir: str, archive: str | None = None) -> dict:
    """`{domain: test Split}` of every VADER domain `dataset` trains on."""
    return {
        domain: _to_split(vader_builder(domain, data_dir, archive).as_dataset(
            split="test", shuffle_files=False), "text")
        for domain in domains_of(dataset)
    }


def out_of_domain(data_dir: str, archive: str | None = None, train_domains=("movies",)):
    """`{domain: Split}` of every VADER domain not in `train_domains`, all splits together.

    None of their sentences is trained on, so every example is a test example.
    """
    if isinstance(train_domains, str):
        train_domains = (train_domains,)
    out = {}
    for domain in DOMAINS:
        if domain in train_domains:
            continue
        builder = vader_builder(domain, data_dir, archive)
        out[domain] = _to_split(
            builder.as_dataset(split="train+validation+test", shuffle_files=False), "text"
        )
    return out


def make_tokenizer(train: Split, vocab_size: int, max_length: int,
                   extra_words=(), keep_whole=()) -> common_text.Tokenizer:
    """A tokenizer whose vocabulary is the `vocab_size` most frequent training tokens, then
    the `extra_words` they lack (the lexicon's, `model.lexicon`); it keeps the
    `keep_whole` words (emoticons, `model.emoticons`) as one token."""
    texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t
             for t in train.texts]
    pattern = common_text.whole_tokens_pattern(keep_whole) if keep_whole else None
    vocabulary = lexicon.extend_vocabulary(
        common_text.build_vocabulary(texts, vocab_size, keep_whole=pattern), extra_words)
    return common_text.Tokenizer(vocabulary, max_length, keep_whole=keep_whole)


#: Lines of training text the subword trainer reads at most (the rest adds little).
SUBWORD_TRAINING_TEXTS = 200_000


def make_subword_tokenizer(train: Split, vocab_size: int, max_length: int):
    """A WordPiece tokenizer (`apps.common.subword`) of at most `vocab_size` pieces learned
    from the training texts: unknown words come out as pieces, never `[UNK]`."""
    from apps.common import subword

    texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t
             for t in train.texts[:SUBWORD_TRAINING_TEXTS]]
    vocabulary = subword.train_vocabulary(texts, vocab_size)
    return subword.SubwordTokenizer(vocabulary, max_length)


#: Batches whose texts are sorted by length together (`make_dataset`'s `by_length`).
LENGTH_POOL = 50


def make_dataset(split: Split, tokenizer, batch_size: int, training: bool = False,
                 seed: int = 0, by_length: bool = False) -> tf.data.Dataset:
    """Batched `(ids [batch, T] int32, label [batch] int32)` pairs.

    `training`: shuffle every epoch (seeded with `seed`); otherwise in order.
    `by_length` (with `training`): after the shuffle, every `LENGTH_POOL` batches' worth
    of texts are sorted by their number of tokens and cut into batches, and the batches
    are shuffled again: each batch holds texts of about one length, so a model that
    drops all-padding columns (`model.TrimPadding`, the `bert` variant) computes
    little padding. Every example is still seen once an epoch.
    """
    ids = common_text.token_ids(tokenizer, split.texts)  # once, not every epoch
    ds = tf.data.Dataset.from_tensor_slices((ids, split.labels))
    if training:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    if training and by_length:
        def sort_pool(pool_ids, pool_labels):
            order = tf.argsort(tf.reduce_sum(tf.cast(pool_ids != 0, tf.int32), axis=1),
                               stable=True)
            return tf.data.Dataset.from_tensor_slices(
                (tf.gather(pool_ids, order), tf.gather(pool_labels, order)))

        batches = -(-len(split) // batch_size)
        ds = (ds.batch(batch_size * LENGTH_POOL).flat_map(sort_pool).batch(batch_size)
              .apply(tf.data.experimental.assert_cardinality(batches))
              .shuffle(LENGTH_POOL, seed=seed + 1, reshuffle_each_iteration=True))
        return ds.prefetch(tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
