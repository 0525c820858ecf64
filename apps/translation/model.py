"""Translation models: GRU encoder-decoders with and without attention, and a Transformer.

Variants (`ModelConfig.variant`):

- `seq2seq`: bidirectional GRU encoder, GRU decoder without attention; the
  decoder sees the same fixed summary of the source at every step (Cho et al.
  2014). The baseline: the whole sentence must fit in one vector.
- `bahdanau` (RNNsearch, Bahdanau et al. 2015): additive attention with the
  previous decoder state as the query; the context vector is an input of the
  GRU: `c_t = Attn(s_{t-1}, H)`, `s_t = GRU([e(y_{t-1}); c_t], s_{t-1})`,
  `ã_t = tanh(W[s_t; c_t; e(y_{t-1})])`. Input feeding (ã_{t-1} as an extra
  input) is optional.
- `luong` (Luong et al. 2015, global): `s_t = GRU([e(y_{t-1}); ã_{t-1}], s_{t-1})`
  (input feeding by default), `c_t = Attn(s_t, H)` with score dot, general or
  concat, `ã_t = tanh(W_c[c_t; s_t])`.
- `luong_local`: as `luong` with local-p attention (a predicted window).
- `transformer`: `TransformerEncoderBlock`/`TransformerDecoderBlock` stacks
  with sinusoidal positions (Vaswani et al. 2017).

All output `logits = W_o ã_t`. Each family has ONE step function (`step`),
used token by token by the decoding (greedy/beam search inside a SavedModel);
the RNN family also trains through it, scanned over the target (teacher
forcing), so training and decoding cannot disagree. The Transformer trains on
whole sequences with a causal mask and decodes with key/value caches.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Literal

import keras
from keras import ops

from apps.common import losses
from keras_attention import layers as attention_layers

Variant = Literal["seq2seq", "bahdanau", "luong", "luong_local", "transformer"]
Score = Literal["dot", "general", "concat"]
VARIANTS = typing.get_args(Variant)
#: The variants that can copy source tokens through their attention (`ModelConfig.copy`).
COPY_VARIANTS = ("bahdanau", "luong", "luong_local")
SCORES = typing.get_args(Score)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Size and kind of a translation model (`--config=model.FIELD=VALUE`).

    Attributes:
        variant: one of `VARIANTS` (`--variant`).
        source_vocab_size, target_vocab_size: the most tokens in each vocabulary
            (reserved ones included; id 0 = padding). The vocabularies built from
            the training pairs may be smaller; the model is sized to them.
        max_source_length: source tokens (subword pieces, or words with a word
            vocabulary) read; longer inputs are cut there. 32 (the default) holds
            the UI strings (2-24 words); for the long sentences use 128: 128 pieces
            hold 99% of the 40-60-word English sentences of `long_translations/fr`'s
            test split (median 70, 95th percentile 94 with an 8,000-piece joint
            vocabulary).
        max_target_length: the most target tokens (END included) learnt from and
            decoded; the Transformer's cache size. 32 by default; 144 for the long
            sentences: their French has a median of 80 pieces and a 99th
            percentile of 132.
        embedding_dim: word embedding size (RNN family).
        units: GRU size (the encoder is bidirectional with units/2 per direction),
            and the Transformer's model width.
        attention_units: hidden size of the additive (Bahdanau / concat) scores.
        score: Luong score `dot`, `general` or `concat`.
        window: half-width D of the local-p window.
        input_feeding: feed the previous attentional vector to the GRU; None = the
            variant's paper default (luong yes, bahdanau no): see `feeds_input`.
        dropout: dropout rate (embeddings, attentional vectors, Transformer blocks).
        num_layers, num_heads, intermediate_dim: Transformer sizes.
        learning_rate: Adam's peak rate; None = 2e-3 (1e-3 for the transformer).
        label_smoothing: of the token cross-entropy.
        copy: a pointer-generator output (`keras_attention.layers.PointerGenerator`,
            See et al. 2017): each step mixes the softmax with a copy of the source
            tokens it attends to, so names, options and identifiers it never
            learnt to emit come out as they are written. Needs an attention
            variant of the RNN family (`COPY_VARIANTS`) and one vocabulary for
            both languages (`vocabulary=subword`). None = on exactly when both hold
            (`copies`).
        tie_embeddings: the logits are the target embedding's transpose applied to
            the decoder's output (Press & Wolf 2017; Vaswani et al. 2017), projected
            first to the embedding width when the two differ (the RNN family:
            `units` -> `embedding_dim`), plus a per-token bias. The output matrix is
            then the embedding itself: fewer parameters, and a vocabulary-sized
            product over `embedding_dim` rather than `units` (half the
            multiply-adds of the RNN family's logits at the defaults). On by default
            since it was measured (README); the earlier results were untied
            (`--config=model.tie_embeddings=false`).
    """

    variant: Variant = "bahdanau"
    source_vocab_size: int = 8000
    target_vocab_size: int = 8000
    max_source_length: int = 32
    max_target_length: int = 32
    embedding_dim: int = 128
    units: int = 256
    attention_units: int = 128
    score: Score = "general"
    window: int = 4
    input_feeding: bool | None = None
    dropout: float = 0.2
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512
    learning_rate: float | None = None
    label_smoothing: float = 0.1
    copy: bool | None = None
    tie_embeddings: bool = True

    def __post_init__(self):
        for name, allowed in (("variant", VARIANTS), ("score", SCORES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}. Received: "
                                 f"{getattr(self, name)!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and not (isinstance(value, int) and value > 0):
                raise ValueError(f"{field.name} must be a positive integer. Received: {value!r}")
        if self.units % 2:
            raise ValueError(f"units must be even (bidirectional encoder). Received: {self.units}")
        if self.variant == "transformer" and self.units % self.num_heads:
            raise ValueError(f"units ({self.units}) must be divisible by num_heads "
                             f"({self.num_heads}) for the transformer.")
        for name in ("dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1). Received: {getattr(self, name)!r}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if self.copy and self.variant not in COPY_VARIANTS:
            raise ValueError(f"copy=True needs one of the variants {COPY_VARIANTS} (it copies "
                             f"through their attention). Received: variant={self.variant!r}")

    def copies(self, joint_vocabulary: bool) -> bool:
        """Whether the model copies (`copy` resolved): `joint_vocabulary` says if source
        and target ids are one vocabulary (a copied source id must mean the same token)."""
        if self.copy and not joint_vocabulary:
            raise ValueError("copy=True needs one vocabulary for both languages "
                             "(vocabulary=subword); a word vocabulary has one per language.")
        if self.copy is None:
            return joint_vocabulary and self.variant in COPY_VARIANTS
        return self.copy

    @property
    def feeds_input(self) -> bool:
        """Input feeding in effect: `input_feeding`, or the variant's default when None."""
        default = self.variant in ("luong", "luong_local")
        return default if self.input_feeding is None else self.input_feeding


def build_model(config: ModelConfig):
    """The model of `config.variant`, built (weights created)."""
    if config.variant == "transformer":
        return TransformerTranslator(config)
    return RNNTranslator(config)


def compile_model(model, config: ModelConfig, decay_steps: int):
    """Adam (clipnorm 1) peaking at `config.learning_rate` after a linear warm-up, then a
    cosine decay to 10% over `decay_steps` (the run's steps: the budget is fixed in
    epochs); the shared masked token cross-entropy (with `config.label_smoothing`) and
    `masked_accuracy`."""
    peak = config.learning_rate or (1e-3 if config.variant == "transformer" else 2e-3)
    total = max(1, decay_steps)
    warmup = min(200, total // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak, decay_steps=max(1, total - warmup), alpha=0.1,
        warmup_target=peak if warmup else None, warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
        # A copying model's outputs are log-probabilities already (PointerGenerator).
        loss=losses.masked_cross_entropy(config.label_smoothing,
                                         log_probabilities=bool(config.copy)),
        metrics=[losses.masked_accuracy],
    )
    return model


class _Translator(keras.Model):
    """What both families share: the config, the embeddings, dropout and the logits layer.

    Call arguments:
        inputs: `(source_ids (batch, T_in), target_in (batch, T_out))` int, 0 = padding.

    Returns:
        Logits `(batch, T_out, target_vocab_size)`.
    """

    def __init__(self, config: ModelConfig, width: int, name: str, **kwargs):
        super().__init__(name=kwargs.pop("name", name), **kwargs)
        self.config = config
        self.source_embedding = keras.layers.Embedding(config.source_vocab_size, width,
                                                       name="source_embedding")
        self.target_embedding = keras.layers.Embedding(config.target_vocab_size, width,
                                                       name="target_embedding")
        self.dropout = keras.layers.Dropout(config.dropout)
        if config.tie_embeddings:
            self.output_layer = _TiedLogits(config.target_vocab_size, width, name="logits")
        else:
            self.output_layer = keras.layers.Dense(config.target_vocab_size, name="logits")

    # Built up front: the decoder step runs in ops.scan / tf.while_loop (no new variables there).
    def _build(self, build_family_layers):
        """Builds the embeddings, then the family's own layers, then the logits layer."""
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        build_family_layers()
        self.output_layer.build((None, None, self.config.units))
        self.built = True

    def logits_kernel(self):
        """The tied logits' kernel, the target embedding's transpose `(width, vocab)`; else None.

        A decoding loop computes it once (see `decoding_step`): a matmul by the
        transposed embedding inside the loop (`transpose_b`) ran about 10x slower
        per step on CPU than one by the transpose made once.
        """
        if not self.config.tie_embeddings:
            return None
        return ops.transpose(ops.cast(self.target_embedding.embeddings, self.compute_dtype))

    def logits(self, outputs, kernel=None):
        """The decoder's outputs `(..., units)` -> logits `(..., target_vocab_size)`.

        `kernel`: `logits_kernel()` computed beforehand (tied logits only).
        """
        if self.config.tie_embeddings:
            return self.output_layer(outputs, self.logits_kernel() if kernel is None else kernel)
        return self.output_layer(outputs)

    def decoding_step(self):
        """`step` for a decoding loop, with what no step changes computed here, once.

        Call it outside the loop (e.g. before `beam_search`), once per request.
        """
        kernel = self.logits_kernel()
        if kernel is None:
            return self.step
        return functools.partial(self.step, logits_kernel=kernel)


class _TiedLogits(keras.layers.Layer):
    """Logits through a (tied) embedding matrix: `project(x) @ kernel + bias`.

    `kernel` is the embedding matrix's transpose `(width, vocab)`, passed at call
    time, so the layer owns only its projection (`units -> width`, none when
    they are equal) and the bias; the matrix stays the embedding layer's one
    variable.
    """

    def __init__(self, vocab_size: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.width = vocab_size, width
        self.projection = None

    def build(self, input_shape):
        if input_shape[-1] != self.width:
            self.projection = keras.layers.Dense(self.width, use_bias=False, name="projection")
            self.projection.build(input_shape)
        self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")

    def call(self, inputs, kernel):
        x = inputs if self.projection is None else self.projection(inputs)
        return ops.matmul(x, ops.cast(kernel, x.dtype)) + self.bias


class RNNTranslator(_Translator):
    """Bidirectional GRU encoder + step-wise GRU decoder (seq2seq / Bahdanau / Luong)."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, config.embedding_dim, f"translator_{config.variant}", **kwargs)
        c = config
        self.encoder = keras.layers.Bidirectional(
            keras.layers.GRU(c.units // 2, return_sequences=True, return_state=True),
            name="encoder",
        )
        self.bridge = keras.layers.Dense(c.units, activation="tanh", name="bridge")
        self.cell = keras.layers.GRUCell(c.units, name="decoder_cell")
        self.attention = None
        if c.variant == "bahdanau":
            self.attention = attention_layers.BahdanauAttention(c.attention_units,
                                                                name="attention")
        elif c.variant == "luong":
            self.attention = attention_layers.DotProductAttention(
                score=c.score, units=c.attention_units if c.score == "concat" else None,
                name="attention",
            )
        elif c.variant == "luong_local":
            self.attention = attention_layers.LocalAttention(
                window=c.window, mode="local_p", score=c.score,
                units=c.attention_units if c.score == "concat" else None, name="attention",
            )
        self.combine = keras.layers.Dense(c.units, activation="tanh", name="attentional")
        # `copy` is resolved by then (ModelConfig.copies); None counts as off here.
        self.pointer = attention_layers.PointerGenerator(name="pointer") if c.copy else None
        self._build(self._build_layers)

    def _build_layers(self):
        c = self.config
        self.encoder.build((None, None, c.embedding_dim))
        self.bridge.build((None, c.units))
        context = c.units
        if c.variant == "bahdanau" or c.variant == "seq2seq":
            cell_in = c.embedding_dim + context + (c.units if c.feeds_input else 0)
            combine_in = c.units + context + c.embedding_dim
        else:
            cell_in = c.embedding_dim + (c.units if c.feeds_input else 0)
            combine_in = context + c.units
        self.cell.build((None, cell_in))
        if self.attention is not None:
            self.attention.build((None, c.units), (None, None, context))
        self.combine.build((None, combine_in))
        if self.pointer is not None:
            self.pointer.build((None, c.target_vocab_size), (None, None), (None, None),
                               (None, c.units))

    # ------------------------------------------------------------------ encoder
    def encode(self, source_ids, training=False):
        """Source ids -> the decoder's memory: a dict of `(batch, ...)` tensors."""
        mask = ops.not_equal(source_ids, 0)
        x = self.dropout(self.source_embedding(source_ids), training=training)
        outputs, forward, backward = self.encoder(x, mask=mask, training=training)
        summary = ops.concatenate([forward, backward], axis=-1)
        memory = {"encoded": outputs, "mask": mask, "summary": summary,
                  "initial": self.bridge(summary)}
        if self.config.variant == "bahdanau":
            memory["keys"] = self.attention.project_keys(outputs)
        if self.pointer is not None:
            memory["source_ids"] = source_ids
        return memory

    def initial_state(self, memory):
        """The decoding state before the first token: memory + (s_0, ã_0)."""
        state = {k: v for k, v in memory.items() if k not in ("initial", "summary")}
        if self.config.variant == "seq2seq":
            state["summary"] = memory["summary"]
        state["h"] = memory["initial"]
        state["attentional"] = ops.zeros_like(state["h"])
        return state

    # --------------------------------------------------------------- the step
    def _decode_step(self, embedded, h, attentional, memory):
        """One decoder step on embedded previous tokens `(batch, E)`.

        Returns `(h, attentional, weights (batch, T_in))`.
        """
        c = self.config
        encoded, mask = memory["encoded"], memory["mask"]
        if c.variant == "bahdanau":
            context, weights = self.attention(
                h, encoded, value_mask=mask, projected_keys=memory["keys"],
                return_attention_scores=True,
            )
            parts = [embedded, context] + ([attentional] if c.feeds_input else [])
            h, _ = self.cell(ops.concatenate(parts, axis=-1), [h])
            attentional = self.combine(ops.concatenate([h, context, embedded], axis=-1))
        elif c.variant == "seq2seq":
            context = memory["summary"]
            parts = [embedded, context] + ([attentional] if c.feeds_input else [])
            h, _ = self.cell(ops.concatenate(parts, axis=-1), [h])
            attentional = self.combine(ops.concatenate([h, context, embedded], axis=-1))
            weights = ops.zeros(ops.shape(mask), dtype=h.dtype)
        else:
            parts = [embedded] + ([attentional] if c.feeds_input else [])
            h, _ = self.cell(ops.concatenate(parts, axis=-1), [h])
            context, weights = self.attention(
                h, encoded, value_mask=mask, return_attention_scores=True
            )
            attentional = self.combine(ops.concatenate([context, h], axis=-1))
        if isinstance(h, (list, tuple)):
            h = h[0]
        return h, attentional, weights

    def step(self, tokens, state, logits_kernel=None):
        """Decoding step: `(tokens (n,), state) -> (logits (n, V), state, attention (n, T_in))`.

        `logits_kernel`: `logits_kernel()` made once outside the loop (`decoding_step`).
        """
        embedded = self.target_embedding(tokens)
        h, attentional, weights = self._decode_step(
            embedded, state["h"], state["attentional"], state
        )
        new_state = dict(state)
        new_state["h"], new_state["attentional"] = h, attentional
        logits = self.logits(attentional, logits_kernel)
        if self.pointer is not None:  # log-probabilities: log_softmax leaves them as they are
            logits = self.pointer(logits, weights, state["source_ids"], attentional)
        return logits, new_state, weights

    # ---------------------------------------------------------- teacher forcing
    def call(self, inputs, training=None, return_attention=False):
        source_ids, target_in = inputs
        memory = self.encode(source_ids, training=training)
        h0 = memory["initial"]
        embedded = self.dropout(self.target_embedding(target_in), training=training)
        weights0 = ops.zeros(ops.shape(memory["mask"]), dtype=h0.dtype)

        def scan_step(carry, x):
            h, attentional, _ = carry
            out = self._decode_step(x, h, attentional, memory)
            return out, out

        _, (_, attentional, weights) = ops.scan(
            scan_step, (h0, ops.zeros_like(h0), weights0),
            ops.transpose(embedded, (1, 0, 2)),
        )
        attentional = self.dropout(ops.transpose(attentional, (1, 0, 2)), training=training)
        weights = ops.transpose(weights, (1, 0, 2))
        logits = self.logits(attentional)
        if self.pointer is not None:
            logits = self.pointer(logits, weights, source_ids, attentional)
        if return_attention:
            return logits, weights
        return logits


class TransformerTranslator(_Translator):
    """Transformer encoder-decoder with sinusoidal positions and cached decoding."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, config.units, "translator_transformer", **kwargs)
        c = config
        self.positions = attention_layers.SinusoidalPositionEncoding(name="positions")
        self.encoder_blocks = [
            attention_layers.TransformerEncoderBlock(
                c.num_heads, intermediate_dim=c.intermediate_dim, dropout=c.dropout,
                name=f"encoder_{i}")
            for i in range(c.num_layers)
        ]
        self.decoder_blocks = [
            attention_layers.TransformerDecoderBlock(
                c.num_heads, intermediate_dim=c.intermediate_dim, dropout=c.dropout,
                name=f"decoder_{i}")
            for i in range(c.num_layers)
        ]
        self.head_dim = c.units // c.num_heads
        self._build(self._build_layers)

    def _build_layers(self):
        units = self.config.units
        for block in self.encoder_blocks:
            block.build((None, None, units))
        for block in self.decoder_blocks:
            block.build((None, None, units), (None, None, units))

    def _embed(self, embedding, ids, start_index=0, training=False):
        x = embedding(ids) * math.sqrt(self.config.units)
        x = x + self.positions(x, start_index=start_index)
        return self.dropout(x, training=training)

    def encode(self, source_ids, training=False):
        mask = ops.not_equal(source_ids, 0)
        x = self._embed(self.source_embedding, source_ids, training=training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=mask, training=training)
        return {"encoded": x, "mask": mask}

    def initial_state(self, memory):
        """Memory + per-layer caches: cross (keys/values of the source) and self (empty)."""
        encoded = memory["encoded"]
        batch = ops.shape(encoded)[0]
        c = self.config
        state = {"mask": memory["mask"], "index": ops.zeros((batch,), "int32")}
        for i, block in enumerate(self.decoder_blocks):
            state[f"cross_{i}"] = block.cross_attention.compute_cache(encoded)
            state[f"self_{i}"] = ops.zeros(
                (batch, 2, c.max_target_length, c.num_heads, self.head_dim), encoded.dtype
            )
        return state

    def step(self, tokens, state, logits_kernel=None):
        """Decoding step: `(tokens (n,), state) -> (logits (n, V), state, attention (n, T_in))`.

        The attention returned is the last layer's cross-attention, averaged over heads.
        `logits_kernel`: `logits_kernel()` made once outside the loop (`decoding_step`).
        """
        index = state["index"][0]
        x = self._embed(self.target_embedding, tokens[:, None], start_index=index)
        new_state = dict(state)
        cross = None
        for i, block in enumerate(self.decoder_blocks):
            x, _, cross, self_cache, cross_cache = block(
                x, None, encoder_padding_mask=state["mask"], return_attention_scores=True,
                self_attention_cache=state[f"self_{i}"],
                self_attention_cache_update_index=index,
                cross_attention_cache=state[f"cross_{i}"],
            )
            new_state[f"self_{i}"] = self_cache
            new_state[f"cross_{i}"] = cross_cache
        new_state["index"] = state["index"] + 1
        logits = self.logits(x[:, 0], logits_kernel)
        return logits, new_state, ops.mean(cross[:, :, 0, :], axis=1)

    def call(self, inputs, training=None, return_attention=False):
        source_ids, target_in = inputs
        memory = self.encode(source_ids, training=training)
        target_mask = ops.not_equal(target_in, 0)
        x = self._embed(self.target_embedding, target_in, training=training)
        cross = None
        for block in self.decoder_blocks:
            x, _, cross = block(
                x, memory["encoded"], decoder_padding_mask=target_mask,
                encoder_padding_mask=memory["mask"], use_causal_mask=True,
                return_attention_scores=True, training=training,
            )
        logits = self.logits(x)
        if return_attention:
            return logits, ops.mean(cross, axis=1)
        return logits
