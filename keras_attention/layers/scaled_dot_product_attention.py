"""Scaled dot-product attention as a layer (no weights), over one or many heads."""

from __future__ import annotations

import keras

from keras_attention import _validation as v
from keras_attention.layers import _common, _kernel_call


@keras.saving.register_keras_serializable(package="keras_attention")
class ScaledDotProductAttention(keras.layers.Layer):
    """Scaled dot-product attention (Vaswani et al., 2017), without projections.

    ```
    weights = softmax(Q Kᵀ / sqrt(dim) + mask)      (masked rows: zeros)
    output  = dropout(weights) V
    ```
    Rank-3 inputs `(batch, T, dim)` are one head; rank-4 inputs
    `(batch, heads, T, dim)` attend per head. With `chunk_size` the exact
    memory-efficient path is used (see
    `keras_attention.ops.scaled_dot_product_attention`).

    Args (all keyword-only):
        dropout: dropout rate on the attention weights (training only).
        chunk_size: None, or a positive int for the memory-efficient path (it
            cannot return the scores).
        seed: None or an int, the seed of the dropout.

    Call arguments:
        query: `(batch, T_q, dim)` or `(batch, heads, T_q, dim)`.
        value: `(batch, T_k, dim_v)` or `(batch, heads, T_k, dim_v)`.
        key: like `value` with the last dimension `dim`; defaults to `value`.
        query_mask: boolean `(batch, T_q)`; defaults to the Keras mask of `query`.
        value_mask: boolean `(batch, T_k)`; defaults to the Keras mask of `value`.
        attention_mask: boolean `(batch, T_q, T_k)` (or rank 2 / rank 4
            broadcastable to the weights). True = may attend.
        use_causal_mask: query `i` attends to keys `j <= i` only.
        return_attention_scores: also return the weights.
        training: whether dropout is applied.

    Returns:
        `(batch, T_q, dim_v)` (or `(batch, heads, T_q, dim_v)`); with
        `return_attention_scores` also the weights `(batch, T_q, T_k)` (or
        `(batch, heads, T_q, T_k)`).

    Example:
    ```python
    q = keras.random.normal((2, 5, 8))
    kv = keras.random.normal((2, 7, 8))
    out, weights = ScaledDotProductAttention()(q, kv, return_attention_scores=True)
    ```

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, *, dropout=0.0, chunk_size=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = v.rate("dropout", dropout)
        self.chunk_size = v.positive_int("chunk_size", chunk_size, allow_none=True)
        self.seed = v.seed("seed", seed)
        self.supports_masking = True
        self._seed_generator = None

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        v.rank("query", query_shape, (3, 4))
        v.rank("value", value_shape, len(query_shape))
        v.rank("key", key_shape, len(query_shape))
        v.same_dim("query", query_shape[-1], "key", key_shape[-1])
        if self.dropout > 0:
            self._seed_generator = keras.random.SeedGenerator(self.seed, name="dropout_seed")
        self.built = True

    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, attention_mask=None,
        use_causal_mask=False, return_attention_scores=False, training=None,
    ):
        v.scores_without_chunks(return_attention_scores, self.chunk_size)
        key = value if key is None else key
        one_head = len(query.shape) == 3
        if one_head:
            query, key, value = query[:, None], key[:, None], value[:, None]
        output, scores = _kernel_call.attend(
            query,
            key,
            value,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            causal_offset=0 if use_causal_mask else None,
            dropout=self.dropout,
            seed=self._seed_generator,
            training=training,
            chunk_size=self.chunk_size,
            return_attention_scores=return_attention_scores,
        )
        if one_head:
            output = output[:, 0]
            scores = None if scores is None else scores[:, 0]
        return (output, scores) if return_attention_scores else output

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*tuple(query_shape)[:-1], value_shape[-1])

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False, **kwargs):
        scores_shape = None
        if return_attention_scores:
            scores_shape = (*tuple(query.shape)[:-1], value.shape[-2])
        return _common.output_specs(
            self, self.compute_output_shape(query.shape, value.shape), scores_shape
        )

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "chunk_size": self.chunk_size, "seed": self.seed})
        return config
