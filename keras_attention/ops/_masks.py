"""Masks in the kernel's layout: rank 4, broadcastable to `(batch, heads, T_q, T_k)`.

Not public: used by `scaled_dot_product_attention` and the attention layers.
"""

from __future__ import annotations

from keras import ops


def to_rank4(mask):
    """`(B, T_k)` -> `(B, 1, 1, T_k)`; `(B, T_q, T_k)` -> `(B, 1, T_q, T_k)`; boolean."""
    rank = len(mask.shape)
    if rank == 2:
        mask = mask[:, None, None, :]
    elif rank == 3:
        mask = mask[:, None, :, :]
    return ops.cast(mask, "bool")


def layer_masks(query_mask=None, value_mask=None, attention_mask=None, chunked=False):
    """Turns a layer's masks into the kernel's rank-4 `mask` and a query-row mask.

    Returns `(mask, row_mask)`: `mask` is None or boolean broadcastable to
    `(batch, heads, T_q, T_k)`; `row_mask` is None or `(batch, 1, T_q, 1)` to
    multiply into the kernel's output. On the plain path the query mask goes into
    `mask` (so returned weights of masked rows are zeros); on the chunked path it
    comes back as `row_mask`, because broadcasting it against a key mask would
    form the `(T_q, T_k)` tensor that path avoids. Both give the same output.
    `attention_mask` may be `(T_q, T_k)`, `(batch, T_q, T_k)` or rank 4.
    """
    mask = None
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        rank = len(attention_mask.shape)
        if rank == 2:
            attention_mask = attention_mask[None, None]
        elif rank == 3:
            attention_mask = attention_mask[:, None]
        elif rank != 4:
            raise ValueError(
                "`attention_mask` must have rank 2, 3 or 4 (broadcastable to "
                "(batch, heads, T_q, T_k)). Received: "
                f"attention_mask.shape={tuple(attention_mask.shape)}"
            )
        mask = attention_mask
    if value_mask is not None:
        vm = ops.cast(value_mask, "bool")[:, None, None, :]
        mask = vm if mask is None else ops.logical_and(mask, vm)
    row_mask = None
    if query_mask is not None:
        qm = ops.cast(query_mask, "bool")[:, None, :, None]
        if chunked:
            row_mask = qm
        else:
            mask = qm if mask is None else ops.logical_and(mask, qm)
    return mask, row_mask


def relative_positions(t_q, t_k, offset=0):
    """int32 `(T_q, T_k)`: query `i`'s position `i + offset` minus key `j`'s position `j`."""
    rows = ops.arange(t_q, dtype="int32") + ops.cast(offset, "int32")
    return rows[:, None] - ops.arange(t_k, dtype="int32")[None, :]


def window_mask(relative, window):
    """Boolean: `relative` (query minus key position) within the band `(left, right)`."""
    left, right = window
    return ops.logical_and(ops.less_equal(relative, left), ops.greater_equal(relative, -right))


def alibi_bias(relative, slopes):
    """`(1, H, ...)` float32: `−slope_h · |relative|` for the float `(H,)` `slopes`."""
    distance = ops.abs(ops.cast(relative, "float32"))
    return -ops.reshape(ops.cast(slopes, "float32"), (1, -1) + (1,) * len(relative.shape)) * (
        distance[None, None]
    )
