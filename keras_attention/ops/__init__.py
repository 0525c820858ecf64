"""Functional attention ops built on `keras.ops` (backend-agnostic).

The public API is `__all__`: `masked_softmax`, `merge_masks` and `causal_mask`
are the masking primitives every layer uses; `scaled_dot_product_attention` is
the core attention kernel, with a plain path and an exact memory-efficient path
(`chunk_size=...`), and the score variants sliding window, logit soft-capping and
ALiBi; `alibi_slopes` gives ALiBi's per-head slopes. The modules with a leading
underscore are private: `_kernel` (the kernel without argument checks, which the
layers call), `_chunked` (the memory-efficient path and its `Tiling`), `_masks`
(masks in the kernel's layout) and `_dropout_hash` (the chunked path's dropout
masks).
"""

import math as _math
import numbers as _numbers

import numpy as _np
from keras import ops as _keras_ops

from keras_attention import _validation
from keras_attention._masking import causal_mask, masked_softmax, merge_masks
from keras_attention.ops import _chunked, _kernel, _masks

__all__ = [
    "alibi_slopes",
    "causal_mask",
    "masked_softmax",
    "merge_masks",
    "scaled_dot_product_attention",
]

_LAYOUTS = ("BHTD", "BTHD")


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
    window=None,
    soft_cap=None,
    alibi_slopes=None,
    layout="BHTD",
    _tiling=None,
):
    """Scaled dot-product attention over `(batch, heads, T, dim)` tensors.

    ```
    S = scale · Q Kᵀ                 (scale defaults to 1 / sqrt(dim))
    S = cap · tanh(S / cap)          (with soft_cap)
    S = S − slope_h · |i − j|        (with alibi_slopes)
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

    Score variants (on both paths; each combines with the masks and the others):

    - Sliding window (Longformer's banded attention; Mistral's causal window):
      with `window=(left, right)` query `i` sees key `j` iff
      `i − left <= j <= i + right` (FlashAttention's `window_size` convention);
      an int `w` is `(w, w)`. `left` and `right` do not count the query itself:
      bidirectionally `window=w` sees `2w + 1` keys, and with `is_causal=True`
      (which caps `right` at 0) `window=w` sees `w + 1` keys, the query's own
      and the `w` before it (so Mistral's window of `W` keys is `W − 1`). On the
      chunked path each query block visits only the key chunks the band reaches
      (a fixed number of them, whatever T), and the backward pass likewise, so
      the cost grows linearly in T for a fixed window.
    - Logit soft-capping (Gemma 2): `soft_cap=cap` maps the scaled scores to
      `cap · tanh(S / cap)`, before the masks and the softmax.
    - ALiBi: `alibi_slopes` of shape `(heads,)` (see `alibi_slopes(heads)`) adds
      `−slope_h · |i − j|` to the scores, after the soft cap; with `is_causal`
      that is `−slope_h · (i − j)` on every visible key. On the chunked path the
      bias is computed per tile. The slopes are constants (no gradient flows
      into them).

    Positions are the queries' and keys' indices; the chunked path and the
    layers' cached decoding shift the query positions by the causal offset (a
    query `i` is at `i + offset` when the keys are a whole cache), for the
    window and ALiBi alike.

    Args:
        query: `(batch, heads, T_q, dim)` (`(batch, T_q, heads, dim)` with
            `layout="BTHD"`, as for key and value).
        key: `(batch, heads, T_k, dim)`.
        value: `(batch, heads, T_k, dim_v)`.
        mask: optional boolean, True = may attend. `(batch, T_k)` (a key padding
            mask; unlike NumPy broadcasting, rank 2 is never read as
            `(T_q, T_k)`), `(batch, T_q, T_k)`, or rank 4 broadcastable to
            `(batch, heads, T_q, T_k)` (in either layout).
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
        return_attention_scores: also return the post-softmax weights, with
            every variant applied (plain path only: the chunked path never forms
            them).
        window: None (no window), a non-negative int `w` (`(w, w)`), or a pair
            `(left, right)` of non-negative ints (see above).
        soft_cap: None, or a positive float: the scores become
            `soft_cap · tanh(scores / soft_cap)`.
        alibi_slopes: None, or one slope per head, shape `(heads,)` (a tensor,
            array or list), e.g. `alibi_slopes(heads)`.
        layout: `"BHTD"` (default): `(batch, heads, T, dim)` inputs and output;
            `"BTHD"`: `(batch, T, heads, dim)`, the layout of
            `keras.ops.dot_product_attention`. Masks and the returned weights are
            `(batch, heads, T_q, T_k)` either way.
        _tiling: private (for tests): a `keras_attention.ops._chunked.Tiling`
            that sets the query and key blocks of the chunked path too; it
            selects that path, and `chunk_size` must be None or its chunk size.

    Returns:
        The output in the layout of the inputs (`(batch, heads, T_q, dim_v)` by
        default) and the dtype of `query`, and with `return_attention_scores`
        also the weights `(batch, heads, T_q, T_k)`.

    Example:

    >>> import numpy as np
    >>> q = k = v = np.ones((2, 4, 64, 16), "float32")
    >>> out = scaled_dot_product_attention(
    ...     q, k, v, is_causal=True, window=8, soft_cap=30.0,
    ...     alibi_slopes=alibi_slopes(4), chunk_size=16)
    >>> tuple(out.shape)
    (2, 4, 64, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", 2017;
        Rabe & Staats, "Self-attention Does Not Need O(n²) Memory", 2021;
        Dao et al., "FlashAttention", 2022;
        Beltagy et al., "Longformer: The Long-Document Transformer", 2020
        (sliding window); Jiang et al., "Mistral 7B", 2023 (causal window);
        Gemma Team, "Gemma 2", 2024 (logit soft-capping);
        Press et al., "Train Short, Test Long: Attention with Linear Biases
        Enables Input Length Extrapolation", 2022 (ALiBi).
    """
    _validation.rate("dropout_rate", dropout_rate)
    _validation.positive_int("chunk_size", chunk_size, allow_none=True)
    window = _check_window(window)
    soft_cap = _check_soft_cap(soft_cap)
    _validation.one_of("layout", layout, _LAYOUTS)
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
    shapes = [_heads_first_shape(x.shape, layout) for x in (query, key, value)]
    _check_known_sizes(*shapes)
    if mask is not None:
        mask = _keras_ops.convert_to_tensor(mask)
        _validation.rank("mask", mask.shape, (2, 3, 4))
        _check_mask_length(mask.shape, shapes[1])
        mask = _masks.to_rank4(mask)
    if alibi_slopes is not None:
        alibi_slopes = _check_alibi_slopes(alibi_slopes, shapes)
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
        heads_first=layout == "BHTD",
        window=window,
        soft_cap=soft_cap,
        alibi_slopes=alibi_slopes,
    )


