"""Transformer encoder block (Vaswani et al. 2017), post- or pre-norm."""

from __future__ import annotations

import keras

from keras_attention import _validation
from keras_attention.layers import _common, _transformer


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerEncoderBlock(_common.ScoresSpec, _transformer.TransformerBlockBase):
    """One Transformer encoder layer: self-attention and a feed-forward network.

    Post-norm (`norm_first=False`, the original paper):

        x = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))
        y = LayerNorm(x + Dropout(W₂ act(W₁ x + b₁) + b₂))

    Pre-norm (`norm_first=True`, Xiong et al. 2020):

        x = x + Dropout(MultiHeadAttention(LayerNorm(x), LayerNorm(x)))
        y = x + Dropout(W₂ act(W₁ LayerNorm(x) + b₁) + b₂)

    Padded steps are masked as keys (and as queries: their attention rows are
    zero), so they do not change the outputs at valid steps.

    Args:
        num_heads: number of attention heads (the only positional argument).
        intermediate_dim: hidden width of the feed-forward network.
        key_dim: size of each head; defaults to `dim // num_heads`, which
            requires `dim` to be divisible by `num_heads`.
        dropout: dropout rate of the attention weights and of both residual
            branches.
        activation: activation of the feed-forward hidden layer.
        norm_first: pre-norm (True) or post-norm (False).
        layer_norm_epsilon: epsilon of the layer normalisations.
        normalization: `"layer"` (LayerNorm, the default) or `"rms"` (RMSNorm,
            Zhang & Sennrich 2019: `x / sqrt(mean(x²) + ε) * scale`, as in
            T5 and Llama).
        num_key_value_heads: None (multi-head self-attention), or the number
            of key/value heads of a grouped-query self-attention
            (`GroupQueryAttention`; 1 = multi-query); it must divide `num_heads`.
        rotary: apply rotary position embeddings (`RotaryEmbedding`, base
            10000) to the self-attention's queries and keys (the
            self-attention is then a `GroupQueryAttention`).
        chunk_size: if set, attention runs the memory-efficient exact path over
            key chunks of this size (see `MultiHeadAttention`).
        sliding_window: None, or a positive int `w`: in the self-attention,
            step `i` attends to steps `j` with `|i - j| < w` only (with the
            causal mask: the `w` latest steps, Mistral's window); a banded
            kernel mask (see `MultiHeadAttention`), linear in T on the
            memory-efficient path.
        soft_cap: None, or a positive float `c`: the self-attention's scaled
            scores `s` become `c · tanh(s / c)` (Gemma 2).
        alibi: False, True, or a list of `num_heads` floats: ALiBi linear
            biases `-slope_h · |i - j|` in the self-attention (Press et al.
            2022; True: `keras_attention.ops.alibi_slopes(num_heads)`).
            At their defaults the block is the one without these options.
        kernel_initializer, bias_initializer: of the attention projections and
            the feed-forward layers (each sub-layer gets its own copy).
        seed: None or an int: the dropouts draw from seeds derived from it.

    Call arguments:
        inputs: `(batch, T, dim)`.
        padding_mask: boolean `(batch, T)`, True for real steps. Defaults to
            the Keras mask of `inputs` (e.g. from `Embedding(mask_zero=True)`).
        attention_mask: boolean `(batch, T, T)`, True where step i may attend
            to step j.
        use_causal_mask: also forbid attention to later steps.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.

    Returns:
        `(batch, T, dim)`; with `return_attention_scores`, also the weights
        `(batch, num_heads, T, T)`.

    Example:
        >>> x = keras.random.normal((2, 6, 16))
        >>> y = TransformerEncoderBlock(4, intermediate_dim=32)(x)
        >>> tuple(y.shape)
        (2, 6, 16)
        >>> llama_like = TransformerEncoderBlock(  # pre-RMSNorm, 2 key/value heads, RoPE
        ...     4, intermediate_dim=32, norm_first=True, normalization="rms",
        ...     num_key_value_heads=2, rotary=True)
        >>> tuple(llama_like(x).shape)
        (2, 6, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Xiong et
        al., "On Layer Normalization in the Transformer Architecture", ICML 2020;
        Zhang & Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019;
        Ainslie et al., "GQA", EMNLP 2023; Su et al., "RoFormer", 2021;
        Beltagy et al., "Longformer", 2020 (sliding window); Gemma Team,
        "Gemma 2", 2024 (soft-capping); Press et al., "Train Short, Test
        Long", ICLR 2022 (ALiBi).
    """

    def __init__(self, num_heads, *, chunk_size=None, **kwargs):
        super().__init__(num_heads, **kwargs)
        self.chunk_size = _validation.positive_int("chunk_size", chunk_size, allow_none=True)

    def build(self, inputs_shape):
        head_dim = _transformer.head_dim("inputs", inputs_shape, self.num_heads, self.key_dim)
        self.self_attention = self._attention(
            "self_attention",
            head_dim,
            _transformer.SELF_ATTENTION,
            self_attention=True,
            chunk_size=self.chunk_size,
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.self_attention_layer_norm = self._layer_norm("self_attention_layer_norm", inputs_shape)
        self.self_attention_dropout = self._dropout(
            "self_attention_dropout", _transformer.SELF_ATTENTION_DROPOUT
        )
        self._build_feedforward(inputs_shape)

    def call(
        self, inputs, padding_mask=None, attention_mask=None, use_causal_mask=False,
        return_attention_scores=False, training=None, mask=None, inputs_mask=None,
    ):
        # Keras fills `mask` (one tensor argument) or `inputs_mask` (several) with
        # the Keras mask of `inputs`.
        if padding_mask is None:
            padding_mask = inputs_mask if inputs_mask is not None else mask

        x, scores = self._self_attention_sublayer(
            inputs,
            padding_mask,
            training,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
        )
        x = self._feedforward(x, training)
        return (x, *scores) if return_attention_scores else x

    def compute_mask(self, inputs, mask=None):
        return mask

    def _scores_shape(self, inputs_shape):
        batch, t = inputs_shape[0], inputs_shape[1]
        return (batch, self.num_heads, t, t)

    def get_config(self):
        config = super().get_config()
        config["chunk_size"] = self.chunk_size
        return config
