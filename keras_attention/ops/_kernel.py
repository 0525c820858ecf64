"""The attention kernel behind `scaled_dot_product_attention` and the layers (not public)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_attention._masking import causal_mask, masked_softmax
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
    """
    if scale is None:
        scale = 1.0 / math.sqrt(float(query.shape[-1]))
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
        )
        return out if heads_first else ops.transpose(out, (0, 2, 1, 3))

    # `...` for the batch axis: Keras' TensorFlow backend then runs each product as
    # one einsum kernel instead of rewriting it into transposes + a matmul.
    layout = "...hqd,...hkd->...hqk" if heads_first else "...qhd,...khd->...hqk"
    q = ops.multiply(query, ops.cast(scale, query.dtype))
    scores = ops.einsum(layout, q, key)
    if causal_offset is not None:
        time_axis = 2 if heads_first else 1
        t_q, t_k = ops.shape(query)[time_axis], ops.shape(key)[time_axis]
        causal = causal_mask(t_q, t_k, offset=causal_offset)[None, None]
        mask = causal if mask is None else ops.logical_and(mask, causal)
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
