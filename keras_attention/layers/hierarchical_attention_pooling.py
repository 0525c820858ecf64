"""Two-level attention pooling of documents: words in sentences, then sentences (Yang et al.
2016)."""

from __future__ import annotations

import inspect

import keras
from keras import ops

from keras_attention import _validation
from keras_attention.layers import _common
from keras_attention.layers.attention_pooling import AttentionPooling


def _sublayer(name, value):
    """None, a `keras.layers.Layer`, or its serialized config (a dict) -> None or a Layer."""
    if value is None or isinstance(value, keras.layers.Layer):
        return value
    if isinstance(value, dict):
        return keras.layers.deserialize(value)
    raise ValueError(f"{name}={value!r} must be None, a keras.layers.Layer or a layer config "
                     "(a dict from keras.layers.serialize).")


def _encode(encoder, x, mask, training):
    """`encoder(x)` with the mask and `training` when its `call` takes them."""
    if encoder is None:
        return x
    parameters = inspect.signature(encoder.call).parameters
    kwargs = {}
    if "mask" in parameters:
        kwargs["mask"] = mask
    if "training" in parameters:
        kwargs["training"] = training
    return encoder(x, **kwargs)


@keras.saving.register_keras_serializable(package="keras_attention")
class HierarchicalAttentionPooling(keras.layers.Layer):
    """Pools a document of sentences of words into one vector, attention at both levels.

    The hierarchical attention of Yang et al. (2016). The input holds, for every
    document, `S` sentences of `W` (encoded) words; with `h_it` word `t` of
    sentence `i`:

        α_it = softmax_t(tanh(W_w h_it + b_w)ᵀ u_w)     word attention, per sentence
        s_i  = Σ_t α_it h_it                           sentence vectors
        g_i  = sentence_encoder(s)_i                   (identity when None)
        β_i  = softmax_i(tanh(W_s g_i + b_s)ᵀ u_s)     sentence attention
        v    = Σ_i β_i g_i                             the document vector

    Each level is an `AttentionPooling`. An optional `word_encoder` runs first
    on every sentence's words on its own (e.g. a bidirectional GRU with
    `return_sequences=True`; its input is `(batch * S, W, dim)` with the word
    mask), and an optional `sentence_encoder` on the sentence vectors (a
    sequence layer over `(batch, S, dim')` with the sentence mask).

    Masking (`mask`, boolean `(batch, S, W)`, True at real words): a sentence
    is real when it has a real word. Word weights are 0 at padded words and
    sum to 1 over each real sentence; a sentence without words gets all-zero
    word weights and sentence weight 0. Sentence weights sum to 1 over the
    real sentences of a document; a document without words gets all-zero
    weights and pools to zeros (never NaN).

    Args:
        word_units: size of the word attention's hidden projection (default: the
            word vectors' dimension).
        sentence_units: the same for the sentence attention (default: the
            sentence vectors' dimension).
        word_encoder: None, a sequence layer (`(n, W, d)` -> `(n, W, d')`), or
            its `keras.layers.serialize` config.
        sentence_encoder: None, a sequence layer (`(batch, S, d')` ->
            `(batch, S, d'')`), or its config.
        dropout: dropout rate on the attention weights of both levels while
            training.
        seed: None or an int, the seed of the dropouts (the sentence level
            uses `seed + 1`).

    Only `word_units` and `sentence_units` are positional.

    Call arguments:
        inputs: `(batch, S, W, dim)`.
        mask: optional boolean `(batch, S, W)`; taken from the Keras mask of
            `inputs` when not given; without either, every word is real.
        return_attention_scores: also return the word weights `(batch, S, W)`
            and the sentence weights `(batch, S)`.
        training: whether dropout is active.

    Returns:
        The document vectors `(batch, dim'')`; with `return_attention_scores`,
        `(vectors, word_weights, sentence_weights)`.

    Example:
        >>> x = keras.random.normal((2, 3, 5, 8))
        >>> mask = keras.ops.arange(5)[None, None, :] < keras.ops.array([[[5], [2], [0]],
        ...                                                               [[1], [4], [3]]])
        >>> layer = HierarchicalAttentionPooling(4, 4)
        >>> doc, words, sentences = layer(x, mask=mask, return_attention_scores=True)
        >>> tuple(doc.shape), tuple(words.shape), tuple(sentences.shape)
        ((2, 8), (2, 3, 5), (2, 3))

    Reference:
        Yang et al., "Hierarchical Attention Networks for Document
        Classification", NAACL 2016.
    """

    def __init__(self, word_units=None, sentence_units=None, *, word_encoder=None,
                 sentence_encoder=None, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.word_units = _validation.positive_int("word_units", word_units, allow_none=True)
        self.sentence_units = _validation.positive_int("sentence_units", sentence_units,
                                                       allow_none=True)
        self.dropout = _validation.rate("dropout", dropout)
        self.seed = _validation.seed("seed", seed)
        self.word_encoder = _sublayer("word_encoder", word_encoder)
        self.sentence_encoder = _sublayer("sentence_encoder", sentence_encoder)
        self.word_attention = AttentionPooling(
            self.word_units, dropout=self.dropout, seed=self.seed, dtype=self.dtype_policy,
            name="word_attention")
        self.sentence_attention = AttentionPooling(
            self.sentence_units, dropout=self.dropout, seed=_common.sub_seed(self.seed, 1),
            dtype=self.dtype_policy, name="sentence_attention")
        self.supports_masking = True

    def build(self, inputs_shape, mask_shape=None):
        _validation.rank("inputs", inputs_shape, 4)
        batch, sentences, words, _ = inputs_shape
        _validation.known_last_dim("inputs", inputs_shape)
        word_shape = (None, words, inputs_shape[-1])
        if self.word_encoder is not None:
            if not self.word_encoder.built:
                self.word_encoder.build(word_shape)
            word_shape = tuple(self.word_encoder.compute_output_shape(word_shape))
        self._check_sequence_shape("word_encoder", word_shape)
        self.word_attention.build(word_shape)
        sentence_shape = (batch, sentences, word_shape[-1])
        if self.sentence_encoder is not None:
            if not self.sentence_encoder.built:
                self.sentence_encoder.build(sentence_shape)
            sentence_shape = tuple(self.sentence_encoder.compute_output_shape(sentence_shape))
        self._check_sequence_shape("sentence_encoder", sentence_shape)
        self.sentence_attention.build(sentence_shape)

    @staticmethod
    def _check_sequence_shape(name, shape):
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(f"{name} must map (n, steps, dim) to (n, steps, dim') with a known "
                             f"dim' (a sequence layer, e.g. return_sequences=True); its output "
                             f"shape is {shape}.")

    def call(self, inputs, mask=None, return_attention_scores=False, training=None):
        shape = ops.shape(inputs)
        batch, sentences, words = shape[0], shape[1], shape[2]
        if mask is None:
            mask = ops.ones((batch, sentences, words), dtype="bool")
        mask = ops.cast(mask, "bool")
        flat = ops.reshape(inputs, (-1, words, inputs.shape[-1]))
        flat_mask = ops.reshape(mask, (-1, words))
        encoded = _encode(self.word_encoder, flat, flat_mask, training)
        vectors, word_weights = self.word_attention(
            encoded, mask=flat_mask, return_attention_scores=True, training=training)
        vectors = ops.reshape(vectors, (batch, sentences, vectors.shape[-1]))
        word_weights = ops.reshape(word_weights, (batch, sentences, words))
        sentence_mask = ops.any(mask, axis=-1)
        encoded = _encode(self.sentence_encoder, vectors, sentence_mask, training)
        document, sentence_weights = self.sentence_attention(
            encoded, mask=sentence_mask, return_attention_scores=True, training=training)
        if return_attention_scores:
            return document, word_weights, sentence_weights
        return document

    def compute_mask(self, inputs, mask=None):
        return None

    def _output_dim(self, inputs_shape):
        word_shape = (None, inputs_shape[2], inputs_shape[3])
        if self.word_encoder is not None:
            word_shape = tuple(self.word_encoder.compute_output_shape(word_shape))
        sentence_shape = (inputs_shape[0], inputs_shape[1], word_shape[-1])
        if self.sentence_encoder is not None:
            sentence_shape = tuple(self.sentence_encoder.compute_output_shape(sentence_shape))
        return sentence_shape[-1]

    def compute_output_shape(self, inputs_shape):
        return (inputs_shape[0], self._output_dim(inputs_shape))

    def compute_output_spec(self, inputs, mask=None, return_attention_scores=False, **kwargs):
        shape = inputs.shape
        document = keras.KerasTensor(self.compute_output_shape(shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return document
        return (document,
                keras.KerasTensor(tuple(shape[:3]), dtype=self.compute_dtype),
                keras.KerasTensor(tuple(shape[:2]), dtype=self.compute_dtype))

    def get_config(self):
        config = super().get_config()

        def serialized(layer):
            return None if layer is None else keras.layers.serialize(layer)

        config.update({
            "word_units": self.word_units,
            "sentence_units": self.sentence_units,
            "word_encoder": serialized(self.word_encoder),
            "sentence_encoder": serialized(self.sentence_encoder),
            "dropout": self.dropout,
            "seed": self.seed,
        })
        return config
