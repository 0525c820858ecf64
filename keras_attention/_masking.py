"""Mask utilities shared by the attention layers (float16-safe, NaN-free).

Conventions: a mask is boolean (or 0/1) and True means "may attend". An
attention mask has shape `(batch, T_q, T_k)` or anything broadcastable to the
score tensor. A row whose keys are all masked gives weights of zero, never NaN.
"""

from __future__ import annotations

import keras
from keras import ops


def large_negative(dtype) -> float:
    """A large negative number that is finite in `dtype` (float16 tops out at 65504)."""
    if keras.backend.standardize_dtype(dtype) == "float16":
        return -3e4
    return -1e9


def merge_masks(query_mask=None, value_mask=None, attention_mask=None, causal=None):
    """Combines optional masks into one boolean `(batch, T_q, T_k)` mask or None.

    Args:
        query_mask: `(batch, T_q)`.
        value_mask: `(batch, T_k)`.
        attention_mask: broadcastable to `(batch, T_q, T_k)`.
        causal: a `(T_q, T_k)` boolean mask (see `causal_mask`) or None.
    """
    mask = None

    def _and(a, b):
        return b if a is None else ops.logical_and(a, b)

    if query_mask is not None:
        mask = _and(mask, ops.expand_dims(ops.cast(query_mask, "bool"), -1))
    if value_mask is not None:
        mask = _and(mask, ops.expand_dims(ops.cast(value_mask, "bool"), -2))
    if attention_mask is not None:
        mask = _and(mask, ops.cast(attention_mask, "bool"))
    if causal is not None:
        mask = _and(mask, causal[None])
    return mask


def causal_mask(t_q, t_k, offset=None):
    """Boolean `(T_q, T_k)`: query i may see key j iff j <= i + offset.

    `offset` defaults to `T_k - T_q`, which lines the last query up with the last
    key: that is what incremental decoding with a cache needs.
    """
    if offset is None:
        offset = t_k - t_q
    row = ops.expand_dims(ops.arange(t_q), -1)
    col = ops.expand_dims(ops.arange(t_k), 0)
    return ops.less_equal(col, row + offset)


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax over `axis` that ignores masked entries; fully masked rows give zeros.

    The softmax is computed in float32 when `scores` is float16/bfloat16 (no
    overflow under `mixed_float16`) and cast back to the input dtype.
    """
    in_dtype = keras.backend.standardize_dtype(scores.dtype)
    x = ops.cast(scores, "float32") if in_dtype in ("float16", "bfloat16") else scores
    if mask is None:
        return ops.cast(ops.softmax(x, axis=axis), in_dtype)
    mask = ops.cast(mask, "bool")
    x = ops.where(mask, x, ops.cast(large_negative(x.dtype), x.dtype))
    weights = ops.softmax(x, axis=axis)
    weights = weights * ops.cast(mask, weights.dtype)
    return ops.cast(weights, in_dtype)
