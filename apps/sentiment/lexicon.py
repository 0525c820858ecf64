"""The VADER lexicon as prior knowledge inside the model: fixed features per word.

A model trained on 20,000 sentences knows only the words it saw, and loses to a
hand-built word list on domains it did not see (`benchmarks/results/sentiment_domains.md`).
With `model.lexicon=vader` every word also carries fixed, human-rated features
from the lexicon of Hutto & Gilbert (2014), read from the installed
`vaderSentiment` package (its `vader_lexicon.txt`, `NEGATE` and `BOOSTER_DICT`):

- `valence`: the word's mean human rating / 4 (in [-1, 1]); 0 off the lexicon;
- `in_lexicon`: 1 for a rated word;
- `negation`: 1 for a negation (`not`, `isn't`, `never`, ...);
- `booster`: +1 for an intensifier (`very`), -1 for a dampener (`slightly`);
- `contrast`: 1 for `but`, which shifts the weight to the clause after it.

The model learns how to combine them with the sentence (negation scope,
contrast, domain), the way lexicon features feed neural models in Teng et al.
(2016). The lexicon's words join the vocabulary (`extend_vocabulary`), so a rated
word the training text never had still gets its features rather than `[UNK]`'s
zeros; its learnt embedding stays near its initial value. The features are a
frozen embedding of the model: they travel inside its weights and its SavedModel.

`LexiconScore` turns a sentence's features into one rule-based score in (-1, 1),
the kind of sum Hutto & Gilbert's rules compute (negation within three words
flips and damps a rating, a booster just before moves it by 0.293, `but` halves
what comes before it and raises what follows by half, the sum is squashed by
x / sqrt(x² + 15)), written here with Keras ops. Emoticons, capitals and `!`
are not modelled. `PriorSoftmax` adds it to the classifier's logits as a fixed
prior (`model.lexicon_prior`).

Only entries that the word tokenizer keeps as one token count. It splits `:)`
into two, so by default emoticons are left to what the model learns; with
`model.emoticons` the tokenizer keeps the lexicon's emoticons whole
(`vader_emoticons`) and they carry their ratings like words.
"""

from __future__ import annotations

import functools
import os
import re

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.common import text as common_text

FEATURES = ("valence", "in_lexicon", "negation", "booster", "contrast")
#: The largest |rating| of the lexicon's scale (-4..+4).
_SCALE = 4.0
#: The words that turn the weight to the clause after them.
CONTRAST = ("but",)
#: LexiconScore's constants, as Hutto & Gilbert published them.
NEGATION_SCALE = -0.74
BOOSTER_STEP = 0.293
NEGATION_SCOPE = 3
BEFORE_CONTRAST, AFTER_CONTRAST = 0.5, 1.5
SQUASH = 15.0
#: Hyphenated lexicon words ("cover-up", "short-sightedness"): not emoticons.
_HYPHENATED = re.compile(r"[a-z]{2,}(?:-[a-z]+)+")


def _package_dir() -> str:
    from vaderSentiment import vaderSentiment

    return os.path.dirname(vaderSentiment.__file__)


def parse_lexicon(lines) -> dict[str, float]:
    """`token<TAB>mean<TAB>...` lines -> {token: mean rating}; blank lines are skipped,
    a line without a numeric mean is an error naming it."""
    out = {}
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            out[fields[0]] = float(fields[1])
        except (IndexError, ValueError):
            raise ValueError(f"VADER lexicon line {number} is not 'token<TAB>mean<TAB>...': "
                             f"{line[:80]!r}") from None
    return out


def _one_token(words, keep_whole: str | None = None) -> set[str]:
    """The `words` the word tokenizer keeps whole (standardized, one token, unchanged)."""
    words = sorted(set(words))
    split = common_text.split_words(tf.constant(words), keep_whole=keep_whole).to_list()
    return {w for w, tokens in zip(words, split, strict=True)
            if len(tokens) == 1 and tokens[0].decode("utf-8") == w}


