"""The attention kernel behind `scaled_dot_product_attention` and the layers (not public)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_attention._masking import masked_softmax
from keras_attention.ops import _masks
from keras_attention.ops._chunked import chunked_attention


def attention(
    query,
    key,
    value,
    mask=None,
    causal_offset=None,
    scale=None,
    dropout_rate=0.0,
    seed=None,
    training=False,
    tiling=None,
    return_attention_scores=False,
    heads_first=True,
    window=None,
    soft_cap=None,
    alibi_slopes=None,
):
    """Scaled dot-product attention without argument checks.

    `mask` is None or rank 4 broadcastable to `(batch, heads, T_q, T_k)`;
    `causal_offset` is None (no causal mask) or an int / int scalar tensor:
    query `i` sees key `j` iff `j <= i + causal_offset` (used by cached decoding).
    `tiling` is None for the plain path, or a `_chunked.Tiling` for the exact
    memory-efficient one. `heads_first=False` takes and returns
    `(batch, T, heads, dim)` tensors (the layout of the multi-head projections),
    which saves four transposes on the plain path; masks and returned weights
    are `(batch, heads, T_q, T_k)` either way.

    The score variants (see `scaled_dot_product_attention`): `window` None, an
    int `w` (= `(w, w)`) or `(left, right)`: query `i`, at position
    `p = i + (causal_offset or 0)`, sees keys `p − left <= j <= p + right`;
    `soft_cap` None or a float: scores `cap · tanh(s / cap)`; `alibi_slopes`
    None or `(heads,)`: `−slope_h · |p − j|` added after the cap (the slopes
    are constants: no gradient flows into them).
    """
    if scale is None:
        scale = 1.0 / math.sqrt(float(query.shape[-1]))
    if isinstance(window, int):
        window = (window, window)
    elif window is not None:
        window = tuple(window)
    dropping = bool(training) and dropout_rate > 0
    if tiling is not None:
        if return_attention_scores:
            raise ValueError(
                "`return_attention_scores=True` cannot be combined with `chunk_size`: the "
                "memory-efficient path never forms the (T_q, T_k) weights. Received: "
                f"chunk_size={tiling.chunk_size}, return_attention_scores=True"
            )
        if not heads_first:
            query, key, value = (ops.transpose(x, (0, 2, 1, 3)) for x in (query, key, value))
        out = chunked_attention(
            query,
            key,
            value,
            mask,
            causal_offset,
            scale,
            tiling,
            dropout_rate=dropout_rate if dropping else 0.0,
            seed=seed,
            window=window,
            soft_cap=soft_cap,
            alibi_slopes=alibi_slopes,
        )
        return out if heads_first else ops.transpose(out, (0, 2, 1, 3))

    # `...` for the batch axis: Keras' TensorFlow backend then runs each product as
    # one einsum kernel instead of rewriting it into transposes + a matmul.
    layout = "...hqd,...hkd->...hqk" if heads_first else "...qhd,...khd->...hqk"
    q = ops.multiply(query, ops.cast(scale, query.dtype))
    scores = ops.einsum(layout, q, key)
    time_axis = 2 if heads_first else 1
    if causal_offset is not None or window is not None or alibi_slopes is not None:
        t_q, t_k = ops.shape(query)[time_axis], ops.shape(key)[time_axis]
        offset = 0 if causal_offset is None else causal_offset
        relative = _masks.relative_positions(t_q, t_k, offset)
        band = None
        if causal_offset is not None:
            band = ops.greater_equal(relative, 0)
        if window is not None:
            in_window = _masks.window_mask(relative, window)
            band = in_window if band is None else ops.logical_and(band, in_window)
        if band is not None:
            band = band[None, None]
            mask = band if mask is None else ops.logical_and(mask, band)
    if soft_cap is not None or alibi_slopes is not None:
        # In float32 for half-precision inputs (as `masked_softmax` computes).
        in_dtype = keras.backend.standardize_dtype(scores.dtype)
        if in_dtype in ("float16", "bfloat16"):
            scores = ops.cast(scores, "float32")
        if soft_cap is not None:
            cap = ops.cast(soft_cap, scores.dtype)
            scores = cap * ops.tanh(scores / cap)
        if alibi_slopes is not None:
            slopes = ops.stop_gradient(ops.convert_to_tensor(alibi_slopes))
            scores = scores + ops.cast(_masks.alibi_bias(relative, slopes), scores.dtype)
        weights = ops.cast(masked_softmax(scores, mask), in_dtype)
    else:
        weights = masked_softmax(scores, mask)
    dropped = weights
    if dropping:
        dropped = keras.random.dropout(weights, dropout_rate, seed=seed)
    out = ops.einsum(
        "...hqk,...hkd->...hqd" if heads_first else "...hqk,...khd->...qhd", dropped, value
    )
    if return_attention_scores:
        return out, weights
    return out
