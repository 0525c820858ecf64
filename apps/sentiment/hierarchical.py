"""The `han` variant: hierarchical attention over sentences of words (Yang et al. 2016).

Documents are split into sentences and words **inside the graph**
(`split_document`, TensorFlow string ops only, so the SavedModel takes raw
text and a stock TF Serving runs it):

1. the first `MAX_TEXT_BYTES` (1 MiB) are read and invalid UTF-8 becomes U+FFFD;
2. a sentence ends after `.`, `!`, `?`, `…`, `。`, `！` or `？` (a run of them,
   then any closing quotes or brackets) followed by white space or the end,
   and at a blank line (a paragraph break); single line breaks do not end a
   sentence (e-mail wraps its lines). "Mr. Smith" is two sentences: the rule
   knows no abbreviations;
3. each sentence is split into words as every variant does
   (`apps.common.text.split_words`); sentences without a word are dropped;
4. the first `max_sentences` sentences and the first `max_sentence_length`
   words of each are kept (`ModelConfig.max_sentences`,
   `ModelConfig.max_sentence_length`, defaults 32 x 25 = 800 words): longer
   input is truncated, never an error.

`HierarchicalTokenizer` turns `[batch]` strings into `[batch, S, W]` tokens and
ids (0 = padding). `build_han_model` builds the network of Yang et al.: a
bidirectional GRU (or LSTM, `ModelConfig.han_cell`) over the words of each
sentence, word attention per sentence, a bidirectional GRU over the sentence
vectors and sentence attention, as one
`keras_attention.layers.HierarchicalAttentionPooling`. Its explainer returns
`attention_weights` `[batch, S, W]` (each word's share of the document: word
weight x sentence weight, summing to 1 over a document's words),
`word_weights` `[batch, S, W]` (summing to 1 within each sentence) and
`sentence_weights` `[batch, S]` (summing to 1 over a document's sentences).
A document without words gets all-zero weights and the model's answer for
the empty input.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf
from keras import ops

from apps.common import text as common_text
from keras_attention import layers as attention_layers

#: Marks a sentence end inside the graph (ASCII record separator; removed from the input).
_BOUNDARY = "\x1e"
_SENTENCE_END = r"([.!?…。！？]+[\"'”’»)\]]*)(\s+|$)"
_PARAGRAPH = r"\n\s*\n\s*"


def split_sentences(text: tf.Tensor) -> tf.RaggedTensor:
    """`[batch]` strings -> ragged `[batch, (sentences)]` strings (see the module docstring;
    empty sentences are kept here)."""
    text = tf.convert_to_tensor(text, tf.string)
    text = tf.strings.unicode_transcode(
        common_text.clip_bytes(text), "UTF-8", "UTF-8", errors="replace",
        replacement_char=0xFFFD)
    text = tf.strings.regex_replace(text, _BOUNDARY, " ")
    text = tf.strings.regex_replace(text, _PARAGRAPH, _BOUNDARY)
    text = tf.strings.regex_replace(text, _SENTENCE_END, r"\1" + _BOUNDARY)
    return tf.strings.split(text, sep=_BOUNDARY)


def split_document(text: tf.Tensor, max_sentences: int, max_words: int,
                   lowercase: bool = True, keep_whole: str | None = None) -> tf.RaggedTensor:
    """`[batch]` strings -> ragged `[batch, (sentences), (words)]` words: empty sentences
    dropped, at most `max_sentences` sentences of at most `max_words` words
    (`keep_whole`: as `apps.common.text.standardize`'s)."""
    sentences = split_sentences(text)
    words = common_text.split_words(sentences.flat_values, lowercase, keep_whole=keep_whole)
    document = tf.RaggedTensor.from_row_splits(words, sentences.row_splits)
    keep = tf.RaggedTensor.from_row_splits(words.row_lengths() > 0, sentences.row_splits)
    document = tf.ragged.boolean_mask(document, keep)
    return document[:, :max_sentences, :max_words]


class HierarchicalTokenizer(common_text.Tokenizer):
    """Raw strings -> `[batch, S, W]` tokens and ids, as TensorFlow ops (in the SavedModel).

    Args:
        vocabulary: list of tokens; index = id; starts with PAD, UNK.
        max_length: words kept per sentence (`W`).
        max_sentences: sentences kept per document (`S`).
        lowercase: lower-case before splitting.
        keep_whole: words kept as one token (`apps.common.text.Tokenizer`'s).
    """

    def __init__(self, vocabulary, max_length: int, max_sentences: int,
                 lowercase: bool = True, bos_eos: bool = False, keep_whole=(), name=None):
        if bos_eos:
            raise ValueError("HierarchicalTokenizer has no bos_eos.")
        if int(max_sentences) <= 0:
            raise ValueError(f"max_sentences must be positive, got {max_sentences}.")
        super().__init__(vocabulary, max_length, lowercase=lowercase, keep_whole=keep_whole,
                         name=name)
        self.max_sentences = int(max_sentences)

    @classmethod
    def like(cls, tokenizer: common_text.Tokenizer, max_sentences: int,
             max_length: int) -> HierarchicalTokenizer:
        """One with `tokenizer`'s vocabulary."""
        return cls(tokenizer.vocabulary, max_length, max_sentences,
                   lowercase=tokenizer.lowercase, keep_whole=tokenizer.keep_whole)

    def tokenize(self, text: tf.Tensor):
        """`[batch]` strings -> (`tokens` `[batch, S, W]` strings, `ids` int32); padding
        holds "" and id 0."""
        words = split_document(text, self.max_sentences, self.max_length, self.lowercase,
                               self._keep_pattern)
        shape = [None, self.max_sentences, self.max_length]
        tokens = words.to_tensor(default_value="", shape=shape)
        ids = tf.ragged.map_flat_values(self._to_id.lookup, words)
        return tokens, tf.cast(ids.to_tensor(default_value=0, shape=shape), tf.int32)

    def save(self, path: str) -> None:
        """The flat tokenizer's JSON (`load` reads it back) plus `max_sentences`."""
        super().save(path)
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({**spec, "max_sentences": self.max_sentences}, f, ensure_ascii=False)


def make_tokenizer(tokenizer: common_text.Tokenizer, config) -> common_text.Tokenizer:
    """`tokenizer` as the variant of `config` (a `ModelConfig`) reads text: a
    `HierarchicalTokenizer` with its vocabulary for `han`, else `tokenizer` itself."""
    if config.variant != "han":
        return tokenizer
    return HierarchicalTokenizer.like(tokenizer, config.max_sentences,
                                      config.max_sentence_length)


@keras.saving.register_keras_serializable(package="sentiment")
class DocumentWordWeights(keras.layers.Layer):
    """Word weights `(batch, S, W)` x sentence weights `(batch, S)`: each word's share of
    the document (sums to 1 over a document's words, 0 for an empty document)."""

    def call(self, word_weights, sentence_weights):
        return word_weights * ops.expand_dims(sentence_weights, -1)

    def compute_output_spec(self, word_weights, sentence_weights):
        return keras.KerasTensor(word_weights.shape, dtype=word_weights.dtype)


def build_han_model(config):
    """`SentimentModels(classifier, explainer)` of the `han` variant over ids `(batch, S, W)`."""
    from apps.sentiment import model as sentiment_model

    shape = (config.max_sentences, config.max_sentence_length)
    ids = keras.Input(shape=shape, dtype="int32", name="ids")
    mask = sentiment_model.PaddingMask(name="padding_mask")(ids)
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim,
                               name="token_embedding")(ids)
    x = keras.layers.Dropout(config.embedding_dropout, name="embedding_dropout")(x)
    cell = keras.layers.GRU if config.han_cell == "gru" else keras.layers.LSTM

    def encoder(name):
        return keras.layers.Bidirectional(
            cell(config.lstm_units, return_sequences=True), name=name)

    pooling = attention_layers.HierarchicalAttentionPooling(
        config.attention_units, config.attention_units, word_encoder=encoder("word_encoder"),
        sentence_encoder=encoder("sentence_encoder"), dropout=config.attention_dropout,
        name="hierarchical_attention")
    document, word_weights, sentence_weights = pooling(x, mask=mask,
                                                       return_attention_scores=True)
    if config.attention_zero_init:
        for level in (pooling.word_attention, pooling.sentence_attention):
            level.context_kernel.assign(ops.zeros_like(level.context_kernel))
    weights = DocumentWordWeights(name="document_word_weights")(word_weights, sentence_weights)
    h = keras.layers.Dropout(config.dropout, name="dropout")(document)
    probabilities = keras.layers.Dense(2, activation="softmax", dtype="float32",
                                       name="probabilities")(h)
    classifier = keras.Model(ids, probabilities, name="sentiment_han")
    explainer = keras.Model(ids, {
        "probabilities": probabilities, "attention_weights": weights,
        "word_weights": word_weights, "sentence_weights": sentence_weights,
    }, name="sentiment_han_explainer")
    return sentiment_model.SentimentModels(classifier, explainer)
