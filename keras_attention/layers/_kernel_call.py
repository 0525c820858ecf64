"""The kernel call shared by `MultiHeadAttention` and `ScaledDotProductAttention` (not public)."""

from __future__ import annotations

from keras import ops

from keras_attention.ops import _chunked, _kernel, _masks


def attend(
    query,
    key,
    value,
    *,
    query_mask,
    value_mask,
    attention_mask,
    causal_offset,
    dropout,
    seed,
    training,
    chunk_size,
    return_attention_scores,
    heads_first=True,
    window=None,
    soft_cap=None,
    alibi_slopes=None,
):
    """Masked (and chunked, with `chunk_size`) attention of a layer's per-head tensors.

    The layer's masks (`(batch, T_q)`, `(batch, T_k)` and an attention mask, see
    `_masks.layer_masks`) become the kernel's; on the chunked path masked query
    rows are zeroed here. `dropout` applies when `training`, with `seed` (the
    layer's `SeedGenerator`). `window`, `soft_cap` and `alibi_slopes` are the
    kernel's score variants (see `_attention_shared.kernel_variants`). Returns
    `(output, weights or None)`.
    """
    chunked = chunk_size is not None
    mask, row_mask = _masks.layer_masks(query_mask, value_mask, attention_mask, chunked)
    result = _kernel.attention(
        query,
        key,
        value,
        mask=mask,
        causal_offset=causal_offset,
        dropout_rate=dropout,
        seed=seed,
        training=bool(training) and dropout > 0,
        tiling=_chunked.Tiling(chunk_size) if chunked else None,
        return_attention_scores=return_attention_scores,
        heads_first=heads_first,
        window=window,
        soft_cap=soft_cap,
        alibi_slopes=alibi_slopes,
    )
    output, scores = result if return_attention_scores else (result, None)
    if row_mask is not None:
        if not heads_first:  # (B, 1, T_q, 1) -> the output's (B, T_q, 1, 1)
            row_mask = ops.swapaxes(row_mask, 1, 2)
        output = output * ops.cast(row_mask, output.dtype)
    return output, scores
