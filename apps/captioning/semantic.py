"""Semantic attention captioning (You et al. 2016): attributes, their targets, the decoder.

**Attributes** are words of the vocabulary. `attribute_words` takes every word
of the training captions except the words of the caption templates
(`builder.captions_for`: "the", "to", "left", "of", "above", "at", ",", ...)
and a short list of English function words (for COCO). On `emoji_scenes` that
leaves exactly the words of the 40 object names: 38 nouns, and "red", "green"
and "apple" from "red apple" / "green apple" (41 attributes). An image has
an attribute when one of its captions mentions the word (`mentions`,
`image_targets`).

**The decoder** is `model.ShowAttendTell` (the spatial attention, either
`attend_from`) with, at every step t (You et al., section 3):

    s = σ(f_att(pool(a)))               attribute predictor over all A attributes
                                        (mean and max of the grid features, an MLP),
                                        trained with binary cross-entropy
    {y^i, s_i}, i = 1..k                the top-k predicted attributes and scores
    α_t^i ∝ exp(E y_{t-1} · Ũ [E y^i; s_i])      input attention (bilinear, "general")
    x_t = E y_{t-1} + W_x,A Σ_i α_t^i E y^i      added to the LSTM's word input
    h_t = LSTM(x_t, ...)                          (+ ā or ẑ_t, as in ShowAttendTell)
    β_t^i ∝ exp(h_t · V [σ(E y^i); s_i])         output attention
    p(y_t) = softmax(L_o(E y_{t-1} + L_h h_t + L_z ẑ_t + L_a Σ_i β_t^i σ(E y^i)))

with E the decoder's own word embedding and σ = tanh. With
`attribute_query="hidden_and_context"` the output attention is queried by
[h_t; ẑ_t] instead of h_t. The scores enter both
attentions as one more key feature, so the decoder can learn how far to trust
a detection; they are not back-propagated into from the caption loss
(`stop_gradient`): the predictor is trained by its own loss only, and its
scores stay probabilities. The paper's diagonal `diag(w_x,A)` is a full linear
map `W_x,A` here, and its `W_o,A` becomes `L_a` of the deep output layer. The
bilinear scores are `keras_attention.layers.DotProductAttention(score="general")`.
Training uses the predicted top-k attributes too (as at test time), so the
decoder never sees attributes it will not get when serving.
"""

from __future__ import annotations

import collections

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.captioning import builder as builder_lib
from apps.captioning import model as model_lib
from apps.common import text as common_text
from keras_attention.layers import DotProductAttention

# Function words left out of the attributes besides the templates' (for free-form captions).
FUNCTION_WORDS = frozenset(
    "a an the of in on at to with and or is are was were be been it its this that these "
    "there their his her some two three next near by for from into onto over under while "
    "up down out off as has have".split()
)


def template_words() -> frozenset:
    """Every word of `builder.captions_for`'s templates (object names left out)."""
    names = ["objzero", "objone", "objtwo"]
    captions = [caption for layout in builder_lib.LAYOUTS for n in (2, 3)
                for caption in builder_lib.captions_for(names[:n], layout)]
    words = common_text.split_words(tf.constant(captions)).flat_values.numpy()
    return frozenset(w.decode("utf-8") for w in words) - set(names)


def attribute_words(texts, max_attributes: int | None = None,
                    exclude: frozenset | None = None) -> list[str]:
    """The attribute words of captions `texts`, most frequent first (ties by word).

    Words are split as the tokenizer splits them; `exclude` (default: the
    template words and `FUNCTION_WORDS`) and punctuation are left out.
    """
    exclude = (template_words() | FUNCTION_WORDS) if exclude is None else frozenset(exclude)
    texts = list(texts)
    counts: collections.Counter = collections.Counter()
    for i in range(0, len(texts), 4096):
        words = common_text.split_words(tf.constant(texts[i : i + 4096])).flat_values.numpy()
        counts.update(w.decode("utf-8") for w in words)
    ranked = sorted((w for w in counts if w not in exclude and any(ch.isalnum() for ch in w)),
                    key=lambda w: (-counts[w], w))
    return ranked if max_attributes is None else ranked[:max_attributes]


def attribute_ids(words, tokenizer: common_text.Tokenizer) -> tuple[list[str], list[int]]:
    """`(kept words, their token ids)`: the attribute words that are in the vocabulary."""
    index = {w: i for i, w in enumerate(tokenizer.vocabulary)}
    kept = [w for w in words if w in index]
    return kept, [index[w] for w in kept]


