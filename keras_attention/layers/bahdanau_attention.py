"""Bahdanau-style (additive) attention, optionally weight-normalised."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers._sequence_attention import SequenceAttentionBase


@keras.saving.register_keras_serializable(package="keras_attention")
class BahdanauAttention(SequenceAttentionBase):
    """Additive attention of Bahdanau et al. (2015): a one-hidden-layer MLP scores each key.

    With query (decoder state) q_t and keys k_s:

        e_ts = vᵀ tanh(W₁ k_s + W₂ q_t)                    normalize=False
        e_ts = (g · v/‖v‖)ᵀ tanh(W₁ k_s + W₂ q_t + b)      normalize=True
        a_t  = softmax_s(e_ts),   c_t = Σ_s a_ts v_s

    The weight-normalised form (Salimans & Kingma 2016) is the one TensorFlow
    Addons' `BahdanauAttention(normalize=True)` had: a learned scalar `g`
    initialised to `sqrt(1 / units)` and a bias `b` initialised to zeros.
    `W₁ k` does not depend on the query, so it is computed once per call; for
    step-wise decoding compute it once per source with `project_keys(key)` and
    pass it as `projected_keys`. Masked keys get weight 0; a query whose keys are
    all masked gets zero weights and a zero context vector.

    Args:
        units: size of the hidden layer (columns of `W₁`, `W₂`, length of `v`).
        normalize: use the weight-normalised score with bias.
        dropout: dropout rate on the attention weights while training.
        kernel_initializer: initializer of `W₁`, `W₂` and `v`.
        seed: None or an int, the seed of the dropout.

    Only `units` is positional; the other arguments are keyword-only.

    Call arguments:
        query: `(batch, T_q, dim_q)`, or `(batch, dim_q)` for one decoder step.
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim_k)`; defaults to `value`.
        query_mask, value_mask, attention_mask, use_causal_mask, mask: as in
            `DotProductAttention` (Keras masks of `query`/`value` are used).
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.
        projected_keys: optional `(batch, T_k, units)` from `project_keys(key)`;
            when given, `key` is not projected again.

    Returns:
        Context `(batch, T_q, dim_v)` (or `(batch, dim_v)` for a rank-2 query); with
        `return_attention_scores`, also the weights `(batch, T_q, T_k)` (or
        `(batch, T_k)`).

    Example:
        >>> encoder = keras.random.normal((2, 7, 32))
        >>> state = keras.random.normal((2, 16))
        >>> layer = BahdanauAttention(units=8, normalize=True)
        >>> context, weights = layer(state, encoder, return_attention_scores=True)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 32), (2, 7))
        >>> keys = layer.project_keys(encoder)     # once per source sentence
        >>> context = layer(state, encoder, projected_keys=keys)

    Reference:
        Bahdanau, Cho, Bengio, "Neural Machine Translation by Jointly Learning to
        Align and Translate", ICLR 2015 (appendix A.1.2). Weight normalisation:
        Salimans & Kingma, NeurIPS 2016.
    """

    def __init__(
        self,
        units,
        *,
        normalize=False,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.units = _validation.positive_int("units", units)
        if not isinstance(normalize, bool):
            raise ValueError(f"`normalize` must be a bool. Received: normalize={normalize!r}")
        self.normalize = normalize
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _build_scores(self, query_dim, key_dim):
        for name, dim in (("query", query_dim), ("key", key_dim)):
            if dim is None:
                raise ValueError(f"The last dimension of `{name}` must be known. Received: None")
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=(key_dim, self.units), initializer=self.kernel_initializer
        )
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(query_dim, self.units), initializer=self.kernel_initializer
        )
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units,), initializer=self.kernel_initializer
        )
        self.score_scale = None
        self.score_bias = None
        if self.normalize:
            self.score_scale = self.add_weight(
                name="score_scale",
                shape=(),
                initializer=keras.initializers.Constant(math.sqrt(1.0 / self.units)),
            )
            self.score_bias = self.add_weight(
                name="score_bias", shape=(self.units,), initializer="zeros"
            )

    def project_keys(self, key):
        """`W₁ k`: `(batch, T_k, dim_k)` -> `(batch, T_k, units)`, for `projected_keys`.

        The layer must be built first (called once, or `build(query_shape, value_shape)`),
        because the weights depend on the query size too.
        """
        if not self.built:
            raise ValueError(
                "`project_keys` needs a built layer: call the layer once or call "
                "`build(query_shape, value_shape)` first."
            )
        key = ops.convert_to_tensor(key, dtype=self.compute_dtype)
        return ops.matmul(key, ops.cast(self.key_kernel, self.compute_dtype))

    def _attention_weights(self, query, key, mask, value_mask, projected_keys=None):
        if projected_keys is None:
            projected_keys = ops.matmul(key, self.key_kernel)  # once for all queries
        else:
            _validation.rank("projected_keys", projected_keys.shape, 3)
            projected_keys = ops.cast(projected_keys, query.dtype)
        projected_query = ops.matmul(query, self.query_kernel)  # (batch, T_q, units)
        hidden = ops.expand_dims(projected_keys, 1) + ops.expand_dims(projected_query, 2)
        dtype = hidden.dtype
        vector = ops.cast(self.score_vector, "float32")
        if self.normalize:
            hidden = hidden + ops.cast(self.score_bias, dtype)
            norm = ops.sqrt(ops.sum(ops.square(vector)))
            vector = ops.cast(self.score_scale, "float32") * vector / norm
        scores = ops.einsum("bqku,u->bqk", ops.tanh(hidden), ops.cast(vector, dtype))
        return masked_softmax(scores, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "normalize": self.normalize,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
