"""Luong et al. (2015) local attention: monotonic (local-m) and predictive (local-p)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers import _luong_scores
from keras_attention.layers._sequence_attention import SequenceAttentionBase

MODES = ("local_p", "local_m")


@keras.saving.register_keras_serializable(package="keras_attention")
class LocalAttention(SequenceAttentionBase):
    """Attention restricted to a window of `2D + 1` source positions around an aligned position p_t.

    Following Luong et al. (2015, §3.2), for the decoder state h_t at step t:

        local-m: p_t = t
        local-p: p_t = S · sigmoid(v_pᵀ tanh(W_p h_t))            S = source length
        window:  keys s with |s − p_t| <= D (all others are masked out)
        align:   α_t(s) = softmax over the window of score(h_t, h̄_s)
        local-m: a_t(s) = α_t(s)                                  (Luong eq. 7)
        local-p: a_t(s) = α_t(s) · exp(−(s − p_t)² / (2σ²)),  σ = D/2   (eq. 10)
        c_t = Σ_s a_t(s) v_s

    `score` is one of Luong's dot / general / concat functions (shared with
    `DotProductAttention`). As in the paper, the Gaussian multiplies the softmax
    output and the result is not renormalised, so local-p weights sum to at most 1;
    gradients reach `W_p`, `v_p` through the Gaussian. `S` is the number of valid
    keys in `value_mask` when given (valid keys are assumed to come first, i.e.
    right padding), else `T_k`. Positions are 0-based.

    Args:
        window: the half-width `D` of the window (a positive int).
        mode: `"local_p"` (predicted position) or `"local_m"` (p_t = t).
        score: `"dot"`, `"general"` or `"concat"`.
        units: hidden size of the `"concat"` score and of the local-p position
            network (`W_p`); defaults to the query size. Only valid when one of
            them is used.
        dropout: dropout rate on the attention weights while training.
        kernel_initializer: initializer of all the kernels.
        seed: None or an int, the seed of the dropout.

    Only `window` is positional; the other arguments are keyword-only.

    Call arguments:
        query: `(batch, T_q, dim)`, or `(batch, dim)` for one decoder step.
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim)`; defaults to `value`.
        query_mask, value_mask, attention_mask, use_causal_mask, mask: as in
            `DotProductAttention` (Keras masks of `query`/`value` are used).
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.
        positions: the decoder step t of each query, used by local-m (local-p
            predicts its own). Int `(batch, T_q)`, or `(batch,)`/scalar meaning the
            step of the first query (query i is at `positions + i`). Defaults to
            `0..T_q-1` for a sequence query and 0 for a rank-2 query, so pass it
            when decoding step by step with local-m.

    Returns:
        Context `(batch, T_q, dim_v)` (or `(batch, dim_v)` for a rank-2 query); with
        `return_attention_scores`, also the weights `(batch, T_q, T_k)` (or
        `(batch, T_k)`), zero outside the window.

    Example:
        >>> encoder = keras.random.normal((2, 9, 16))
        >>> layer = LocalAttention(window=2, mode="local_m", score="general")
        >>> state = keras.random.normal((2, 16))
        >>> context, weights = layer(
        ...     state, encoder, positions=[4, 6], return_attention_scores=True)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 16), (2, 9))

    Reference:
        Luong, Pham, Manning, "Effective Approaches to Attention-based Neural
        Machine Translation", EMNLP 2015 (§3.2, eqs. 9–10).
    """

    def __init__(
        self,
        window,
        *,
        mode="local_p",
        score="dot",
        units=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.window = _validation.positive_int("window", window)
        self.mode = _validation.one_of("mode", mode, MODES)
        self.score, self.units = _luong_scores.check_score_args(
            score, units, units_needed_elsewhere=self.mode == "local_p"
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.score_kernel = None
        self.score_vector = None
        self.position_kernel = None
        self.position_vector = None

    def _build_scores(self, query_dim, key_dim):
        self.score_kernel, self.score_vector = _luong_scores.build_score_weights(
            self, self.score, query_dim, key_dim, self.units, self.kernel_initializer
        )
        if self.mode == "local_p":
            if query_dim is None:
                raise ValueError("The last dimension of `query` must be known. Received: None")
            units = self.units or query_dim
            self.position_kernel = self.add_weight(
                name="position_kernel",
                shape=(query_dim, units),
                initializer=self.kernel_initializer,
            )
            self.position_vector = self.add_weight(
                name="position_vector", shape=(units,), initializer=self.kernel_initializer
            )

    def _aligned_positions(self, query, value_mask, positions, t_k):
        """p_t as float32 `(batch, T_q)` and the source length S as float32 `(batch, 1)`."""
        if value_mask is not None:
            length = ops.sum(ops.cast(value_mask, "float32"), axis=-1, keepdims=True)
        else:
            length = ops.ones((ops.shape(query)[0], 1), "float32") * ops.cast(t_k, "float32")
        t_q = ops.shape(query)[1]
        if self.mode == "local_p":
            hidden = ops.tanh(ops.matmul(query, self.position_kernel))
            logits = ops.einsum("bqu,u->bq", hidden, ops.cast(self.position_vector, hidden.dtype))
            return length * ops.sigmoid(ops.cast(logits, "float32")), length
        steps = ops.cast(ops.arange(t_q), "float32")[None, :]
        if positions is None:
            return steps + ops.zeros_like(length), length
        positions = ops.cast(ops.convert_to_tensor(positions), "float32")
        _validation.rank("positions", positions.shape, (0, 1, 2))
        if len(positions.shape) <= 1:  # the step of the first query
            return ops.reshape(positions, (-1, 1)) + steps, length
        return positions + ops.zeros_like(steps), length

    def _attention_weights(self, query, key, mask, value_mask, positions=None):
        t_k = ops.shape(key)[1]
        p_t, _ = self._aligned_positions(query, value_mask, positions, t_k)
        source = ops.cast(ops.arange(t_k), "float32")
        distance = source[None, None, :] - p_t[:, :, None]  # (batch, T_q, T_k)
        in_window = ops.less_equal(ops.abs(distance), float(self.window))
        mask = in_window if mask is None else ops.logical_and(mask, in_window)

        scores = _luong_scores.luong_scores(
            self.score, query, key, self.score_kernel, self.score_vector
        )
        weights = masked_softmax(scores, mask)
        if self.mode == "local_p":
            sigma = self.window / 2.0
            gaussian = ops.exp(-ops.square(distance) / (2.0 * sigma * sigma))
            weights = weights * ops.cast(gaussian, weights.dtype)
        return weights

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "window": self.window,
                "mode": self.mode,
                "score": self.score,
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
