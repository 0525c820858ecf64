"""Functional attention ops built on `keras.ops` (backend-agnostic).

The public API is `__all__`: `masked_softmax`, `merge_masks` and `causal_mask`
are the masking primitives every layer uses; `scaled_dot_product_attention` is
the core attention kernel, with a plain path and an exact memory-efficient path
(`chunk_size=...`). The modules with a leading underscore are private: `_kernel`
(the kernel without argument checks, which the layers call), `_chunked` (the
memory-efficient path and its `Tiling`), `_masks` (masks in the kernel's layout)
and `_dropout_hash` (the chunked path's dropout masks).
"""

from keras import ops as _keras_ops

from keras_attention import _validation
from keras_attention._masking import causal_mask, masked_softmax, merge_masks
from keras_attention.ops import _chunked, _kernel, _masks

__all__ = ["causal_mask", "masked_softmax", "merge_masks", "scaled_dot_product_attention"]


def scaled_dot_product_attention(
    query,
    key,
    value,
    mask=None,
    is_causal=False,
    scale=None,
    dropout_rate=0.0,
    seed=None,
    training=False,
    chunk_size=None,
    return_attention_scores=False,
    *,
    _tiling=None,
):
    """Scaled dot-product attention over `(batch, heads, T, dim)` tensors.

    ```
    S = scale · Q Kᵀ                 (scale defaults to 1 / sqrt(dim))
    P = masked_softmax(S, mask)      (fully masked rows are all zeros)
    O = dropout(P) V
    ```
    With `chunk_size`, the keys and values are visited in chunks of `chunk_size`
    with a running max `m`, running sum `l` and running output (online softmax):
    for each chunk `j`, `m' = max(m, rowmax(S_j))`,
    `l' = l·exp(m − m') + rowsum(exp(S_j − m'))`,
    `O' = O·exp(m − m') + exp(S_j − m') V_j`; finally `O / l`. The result is exact
    (not an approximation). The gradient is a custom one that recomputes each
    chunk's scores from `(Q, K, V, O, logsumexp)` (the FlashAttention backward:
    `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(dO ⊙ O))`,
    `dQ = scale · dS K`, `dK = scale · dSᵀ Q`), so neither pass holds a
    `(T_q, T_k)` tensor. The queries are also taken in blocks (of up to 1024
    rows forward; backward, the keys in blocks of up to 1024 against query
    blocks of `chunk_size`), so a score tile is at most `1024 · chunk_size` per
    batch and head whatever the lengths (a T_q unknown when tracing is one
    block), and memory beyond that is `O((T_q + T_k) · dim)`.
    The chunked path computes in float32 whatever the input dtype. Masks given as
    `(batch, T_k)` and `is_causal` are applied per tile; a `(batch, T_q, T_k)`
    mask is sliced per tile.

    Args:
        query: `(batch, heads, T_q, dim)`.
        key: `(batch, heads, T_k, dim)`.
        value: `(batch, heads, T_k, dim_v)`.
        mask: optional boolean, True = may attend. `(batch, T_k)` (a key padding
            mask; unlike NumPy broadcasting, rank 2 is never read as
            `(T_q, T_k)`), `(batch, T_q, T_k)`, or rank 4 broadcastable to
            `(batch, heads, T_q, T_k)`.
        is_causal: if True, query `i` attends to keys `j <= i` only.
        scale: the score scale; defaults to `1 / sqrt(dim)`.
        dropout_rate: dropout on the attention weights (training only). On the
            chunked path each chunk's dropout mask comes from a counter-based hash
            of the seed and the (batch, head, query, key) position, so the backward
            pass regenerates exactly the forward mask (its random draws differ
            from the plain path's, which uses `keras.random.dropout`).
        seed: int, `keras.random.SeedGenerator` or None, for the dropout.
        training: whether dropout is applied.
        chunk_size: None for the plain path; a positive int for the exact
            memory-efficient path with key chunks of this size (`T_k` need not be
            a multiple of it).
        return_attention_scores: also return the post-softmax weights (plain
            path only: the chunked path never forms them).
        _tiling: private (for tests): a `keras_attention.ops._chunked.Tiling`
            that sets the query and key blocks of the chunked path too; it
            selects that path, and `chunk_size` must be None or its chunk size.

    Returns:
        `(batch, heads, T_q, dim_v)` in the dtype of `query`, and with
        `return_attention_scores` also the weights `(batch, heads, T_q, T_k)`.

    Example:
    ```python
    q = k = v = keras.random.normal((2, 4, 128, 16))
    out = scaled_dot_product_attention(q, k, v, is_causal=True, chunk_size=32)
    ```

    Reference:
        Vaswani et al., "Attention Is All You Need", 2017;
        Rabe & Staats, "Self-attention Does Not Need O(n²) Memory", 2021;
        Dao et al., "FlashAttention", 2022.
    """
    _validation.rate("dropout_rate", dropout_rate)
    _validation.positive_int("chunk_size", chunk_size, allow_none=True)
    tiling = _tiling
    if tiling is None:
        tiling = None if chunk_size is None else _chunked.Tiling(chunk_size)
    elif chunk_size is not None and chunk_size != tiling.chunk_size:
        raise ValueError(
            "`chunk_size` and `_tiling.chunk_size` differ. Received: "
            f"chunk_size={chunk_size}, _tiling={tiling!r}"
        )
    _validation.rank("query", query.shape, 4)
    _validation.rank("key", key.shape, 4)
    _validation.rank("value", value.shape, 4)
    _check_known_sizes(query.shape, key.shape, value.shape)
    if mask is not None:
        mask = _keras_ops.convert_to_tensor(mask)
        _validation.rank("mask", mask.shape, (2, 3, 4))
        _check_mask_length(mask.shape, key.shape)
        mask = _masks.to_rank4(mask)
    return _kernel.attention(
        query,
        key,
        value,
        mask=mask,
        causal_offset=0 if is_causal else None,
        scale=scale,
        dropout_rate=dropout_rate,
        seed=seed,
        training=training,
        tiling=tiling,
        return_attention_scores=return_attention_scores,
    )


