"""Luong-style (multiplicative) attention with the dot, general and concat scores."""

from __future__ import annotations

import math

import keras

from keras_attention._masking import masked_softmax
from keras_attention.layers import _luong_scores
from keras_attention.layers._sequence_attention import SequenceAttentionBase


@keras.saving.register_keras_serializable(package="keras_attention")
class DotProductAttention(SequenceAttentionBase):
    """Luong et al. (2015) global attention: score, softmax over keys, weighted sum.

    With decoder state (query) h_t and encoder states (keys) h̄_s, Luong's eq. 8:

        dot:     score(h_t, h̄_s) = h_tᵀ h̄_s
        general: score(h_t, h̄_s) = h_tᵀ W_a h̄_s
        concat:  score(h_t, h̄_s) = v_aᵀ tanh(W_a [h_t; h̄_s])

        a_t(s) = softmax_s(λ · score(h_t, h̄_s))      (masked keys excluded)
        c_t    = Σ_s a_t(s) v_s

    where `λ` is 1, the fixed `scale`, or a learned scalar (`use_scale=True`).
    With `score="dot"` and `use_scale` this is `keras.layers.Attention(score_mode="dot")`
    (same learned scalar, initialised to 1). Masked keys get weight exactly 0; a query
    whose keys are all masked gets zero weights and a zero context vector.

    Args:
        score: `"dot"`, `"general"` or `"concat"` (the only positional argument).
            `"dot"` needs query and key of the same size; the others allow
            different sizes.
        use_scale: learn a scalar that multiplies the scores (initialised to `scale`,
            or 1 when `scale` is None).
        scale: a fixed float that multiplies the scores (e.g. `1 / sqrt(dim)`); the
            initial value of the learned scalar when `use_scale=True`.
        units: hidden size of the `"concat"` score (rows of `W_a`). Defaults to the
            query size. Only valid with `score="concat"`.
        dropout: dropout rate on the attention weights while training.
        kernel_initializer: initializer of `W_a` and `v_a`.
        seed: None or an int, the seed of the dropout.

    Call arguments:
        query: `(batch, T_q, dim)`, or `(batch, dim)` for one decoder step.
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim)`; defaults to `value`.
        query_mask: boolean `(batch, T_q)` (or `(batch,)` for a rank-2 query);
            masked queries give zero output. Taken from the Keras mask of `query`.
        value_mask: boolean `(batch, T_k)`, True for keys that may be attended to.
            Taken from the Keras mask of `value`.
        attention_mask: boolean, broadcastable to `(batch, T_q, T_k)` (`(batch, T_k)`
            for a rank-2 query).
        use_causal_mask: query i attends only to keys j <= i (as in
            `keras.layers.Attention`). Needs a rank-3 query.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.
        mask: Keras-style list `[query_mask, value_mask]`, used for the masks not
            given explicitly.

    Returns:
        Context `(batch, T_q, dim_v)` (or `(batch, dim_v)` for a rank-2 query); with
        `return_attention_scores`, also the post-softmax weights `(batch, T_q, T_k)`
        (or `(batch, T_k)`).

    Example:
        >>> decoder = keras.random.normal((2, 5, 16))
        >>> encoder = keras.random.normal((2, 7, 32))
        >>> layer = DotProductAttention(score="general")
        >>> context, weights = layer(decoder, encoder, return_attention_scores=True)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 5, 32), (2, 5, 7))

    Reference:
        Luong, Pham, Manning, "Effective Approaches to Attention-based Neural
        Machine Translation", EMNLP 2015 (§3.1, eq. 8).
    """

    def __init__(
        self,
        score="dot",
        *,
        use_scale=False,
        scale=None,
        units=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.score, self.units = _luong_scores.check_score_args(score, units)
        if not isinstance(use_scale, bool):
            raise ValueError(f"`use_scale` must be a bool. Received: use_scale={use_scale!r}")
        self.use_scale = use_scale
        if scale is not None and (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not math.isfinite(scale)
        ):
            raise ValueError(f"`scale` must be a finite float or None. Received: scale={scale!r}")
        self.scale = None if scale is None else float(scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.score_kernel = None
        self.score_vector = None
        self.scale_weight = None

    def _build_scores(self, query_dim, key_dim):
        self.score_kernel, self.score_vector = _luong_scores.build_score_weights(
            self, self.score, query_dim, key_dim, self.units, self.kernel_initializer
        )
        if self.use_scale:
            init = 1.0 if self.scale is None else self.scale
            self.scale_weight = self.add_weight(
                name="scale", shape=(), initializer=keras.initializers.Constant(init)
            )

    def _attention_weights(self, query, key, mask, value_mask):
        scores = _luong_scores.luong_scores(
            self.score, query, key, self.score_kernel, self.score_vector
        )
        if self.scale_weight is not None:
            scores = scores * keras.ops.cast(self.scale_weight, scores.dtype)
        elif self.scale is not None:
            scores = scores * self.scale
        return masked_softmax(scores, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score": self.score,
                "use_scale": self.use_scale,
                "scale": self.scale,
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