def mentions(token_ids, ids):
    """float32 `(..., A)`: 1 where the caption `token_ids` `(..., T)` holds the id `ids[a]`."""
    token_ids = ops.cast(token_ids, "int32")
    table = ops.convert_to_tensor(np.asarray(ids, np.int32))
    hits = ops.any(ops.equal(ops.expand_dims(token_ids, -1), table), axis=-2)
    return ops.cast(hits, "float32")


def image_targets(captions, tokenizer: common_text.Tokenizer, ids) -> tf.Tensor:
    """The attribute targets `(A,)` of one image: 1 if any of its `captions` `[n]` mentions
    the attribute (tokenized as the decoder's input is)."""
    _, token_ids = tokenizer.tokenize(tf.reshape(captions, [-1]))
    per_caption = mentions(token_ids, ids)  # (n, A)
    return tf.reduce_max(tf.concat([per_caption, tf.zeros([1, len(ids)])], 0), axis=0)


class SemanticAttentionCaptioner(model_lib.ShowAttendTell):
    """`ShowAttendTell` with You et al.'s attribute predictor and input / output attention.

    Args:
        config: a `ModelConfig` (`attribute_top_k`, `attribute_units`,
            `attribute_loss_weight` are read here).
        attribute_ids: token ids of the A attribute words (`attribute_ids`),
            distinct, at least `attribute_top_k` of them.

    Call arguments: as `ShowAttendTell`, and `inputs["attributes"]` float
    `(batch, A)`, the targets of the predictor (`image_targets`); without it
    the targets are the attributes the given caption mentions. The
    predictor's loss is added with `add_loss`, weighted by
    `attribute_loss_weight`.
    """

    def __init__(self, config, attribute_ids, start_id: int = model_lib.START_ID,
                 end_id: int = model_lib.END_ID, **kwargs):
        super().__init__(config, start_id=start_id, end_id=end_id, **kwargs)
        ids = [int(i) for i in attribute_ids]
        if len(set(ids)) != len(ids):
            raise ValueError(f"attribute_ids must be distinct, got {ids}.")
        if len(ids) < config.attribute_top_k:
            raise ValueError(f"attribute_ids holds {len(ids)} attributes; attribute_top_k="
                             f"{config.attribute_top_k} needs at least that many.")
        bad = [i for i in ids if not 4 <= i < config.vocab_size]
        if bad:
            raise ValueError(f"attribute_ids must be word ids in [4, vocab_size="
                             f"{config.vocab_size}) (not PAD, UNK, START, END); got {bad}.")
        self.attribute_ids = tuple(ids)
        self.top_k = config.attribute_top_k
        c = config
        self.attribute_hidden = keras.layers.Dense(c.attribute_units, activation="relu",
                                                   name="attribute_hidden")
        self.attribute_logits = keras.layers.Dense(len(ids), name="attribute_logits")
        self.input_attention = DotProductAttention("general", name="input_attention")
        self.output_attention = DotProductAttention("general", name="output_attention")
        self.input_attributes = keras.layers.Dense(c.embed_dim, use_bias=False, name="W_x_A")
        self.out_attributes = keras.layers.Dense(c.embed_dim, name="L_a")

    # ------------------------------------------------------------- attributes
    def predict_attributes(self, features, training=False):
        """Attribute logits `(batch, A)` from the grid features `(batch, L, D)`."""
        pooled = ops.concatenate([ops.mean(features, axis=1), ops.max(features, axis=1)], -1)
        return self.attribute_logits(self.attribute_hidden(pooled, training=training))

    def select_attributes(self, logits):
        """The top-k attributes: `(token ids (batch, k) int32, scores (batch, k))`, best first."""
        scores, index = ops.top_k(ops.sigmoid(ops.stop_gradient(logits)), self.top_k)
        table = ops.convert_to_tensor(np.asarray(self.attribute_ids, np.int32))
        return ops.take(table, index, axis=0), scores

    def initial_state(self, features, attribute_logits=None):
        """`ShowAttendTell.initial_state` and the attribute memory.

        Adds `attribute_tokens` `(batch, k)`, `attribute_scores` `(batch, k)` and the
        keys and values of both attentions (`in_keys`, `in_values`, `out_keys`,
        `out_values`, `(batch, k, m [+1])`).
        """
        state = super().initial_state(features)
        if attribute_logits is None:
            attribute_logits = self.predict_attributes(features)
        tokens, scores = self.select_attributes(attribute_logits)
        embedded = self.embedding(tokens)  # E y^i
        squashed = ops.tanh(embedded)  # σ(E y^i)
        column = ops.expand_dims(ops.cast(scores, embedded.dtype), -1)
        state.update(
            attribute_tokens=tokens, attribute_scores=scores,
            in_keys=ops.concatenate([embedded, column], -1), in_values=embedded,
            out_keys=ops.concatenate([squashed, column], -1), out_values=squashed,
        )
        return state

    # ------------------------------------------------------------------ steps
    def semantic_step(self, tokens, state, training=False):
        """One step: `(logits, new_state, α (batch, L), input weights (batch, k),
        output weights (batch, k))`."""
        embedded = self.embedding(tokens)
        in_context, in_weights = self.input_attention(
            embedded, state["in_values"], key=state["in_keys"], return_attention_scores=True)
        x = embedded + self.input_attributes(in_context)
        output, new_state, context, alpha = self._recur(x, state, training)
        query = output
        if self.config.attribute_query == "hidden_and_context":
            query = ops.concatenate([output, context], axis=-1)
        out_context, out_weights = self.output_attention(
            query, state["out_values"], key=state["out_keys"], return_attention_scores=True)
        logits = self._deep_output(embedded, output, context, training,
                                   extra=self.out_attributes(out_context))
        return logits, new_state, alpha, in_weights, out_weights

    def step(self, tokens, state, training=False):
        logits, new_state, alpha, _, _ = self.semantic_step(tokens, state, training)
        return logits, new_state, alpha

    # --------------------------------------------------------------- training
    def call(self, inputs, training=False):
        features = self.encode(inputs["image"], training=training)
        logits = self.predict_attributes(features, training=training)
        targets = inputs.get("attributes") if isinstance(inputs, dict) else None
        if targets is None:
            targets = mentions(inputs["tokens"], self.attribute_ids)
        if self.config.attribute_loss_weight > 0:
            self.add_loss(self.config.attribute_loss_weight * attribute_loss(targets, logits))
        state = self.initial_state(features, logits)
        return self._teacher_forced(state, inputs["tokens"], training)

    # --------------------------------------------------------------- decoding
    def decode(self, images, max_length=None, beam_width=1, length_penalty=0.0):
        """As `ShowAttendTell.decode`, with the attributes and their attention.

        Returns:
            `SemanticDecodeResult`: `sequences`, `scores`, `lengths`, `attention`
            `(batch, T, H', W')` as `DecodeResult`, and `attributes` int32
            `(batch, k)` (token ids, best first), `attribute_scores` `(batch, k)`,
            `input_attention` and `output_attention` `(batch, T, k)` (zeros after
            END).
        """
        state = self.initial_state(self.encode(images, training=False))
        tokens, scores = state.pop("attribute_tokens"), state.pop("attribute_scores")
        height, width = self.grid_shape
        cells, k = height * width, self.top_k

        def step_fn(step_tokens, step_state):
            logits, new_state, alpha, in_w, out_w = self.semantic_step(step_tokens, step_state)
            return logits, new_state, tf.concat([alpha, in_w, out_w], axis=-1)

        result = self._search(state, step_fn, max_length, beam_width, length_penalty)
        packed = result.attention
        steps = packed.shape[1]
        return SemanticDecodeResult(
            result.sequences, result.scores, result.lengths,
            tf.reshape(packed[..., :cells], [-1, steps, height, width]),
            tf.cast(tokens, tf.int32), tf.cast(scores, tf.float32),
            packed[..., cells : cells + k], packed[..., cells + k :],
        )


SemanticDecodeResult = collections.namedtuple(
    "SemanticDecodeResult",
    ["sequences", "scores", "lengths", "attention", "attributes", "attribute_scores",
     "input_attention", "output_attention"],
)


def attribute_loss(targets, logits):
    """Mean binary cross-entropy of the attribute logits `(batch, A)` against 0/1 targets."""
    targets = ops.cast(targets, logits.dtype)
    return ops.mean(keras.losses.binary_crossentropy(targets, logits, from_logits=True))