def _ratings() -> dict[str, float]:
    with open(os.path.join(_package_dir(), "vader_lexicon.txt"), encoding="utf-8") as f:
        return parse_lexicon(f)


@functools.lru_cache(maxsize=1)
def vader_emoticons() -> tuple[str, ...]:
    """The lexicon's entries that the word tokenizer would split at their punctuation:
    its emoticons (":)", ":-(", "<3", "\\o/", ...), in lower case and rated under that
    form (VADER looks a word up lower-cased), one whitespace-separated word each.
    Hyphenated words ("cover-up") are not among them: they stay split as in any text.
    Sorted.

    `model.emoticons` keeps them whole (`apps.common.text.standardize`'s `keep_whole`)."""
    ratings = _ratings()
    candidates = {w.lower() for w in ratings if not any(c.isspace() for c in w)}
    candidates = {w for w in candidates & set(ratings) if not _HYPHENATED.fullmatch(w)}
    return tuple(sorted(candidates - _one_token(candidates)))


@functools.lru_cache(maxsize=2)
def vader_features(emoticons: bool = False) -> dict[str, tuple[float, ...]]:
    """{token: features (see `FEATURES`)} of every single-token lexicon word, negation
    and booster of the installed `vaderSentiment` package; with `emoticons`, also of
    `vader_emoticons` (which the tokenizer then keeps whole)."""
    from vaderSentiment import vaderSentiment

    ratings = _ratings()
    negations = set(vaderSentiment.NEGATE)
    negations |= {w.replace("'", "\u2019") for w in negations}  # typographic apostrophes
    boosters = {w: float(np.sign(v)) for w, v in vaderSentiment.BOOSTER_DICT.items()}
    keep = common_text.whole_tokens_pattern(vader_emoticons()) if emoticons else None
    kept = _one_token(set(ratings) | negations | set(boosters) | set(CONTRAST), keep)
    features = {}
    for word in kept:
        rating = ratings.get(word)
        features[word] = (
            0.0 if rating is None else rating / _SCALE,
            0.0 if rating is None else 1.0,
            1.0 if word in negations else 0.0,
            boosters.get(word, 0.0),
            1.0 if word in CONTRAST else 0.0,
        )
    return features


def score_texts(texts, emoticons: bool = False, batch: int = 1024) -> np.ndarray:
    """`LexiconScore` of raw `texts` (str or bytes) on their own, no model: the words
    as the word tokenizer splits them (keeping `vader_emoticons` whole with
    `emoticons`), rated by `vader_features`. float32 `(len(texts),)` in (-1, 1)."""
    features = vader_features(emoticons)
    keep = common_text.whole_tokens_pattern(vader_emoticons()) if emoticons else None
    vocabulary = [common_text.PAD, common_text.UNK, *sorted(features)]
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary),
                                            tf.range(len(vocabulary), dtype=tf.int64)), 1)
    matrix = feature_matrix(vocabulary, features)
    layer = LexiconScore()
    out = []
    for i in range(0, len(texts), batch):
        chunk = [t if isinstance(t, bytes) else str(t).encode("utf-8")
                 for t in texts[i : i + batch]]
        words = common_text.split_words(tf.constant(chunk, tf.string), keep_whole=keep)
        ids = tf.ragged.map_flat_values(table.lookup, words).to_tensor(0).numpy()
        if ids.shape[1] == 0:
            ids = np.zeros((len(chunk), 1), np.int64)
        out.append(np.asarray(layer(matrix[ids], ids > 0))[:, 0])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def extend_vocabulary(vocabulary, words) -> list[str]:
    """`vocabulary` followed by the `words` it lacks (sorted): ids of the first stay."""
    vocabulary = list(vocabulary)
    present = set(vocabulary)
    return vocabulary + sorted(w for w in set(words) if w not in present)


def feature_matrix(vocabulary, features=None) -> np.ndarray:
    """`(len(vocabulary), len(FEATURES))` float32: row i holds token i's features (zeros
    for a token off the lexicon, `[PAD]` and `[UNK]` included)."""
    features = vader_features() if features is None else features
    matrix = np.zeros((len(vocabulary), len(FEATURES)), np.float32)
    for i, token in enumerate(vocabulary):
        if token in features:
            matrix[i] = features[token]
    return matrix


