"""Luong et al. (2015) score functions, shared by DotProductAttention and LocalAttention.

    dot:     score(h_t, h_s) = h_tᵀ h_s
    general: score(h_t, h_s) = h_tᵀ W_a h_s                 W_a: (dim_q, dim_k)
    concat:  score(h_t, h_s) = v_aᵀ tanh(W_a [h_t; h_s])    W_a: (dim_q + dim_k, units)

`concat` is computed as `v_aᵀ tanh(W_q h_t + W_k h_s)` with `W_q`, `W_k` the
two row blocks of `W_a`, so keys are projected once rather than once per query.
"""

from __future__ import annotations

from keras import ops

from keras_attention import _validation

SCORES = ("dot", "general", "concat")


def check_score_args(score, units, units_needed_elsewhere=False):
    """Validates `score` and `units` (only `concat` uses units unless told otherwise)."""
    _validation.one_of("score", score, SCORES)
    _validation.positive_int("units", units, allow_none=True)
    if units is not None and score != "concat" and not units_needed_elsewhere:
        raise ValueError(
            f'`units` is only used with score="concat". Received: units={units!r} '
            f"with score={score!r}"
        )
    return score, units


def _known_dim(name, dim):
    if dim is None:
        raise ValueError(f"The last dimension of `{name}` must be known. Received: None")
    return int(dim)


def build_score_weights(layer, score, query_dim, key_dim, units, initializer):
    """Creates the weights of `score` on `layer`; returns `(kernel, vector)` (None if unused)."""
    if score == "dot":
        if query_dim is not None and key_dim is not None and query_dim != key_dim:
            raise ValueError(
                f'With score="dot" the last dimension of `query` ({query_dim}) must equal '
                f"that of `key` ({key_dim}). Use score=\"general\" or \"concat\" for "
                "different sizes."
            )
        return None, None
    query_dim = _known_dim("query", query_dim)
    key_dim = _known_dim("key", key_dim)
    if score == "general":
        kernel = layer.add_weight(
            name="score_kernel", shape=(query_dim, key_dim), initializer=initializer
        )
        return kernel, None
    units = units or query_dim
    kernel = layer.add_weight(
        name="score_kernel", shape=(query_dim + key_dim, units), initializer=initializer
    )
    vector = layer.add_weight(name="score_vector", shape=(units,), initializer=initializer)
    return kernel, vector


def luong_scores(score, query, key, kernel=None, vector=None):
    """Unnormalised scores `(batch, T_q, T_k)`.

    `query` is `(batch, T_q, dim_q)`, `key` is `(batch, T_k, dim_k)`.
    """
    if score == "dot":
        return ops.matmul(query, ops.swapaxes(key, -1, -2))
    if score == "general":
        return ops.matmul(ops.matmul(query, kernel), ops.swapaxes(key, -1, -2))
    query_dim = query.shape[-1]
    q_proj = ops.matmul(query, kernel[:query_dim])  # (batch, T_q, units)
    k_proj = ops.matmul(key, kernel[query_dim:])  # (batch, T_k, units)
    hidden = ops.tanh(ops.expand_dims(q_proj, 2) + ops.expand_dims(k_proj, 1))
    return ops.einsum("bqku,u->bqk", hidden, vector)
