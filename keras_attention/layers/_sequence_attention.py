"""Call plumbing shared by the query/value attention layers (not public).

`SequenceAttentionBase` handles what DotProductAttention, BahdanauAttention and
LocalAttention have in common: `call` itself, with rank-2 queries (one decoder
step), the Keras `mask=[query_mask, value_mask]` convention, merging the masks,
the causal mask, dropout on the weights (seeded by `seed`), the weighted sum of
the values, and output shapes. Subclasses create their score weights in
`_build_scores` and turn queries and keys into attention weights in
`_attention_weights`, which also receives the subclass's own call arguments.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import causal_mask, merge_masks
from keras_attention.layers import _common


class SequenceAttentionBase(keras.layers.Layer):
    """Base class: subclasses implement `_build_scores` and `_attention_weights`."""

    def __init__(self, *, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = _validation.rate("dropout", dropout)
        self.seed = _validation.seed("seed", seed)
        self.supports_masking = True
        self._dropout_layer = None

    # ----------------------------------------------------------------- shapes
    @staticmethod
    def _check_shapes(query_shape, value_shape, key_shape=None, use_causal_mask=False):
        _validation.rank("query", query_shape, (2, 3))
        _validation.rank("value", value_shape, 3)
        if key_shape is not None:
            _validation.rank("key", key_shape, 3)
            t_v, t_k = value_shape[1], key_shape[1]
            if t_v is not None and t_k is not None and t_v != t_k:
                raise ValueError(
                    "`key` and `value` must have the same number of time steps. Received: "
                    f"key.shape={tuple(key_shape)}, value.shape={tuple(value_shape)}"
                )
        if use_causal_mask and len(query_shape) == 2:
            raise ValueError(
                "`use_causal_mask=True` needs a sequence query of rank 3; a rank-2 query is "
                f"one decoder step. Received: query.shape={tuple(query_shape)}"
            )

    def build(self, query_shape, value_shape, key_shape=None):
        self._check_shapes(query_shape, value_shape, key_shape)
        key_shape = value_shape if key_shape is None else key_shape
        self._build_scores(query_shape[-1], key_shape[-1])
        if self.dropout > 0:
            self._dropout_layer = keras.layers.Dropout(
                self.dropout, seed=self.seed, name="attention_dropout", dtype=self.dtype_policy
            )

    def _build_scores(self, query_dim, key_dim):
        """Creates the weights of the score function."""
        raise NotImplementedError

    # ------------------------------------------------------------------ call
    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, attention_mask=None,
        use_causal_mask=False, return_attention_scores=False, training=None, mask=None, **kwargs
    ):
        query, key, full_mask, value_mask, single_step = self._prepare(
            query, value, key, query_mask, value_mask, attention_mask, use_causal_mask, mask
        )
        weights = self._attention_weights(query, key, full_mask, value_mask, **kwargs)
        return self._finish(weights, value, single_step, return_attention_scores, training)

    def _attention_weights(self, query, key, mask, value_mask, **kwargs):
        """The weights `(batch, T_q, T_k)` of a rank-3 `query`.

        `mask` is the merged boolean mask (or None), `value_mask` the key padding
        mask (or None); `kwargs` are the subclass's own call arguments.
        """
        raise NotImplementedError

    def _prepare(
        self, query, value, key, query_mask, value_mask, attention_mask, use_causal_mask, mask
    ):
        """Returns `(query3, key, merged_mask, value_mask, single_step)`; query3 is rank 3."""
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or len(mask) not in (1, 2, 3):
                raise ValueError(
                    "`mask` must be a list `[query_mask, value_mask]`. "
                    f"Received: mask={mask!r}"
                )
            if query_mask is None:
                query_mask = mask[0]
            if value_mask is None and len(mask) > 1:
                value_mask = mask[1]
        key = value if key is None else key
        self._check_shapes(query.shape, value.shape, key.shape, use_causal_mask)
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)
            if query_mask is not None:
                query_mask = ops.reshape(query_mask, (-1, 1))
            if attention_mask is not None and len(attention_mask.shape) == 2:
                attention_mask = ops.expand_dims(attention_mask, 1)
        causal = None
        if use_causal_mask:
            # Query i sees keys j <= i, as in keras.layers.Attention/MultiHeadAttention.
            causal = causal_mask(ops.shape(query)[1], ops.shape(key)[1], offset=0)
        merged = merge_masks(query_mask, value_mask, attention_mask, causal)
        return query, key, merged, value_mask, single_step

    def _finish(self, weights, value, single_step, return_attention_scores, training):
        """Applies dropout, takes the weighted sum of values, drops the step axis if needed."""
        probs = weights
        if self._dropout_layer is not None:
            probs = self._dropout_layer(weights, training=training)
        output = ops.matmul(probs, ops.cast(value, probs.dtype))
        if single_step:
            output = ops.squeeze(output, 1)
            weights = ops.squeeze(weights, 1)
        return (output, weights) if return_attention_scores else output

    # ------------------------------------------------------------- masks/shapes
    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if mask is None or isinstance(mask, keras.KerasTensor):
            return mask
        return ops.convert_to_tensor(mask)

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*tuple(query_shape)[:-1], tuple(value_shape)[-1])

    def compute_output_spec(
        self, query, value, key=None, use_causal_mask=False, return_attention_scores=False,
        **kwargs,
    ):
        key_shape = None if key is None else key.shape
        self._check_shapes(query.shape, value.shape, key_shape, use_causal_mask)
        weights_shape = None
        if return_attention_scores:
            weights_shape = (*tuple(query.shape)[:-1], value.shape[1])
        return _common.output_specs(
            self, self.compute_output_shape(query.shape, value.shape), weights_shape
        )

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "seed": self.seed})
        return config