def _shift(x, k: int):
    """`(batch, T)` -> the value k steps earlier at each step (0 for the first k)."""
    return ops.pad(x, [[0, 0], [k, 0]])[:, : ops.shape(x)[1]]


@keras.saving.register_keras_serializable(package="sentiment")
class LexiconScore(keras.layers.Layer):
    """A sentence's rule-based lexicon score from its tokens' features (no weights).

    Call arguments:
        features: `(batch, T, len(FEATURES))`, `feature_matrix` rows of the tokens.
        mask: boolean `(batch, T)`, True at real tokens.

    Returns:
        `(batch, 1)` in (-1, 1): positive for a positive sentence; 0 without rated words.
    """

    def call(self, features, mask):
        valence = features[..., 0] * _SCALE
        negation, booster, contrast = features[..., 2], features[..., 3], features[..., 4]
        negated = _shift(negation, 1)
        for k in range(2, NEGATION_SCOPE + 1):
            negated = ops.maximum(negated, _shift(negation, k))
        valence = valence + ops.sign(valence) * BOOSTER_STEP * _shift(booster, 1)
        valence = ops.where(negated > 0, valence * NEGATION_SCALE, valence)
        seen = ops.cumsum(contrast, axis=1)  # contrast words up to and including each step
        after = ops.cast((seen - contrast) > 0, valence.dtype)  # past the first one
        has_contrast = ops.cast(ops.sum(contrast, axis=1, keepdims=True) > 0, valence.dtype)
        weight = 1.0 + has_contrast * (after * (AFTER_CONTRAST - 1.0)
                                       + (1.0 - after) * (BEFORE_CONTRAST - 1.0))
        total = ops.sum(valence * weight * ops.cast(mask, valence.dtype), axis=1,
                        keepdims=True)
        return total / ops.sqrt(total * total + SQUASH)

    def compute_output_spec(self, features, mask):
        return keras.KerasTensor((features.shape[0], 1), dtype=self.compute_dtype)


#: |score| is clipped here before atanh, so the prior margin stays finite.
MAX_SCORE = 0.999


@keras.saving.register_keras_serializable(package="sentiment")
class PriorSoftmax(keras.layers.Layer):
    """Softmax of 2-class logits plus the lexicon's prior: `weight * atanh(score)` added to
    the positive class's margin (half to class 1, minus half to class 0).

    Args:
        weight: the prior's weight (>= 0).
        in_training: also while training (the network learns a correction to the lexicon);
            false: only at inference (the trained network's and the lexicon's verdicts
            multiplied, a product of experts).
        inference_weight: the prior's weight at inference, when it differs from the
            training's (None: `weight`). The network learns its correction with `weight`
            and is trusted less than that on new text.

    Call arguments:
        logits: `(batch, 2)`.
        score: `(batch, 1)`, `LexiconScore`'s output, in (-1, 1).
    """

    def __init__(self, weight: float, in_training: bool = True,
                 inference_weight: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.in_training = bool(in_training)
        self.inference_weight = None if inference_weight is None else float(inference_weight)

    @property
    def served_weight(self) -> float:
        """The weight applied at inference."""
        return self.weight if self.inference_weight is None else self.inference_weight

    def call(self, logits, score, training=None):
        logits = ops.cast(logits, self.compute_dtype)
        if training and not self.in_training:
            return ops.softmax(logits, axis=-1)
        weight = self.weight if training else self.served_weight
        score = ops.clip(ops.cast(score, self.compute_dtype), -MAX_SCORE, MAX_SCORE)
        margin = 0.5 * weight * ops.arctanh(score)
        return ops.softmax(logits + ops.concatenate([-margin, margin], axis=-1), axis=-1)

    def compute_output_spec(self, logits, score):
        return keras.KerasTensor(logits.shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "in_training": self.in_training,
                "inference_weight": self.inference_weight}