def alibi_slopes(num_heads):
    """ALiBi's per-head slopes: a float32 NumPy array of shape `(num_heads,)`.

    For `n` heads, `n` a power of two, the slopes are the geometric sequence
    `2^(−8/n), 2^(−16/n), …, 2^(−8)` (head `h` gets `2^(−8(h+1)/n)`). Otherwise
    (the paper's recipe, as its official code does): the slopes of the largest
    power of two `m < n`, followed by every other slope of `2m` heads (the 1st,
    3rd, 5th, …) until there are `n`. Pass the result as `alibi_slopes` of
    `scaled_dot_product_attention` (it is constants, not a tensor).

    >>> alibi_slopes(8).tolist()
    [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]

    Reference:
        Press et al., "Train Short, Test Long: Attention with Linear Biases
        Enables Input Length Extrapolation", ICLR 2022.
    """
    _validation.positive_int("num_heads", num_heads)

    def geometric(n):
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    closest = 2 ** int(_math.floor(_math.log2(num_heads)))
    slopes = geometric(closest)
    if closest < num_heads:
        slopes += geometric(2 * closest)[0::2][: num_heads - closest]
    return _np.asarray(slopes, dtype="float32")


def _heads_first_shape(shape, layout):
    """A `layout` shape as `(batch, heads, T, dim)`."""
    shape = tuple(shape)
    return shape if layout == "BHTD" else (shape[0], shape[2], shape[1], shape[3])


def _is_count(x) -> bool:
    return isinstance(x, _numbers.Integral) and not isinstance(x, bool) and x >= 0


def _check_window(window):
    """None, or `(left, right)` as ints, from an int or a pair of non-negative ints."""
    if window is None:
        return None
    if _is_count(window):
        return (int(window), int(window))
    if isinstance(window, (tuple, list)) and len(window) == 2 and all(map(_is_count, window)):
        return (int(window[0]), int(window[1]))
    raise ValueError(
        "`window` must be None, a non-negative integer or a pair (left, right) of "
        f"non-negative integers. Received: window={window!r}"
    )


def _check_soft_cap(soft_cap):
    if soft_cap is None:
        return None
    message = f"`soft_cap` must be None or a positive finite float. Received: soft_cap={soft_cap!r}"
    if isinstance(soft_cap, bool) or not isinstance(soft_cap, _numbers.Real):
        raise ValueError(message)
    if not (_math.isfinite(soft_cap) and soft_cap > 0):
        raise ValueError(message)
    return float(soft_cap)


def _check_alibi_slopes(slopes, shapes):
    """`slopes` as a tensor of one slope per head (heads: the known size of axis 1,
    broadcast sizes of 1 aside); a ValueError naming it otherwise."""
    slopes = _keras_ops.convert_to_tensor(slopes)
    heads = {shape[1] for shape in shapes if shape[1] is not None}
    heads = max(heads) if heads else None
    if len(slopes.shape) != 1 or _differ(slopes.shape[0], heads):
        raise ValueError(
            "`alibi_slopes` must have one slope per head, shape (heads,). Received: "
            f"alibi_slopes.shape={tuple(slopes.shape)}, heads={heads}"
        )
    return slopes


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
