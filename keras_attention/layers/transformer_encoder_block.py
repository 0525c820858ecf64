"""Transformer encoder block (Vaswani et al. 2017), post- or pre-norm."""

from __future__ import annotations

import keras

from keras_attention import _validation
from keras_attention.layers import _transformer_checks
from keras_attention.layers.multi_head_attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerEncoderBlock(keras.layers.Layer):
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
        num_heads: number of attention heads.
        intermediate_dim: hidden width of the feed-forward network.
        key_dim: size of each head; defaults to `dim // num_heads`, which
            requires `dim` to be divisible by `num_heads`.
        dropout: dropout rate of the attention weights and of both residual
            branches.
        activation: activation of the feed-forward hidden layer.
        norm_first: pre-norm (True) or post-norm (False).
        layer_norm_epsilon: epsilon of the layer normalisations.
        chunk_size: if set, attention runs the memory-efficient exact path over
            key chunks of this size (see `MultiHeadAttention`).

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
        >>> y = TransformerEncoderBlock(num_heads=4, intermediate_dim=32)(x)
        >>> y.shape
        (2, 6, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Xiong et
        al., "On Layer Normalization in the Transformer Architecture", ICML 2020.
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        key_dim=None,
        dropout=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        chunk_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _transformer_checks.check_block_args(
            num_heads, intermediate_dim, key_dim, dropout, layer_norm_epsilon
        )
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.key_dim = key_dim
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.chunk_size = _validation.positive_int("chunk_size", chunk_size, allow_none=True)
        self.supports_masking = True

    def build(self, inputs_shape):
        head_dim = _transformer_checks.head_dim(
            "inputs", inputs_shape, self.num_heads, self.key_dim
        )
        dim = inputs_shape[-1]
        policy = self.dtype_policy
        self.self_attention = MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=head_dim,
            dropout=self.dropout,
            chunk_size=self.chunk_size,
            dtype=policy,
            name="self_attention",
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="self_attention_layer_norm"
        )
        self.self_attention_layer_norm.build(inputs_shape)
        self.self_attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=policy, name="self_attention_dropout"
        )
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            dtype=policy,
            name="feedforward_intermediate_dense",
        )
        self.feedforward_intermediate_dense.build(inputs_shape)
        self.feedforward_output_dense = keras.layers.Dense(
            dim, dtype=policy, name="feedforward_output_dense"
        )
        self.feedforward_output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="feedforward_layer_norm"
        )
        self.feedforward_layer_norm.build(inputs_shape)
        self.feedforward_dropout = keras.layers.Dropout(
            self.dropout, dtype=policy, name="feedforward_dropout"
        )

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        mask=None,
        inputs_mask=None,
    ):
        # Keras fills `mask` (one tensor argument) or `inputs_mask` (several) with
        # the Keras mask of `inputs`.
        if padding_mask is None:
            padding_mask = inputs_mask if inputs_mask is not None else mask
        x = inputs
        residual = x
        if self.norm_first:
            x = self.self_attention_layer_norm(x)
        attended = self.self_attention(
            x,
            x,
            query_mask=padding_mask,
            value_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )
        x, scores = attended if return_attention_scores else (attended, None)
        x = residual + self.self_attention_dropout(x, training=training)
        if not self.norm_first:
            x = self.self_attention_layer_norm(x)

        residual = x
        if self.norm_first:
            x = self.feedforward_layer_norm(x)
        x = self.feedforward_output_dense(self.feedforward_intermediate_dense(x))
        x = residual + self.feedforward_dropout(x, training=training)
        if not self.norm_first:
            x = self.feedforward_layer_norm(x)
        if return_attention_scores:
            return x, scores
        return x

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        out = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return out
        batch, t = inputs.shape[0], inputs.shape[1]
        return out, keras.KerasTensor((batch, self.num_heads, t, t), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "chunk_size": self.chunk_size,
            }
        )
        return config