def _differ(a, b) -> bool:
    """Both sizes known (not None) and different."""
    return a is not None and b is not None and a != b


def _check_known_sizes(query_shape, key_shape, value_shape):
    """A ValueError naming the arguments when their known sizes cannot go together
    (instead of the backend's matmul error)."""
    if _differ(query_shape[-1], key_shape[-1]):
        raise ValueError(
            "`query` and `key` must have the same depth (last axis) to be compared. "
            f"Received: query.shape={tuple(query_shape)}, key.shape={tuple(key_shape)}"
        )
    if _differ(key_shape[2], value_shape[2]):
        raise ValueError(
            "`key` and `value` must have the same length (axis 2). "
            f"Received: key.shape={tuple(key_shape)}, value.shape={tuple(value_shape)}"
        )
    for axis, name in ((0, "batch"), (1, "heads")):
        sizes = [shape[axis] for shape in (query_shape, key_shape, value_shape)]
        known = {size for size in sizes if size is not None and size != 1}
        if len(known) > 1:
            raise ValueError(
                f"`query`, `key` and `value` must have the same {name} size (axis {axis}). "
                f"Received: query.shape={tuple(query_shape)}, key.shape={tuple(key_shape)}, "
                f"value.shape={tuple(value_shape)}"
            )


def _check_mask_length(mask_shape, key_shape):
    """The mask's last axis must be the keys' length (or broadcast from 1)."""
    if mask_shape[-1] != 1 and _differ(mask_shape[-1], key_shape[2]):
        raise ValueError(
            "`mask` must have one entry per key on its last axis. "
            f"Received: mask.shape={tuple(mask_shape)}, key.shape={tuple(key_shape)}"
        )
