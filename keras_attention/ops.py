"""Functional attention ops built on `keras.ops` (backend-agnostic).

`masked_softmax`, `merge_masks` and `causal_mask` are the masking primitives
every layer uses; `scaled_dot_product_attention` is the core attention kernel,
with a plain path and an exact memory-efficient path (`chunk_size=...`).
"""

from __future__ import annotations

import math
import types

import keras
from keras import ops

from keras_attention import _validation as v
from keras_attention._masking import causal_mask, masked_softmax, merge_masks

__all__ = ["causal_mask", "masked_softmax", "merge_masks", "scaled_dot_product_attention"]

# Finite stand-in for -inf in the float32 running max of the chunked path: masked
# scores are set to it and then explicitly zeroed after `exp`, so no NaN appears.
_NEG = -1e30
# Query rows per block on the chunked path (score tiles of `_QUERY_BLOCK x chunk_size`
# per batch and head); T_q up to this is a single block.
_QUERY_BLOCK = 1024
# Keys per block in the chunked backward pass (with query blocks of `chunk_size` rows).
_KEY_BLOCK = 1024


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
    v.rate("dropout_rate", dropout_rate)
    v.positive_int("chunk_size", chunk_size, allow_none=True)
    v.rank("query", query.shape, 4)
    v.rank("key", key.shape, 4)
    v.rank("value", value.shape, 4)
    if mask is not None:
        mask = ops.convert_to_tensor(mask)
        v.rank("mask", mask.shape, (2, 3, 4))
        mask = _mask_to_rank4(mask)
    return attention(
        query,
        key,
        value,
        mask=mask,
        causal_offset=0 if is_causal else None,
        scale=scale,
        dropout_rate=dropout_rate,
        seed=seed,
        training=training,
        chunk_size=chunk_size,
        return_attention_scores=return_attention_scores,
    )


def _mask_to_rank4(mask):
    """`(B, T_k)` -> `(B, 1, 1, T_k)`; `(B, T_q, T_k)` -> `(B, 1, T_q, T_k)`."""
    rank = len(mask.shape)
    if rank == 2:
        mask = mask[:, None, None, :]
    elif rank == 3:
        mask = mask[:, None, :, :]
    return ops.cast(mask, "bool")


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
    chunk_size=None,
    return_attention_scores=False,
    heads_first=True,
):
    """The kernel behind `scaled_dot_product_attention` (no argument checks).

    `mask` is None or rank 4 broadcastable to `(batch, heads, T_q, T_k)`;
    `causal_offset` is None (no causal mask) or an int / int scalar tensor:
    query `i` sees key `j` iff `j <= i + causal_offset` (used by cached decoding).
    `heads_first=False` takes and returns `(batch, T, heads, dim)` tensors (the
    layout of the multi-head projections), which saves four transposes on the
    plain path; masks and returned weights are `(batch, heads, T_q, T_k)` either way.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(float(query.shape[-1]))
    dropping = bool(training) and dropout_rate > 0
    if chunk_size is not None:
        if return_attention_scores:
            raise ValueError(
                "`return_attention_scores=True` cannot be combined with `chunk_size`: the "
                "memory-efficient path never forms the (T_q, T_k) weights. Received: "
                f"chunk_size={chunk_size}, return_attention_scores=True"
            )
        if not heads_first:
            query, key, value = (ops.transpose(x, (0, 2, 1, 3)) for x in (query, key, value))
        out = _chunked_attention(
            query,
            key,
            value,
            mask,
            causal_offset,
            scale,
            chunk_size,
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


_MASK32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """`(x * c) mod 2**32` for int64 `x` in [0, 2**32) without int64 overflow."""
    lo = ops.multiply(x, c & 0xFFFF)
    hi = ops.bitwise_and(ops.multiply(x, c >> 16), 0xFFFF)
    return ops.bitwise_and(lo + ops.multiply(hi, 65536), _MASK32)


def _hash32(x):
    """A 32-bit integer mixing function (xorshift-multiply, "lowbias32") on int64."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = _mul32(x, 0x7FEB352D)
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = _mul32(x, 0x846CA68B)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def _dropout_row_keys(seed, batch, heads, t_q):
    """Per-(batch, head, query) int64 keys `(B, H, T_q, 1)` for the dropout hash.

    `seed` is a length-2 integer tensor (drawn once per call, so the forward and
    the backward pass see the same dropout mask).
    """
    s = ops.cast(seed, "int64")
    base = _hash32(ops.bitwise_xor(_hash32(ops.bitwise_and(s[0], _MASK32)), s[1] & _MASK32))
    bh = ops.arange(batch, dtype="int64")[:, None] * ops.cast(heads, "int64")
    bh = bh + ops.arange(heads, dtype="int64")[None, :]
    key = _hash32(ops.bitwise_xor(base, ops.bitwise_and(bh, _MASK32)))[..., None]
    rows = ops.arange(t_q, dtype="int64")[None, None, :]
    return _hash32(ops.bitwise_xor(key, rows))[..., None]


def _dropout_keep(row_keys, cols, rate):
    """Boolean keep mask `(B, H, T_q, len(cols))` for global key indices `cols`."""
    bits = _hash32(ops.bitwise_xor(row_keys, ops.cast(cols, "int64")))
    threshold = int(round(rate * (1 << 24)))
    return ops.greater_equal(ops.right_shift(bits, 8), threshold)


def _serialized(index, value):
    """`index`, made to depend on the tensor `value` (its value is unchanged).

    A TensorFlow graph while-loop runs up to ten iterations at once; the chunk
    loops take their chunk index through this, from the previous iteration's
    result, so one chunk's `(T_q, chunk_size)` tensors are alive at a time.
    """
    x = ops.sum(ops.reshape(value, (-1,))[:1])  # (no error if `value` is empty)
    return index + ops.cast(ops.less(x, x), "int32")


def _chunked_attention(
    query, key, value, mask, causal_offset, scale, chunk_size, dropout_rate=0.0, seed=None
):
    """Online-softmax attention over score tiles with a FlashAttention backward.

    The forward pass visits the queries in blocks of up to `_QUERY_BLOCK` rows
    and, for each block, the keys in chunks of `chunk_size`; the backward pass
    visits the keys in blocks of up to `_KEY_BLOCK` and, within each, the
    queries in blocks of `chunk_size` rows. Either way a score tile is at most
    `1024 x chunk_size` per batch and head whatever T: small enough to
    stay in a CPU's cache between the elementwise passes that follow its matrix
    product, and the backward's full-size accumulations (of `dQ`) happen once
    per key block, not once per chunk. A forward tile costs four elementwise
    passes (row max, subtract, exp, row sum) besides its two matrix products.
    The backward gets `S − logsumexp` and `dP − rowsum(dO ⊙ O)` straight from
    the matrix products (an extra column `[Q, −lse]·[K, 1]ᵀ`), so each tile
    costs two elementwise passes. With T_q unknown when the graph is traced,
    both passes use one block of all query rows and key chunks of `chunk_size`.
    With `dropout_rate > 0` the dropout mask of each tile comes from a
    counter-based hash of (seed, batch, head, query, key), so the backward pass
    regenerates exactly the mask of the forward pass without storing it.
    """
    in_dtype = keras.backend.standardize_dtype(query.dtype)
    q = ops.cast(query, "float32")
    k = ops.cast(key, "float32")
    val = ops.cast(value, "float32")

    b, h, t_q = ops.shape(q)[0], ops.shape(q)[1], ops.shape(q)[2]
    t_k = ops.shape(k)[2]
    d_v = ops.shape(val)[3]
    scale_f = ops.cast(scale, "float32")
    if causal_offset is not None:
        causal_offset = ops.cast(causal_offset, "int32")
    t_k_i = ops.cast(t_k, "int32")
    row_keys = None
    if dropout_rate > 0:
        seed_values = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=seed)
        row_keys = _dropout_row_keys(seed_values, b, h, t_q)
        keep_scale = 1.0 / (1.0 - dropout_rate)
    # A mask without a T_k axis applies to every tile as it is; one with a T_k
    # axis is padded and cut into tiles (it is only as large as the caller made it).
    mask_cols = mask if mask is not None and mask.shape[-1] != 1 else None
    mask_broadcast = mask if mask is not None and mask.shape[-1] == 1 else None

    def tiling(rows_per_block, keys_per_chunk):
        """Query blocks and key chunks of these sizes (the sizes are capped by T)."""
        c = min(keys_per_chunk, t_k) if isinstance(t_k, int) else keys_per_chunk
        c = max(c, 1)
        n, pad = _blocks(t_k, c)
        no_pad = isinstance(pad, int) and pad == 0
        if isinstance(t_q, int):
            bq = max(1, min(rows_per_block, t_q))
            nq, row_pad = _blocks(t_q, bq)
        else:  # One block of all rows: Keras' TensorFlow `scan` needs a static length.
            bq, nq, row_pad = t_q, 1, 0

        def key_chunks(x, axis):
            """The T_k axis `axis` of `x` padded and split into `(n, c)`."""
            shape = ops.shape(x)
            if not no_pad:
                widths = [[0, 0]] * len(x.shape)
                widths[axis] = [0, pad]
                x = ops.pad(x, widths, constant_values=False if x.dtype == "bool" else 0)
            return ops.reshape(x, (*shape[:axis], n, c, *shape[axis + 1:]))

        def row_blocks(x):
            """`(s0, s1, T_q, ...)` -> `(nq, s0, s1, bq, ...)`: the query blocks, first."""
            shape = ops.shape(x)
            if not (isinstance(row_pad, int) and row_pad == 0):
                x = ops.pad(x, [[0, 0], [0, 0], [0, row_pad]] + [[0, 0]] * (len(x.shape) - 3))
            x = ops.reshape(x, (shape[0], shape[1], nq, bq, *shape[3:]))
            return ops.moveaxis(x, 2, 0)

        def from_row_blocks(x):
            """The inverse of `row_blocks` (padding rows dropped)."""
            shape = ops.shape(x)
            x = ops.reshape(ops.moveaxis(x, 0, 2), (shape[1], shape[2], nq * bq, *shape[4:]))
            return x[:, :, :t_q]

        # Row-wise inputs of a query block (its index, and the rows of any mask or
        # dropout key that has a T_q axis) go with the block.
        rows = {"index": ops.arange(nq, dtype="int32")}
        tiled_mask = None if mask_cols is None else key_chunks(mask_cols, 3)
        for name, m in (("mask", tiled_mask), ("mask_broadcast", mask_broadcast)):
            if m is not None and m.shape[2] != 1:
                rows[name] = row_blocks(m)
        if row_keys is not None:
            rows["row_keys"] = row_blocks(row_keys)
        masked = not no_pad or causal_offset is not None or mask is not None

        def tile_masks(j, block):
            """Tile (block, j)'s validity `(.., bq | 1, c)` and dropout multiplier (or None)."""
            cols = ops.cast(j, "int32") * c + ops.arange(c, dtype="int32")
            valid = None
            if masked:
                valid = ops.less(cols, t_k_i)[None, None, None, :]
                if causal_offset is not None:
                    r = block["index"] * bq + ops.arange(bq, dtype="int32")
                    causal = ops.less_equal(cols[None, :], r[:, None] + causal_offset)
                    valid = ops.logical_and(valid, causal[None, None])
                if tiled_mask is not None:
                    tile = ops.take(block.get("mask", tiled_mask), j, axis=3)
                    valid = ops.logical_and(valid, tile)
                if mask_broadcast is not None:
                    valid = ops.logical_and(valid, block.get("mask_broadcast", mask_broadcast))
            drop = None
            if "row_keys" in block:
                keep = _dropout_keep(block["row_keys"], cols, dropout_rate)
                drop = ops.where(keep, keep_scale, 0.0)
            return valid, drop

        return types.SimpleNamespace(
            n=n, bq=bq, nq=nq, key_chunks=key_chunks, row_blocks=row_blocks,
            from_row_blocks=from_row_blocks, rows=rows, tile_masks=tile_masks,
            from_key_chunks=lambda x: ops.reshape(x, (b, h, n * c, -1))[:, :, :t_k],
        )

    @ops.custom_gradient
    def _attend(q, k, val):
        qs = q * scale_f
        fw = tiling(_QUERY_BLOCK, chunk_size)
        k_r, v_r = fw.key_chunks(k, 2), fw.key_chunks(val, 2)

        def forward_block(carry, block):
            qi = block["q"]
            m0 = ops.full((b, h, fw.bq), _NEG, dtype="float32")
            l0 = ops.zeros((b, h, fw.bq), dtype="float32")
            acc0 = ops.zeros((b, h, fw.bq, d_v), dtype="float32")

            def body(j, state):
                m, denom, acc = state
                valid, drop = fw.tile_masks(j, block)
                s = ops.einsum("bhqd,bhkd->bhqk", qi, ops.take(k_r, j, axis=2))
                if valid is not None:
                    s = ops.where(valid, s, _NEG)
                m_new = ops.maximum(m, ops.max(s, axis=-1))
                # Rows with no valid key yet subtract 0, so their masked scores give
                # exp(_NEG) = 0 (not exp(_NEG − _NEG) = 1).
                shift = ops.where(ops.greater(m_new, 0.5 * _NEG), m_new, 0.0)
                p = ops.exp(s - shift[..., None])
                alpha = ops.exp(m - m_new)
                pd = p if drop is None else p * drop
                pv = ops.einsum("bhqk,bhkd->bhqd", pd, ops.take(v_r, j, axis=2))
                denom = denom * alpha + ops.sum(p, axis=-1)
                acc = acc * alpha[..., None] + pv
                return m_new, denom, acc

            m, denom, acc = ops.fori_loop(0, fw.n, body, (m0, l0, acc0))
            seen = ops.greater(denom, 0.0)
            safe = ops.where(seen, denom, 1.0)
            lse = ops.where(seen, m + ops.log(safe), 0.0)
            result = (acc / safe[..., None], lse)
            return result, result

        # (Keras' TensorFlow `scan` wants the outputs shaped like the carry: the carry
        # is a block's result, unused.)
        init = (ops.zeros((b, h, fw.bq, d_v), "float32"), ops.zeros((b, h, fw.bq), "float32"))
        _, (out_b, lse_b) = ops.scan(forward_block, init, dict(fw.rows, q=fw.row_blocks(qs)))
        out = fw.from_row_blocks(out_b)
        lse = fw.from_row_blocks(lse_b)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            d_out = ops.cast(upstream, "float32")
            # Key blocks of up to _KEY_BLOCK and query blocks of chunk_size rows.
            bw = tiling(chunk_size, _KEY_BLOCK) if isinstance(t_q, int) else fw
            kb, vb = bw.key_chunks(k, 2), bw.key_chunks(val, 2)
            # rowsum(dO ⊙ O) = rowsum(P ⊙ dP), also with dropout.
            delta = ops.sum(d_out * out, axis=-1)[..., None]
            # [Q, −lse]·[K_j, 1]ᵀ = S_j − lse and [dO, −delta]·[V_j, 1]ᵀ = dP_j − delta.
            blocks = dict(
                bw.rows,
                qs=bw.row_blocks(qs),
                qs_lse=bw.row_blocks(ops.concatenate([qs, -lse[..., None]], axis=-1)),
                d_out=bw.row_blocks(d_out),
                d_out_delta=bw.row_blocks(ops.concatenate([d_out, -delta], axis=-1)),
            )

            def back(j, carry):
                dq_b, dk, dv = carry
                j = _serialized(j, dq_b)
                kj = ops.take(kb, j, axis=2)
                vj = ops.take(vb, j, axis=2)
                one = ops.ones_like(kj[..., :1])
                kj_one = ops.concatenate([kj, one], axis=-1)
                vj_one = ops.concatenate([vj, one], axis=-1)

                def back_block(sums, _):
                    i, dkj, dvj, _ = sums
                    # The block is taken here (not scanned over as `xs`, which would copy
                    # every block into a TensorArray once per key block).
                    block = {name: ops.take(x, i, axis=0) for name, x in blocks.items()}
                    valid, drop = bw.tile_masks(j, block)
                    p = ops.exp(ops.einsum("bhqd,bhkd->bhqk", block["qs_lse"], kj_one))
                    if valid is not None:
                        p = ops.where(valid, p, 0.0)
                    if drop is None:
                        dvj = dvj + ops.einsum("bhqk,bhqd->bhkd", p, block["d_out"])
                        ds = p * ops.einsum("bhqd,bhkd->bhqk", block["d_out_delta"], vj_one)
                    else:
                        dvj = dvj + ops.einsum("bhqk,bhqd->bhkd", p * drop, block["d_out"])
                        dp = ops.einsum("bhqd,bhkd->bhqk", block["d_out"], vj)
                        ds = p * (dp * drop + block["d_out_delta"][..., -1:])
                    dkj = dkj + ops.einsum("bhqk,bhqd->bhkd", ds, block["qs"])
                    dq_i = ops.einsum("bhqk,bhkd->bhqd", ds, kj) * scale_f
                    sums = (i + 1, dkj, dvj, dq_i)
                    return sums, sums

                zeros = (ops.zeros((), "int32"), ops.zeros_like(kj), ops.zeros_like(vj),
                         ops.zeros_like(dq_b[0]))
                (_, dkj, dvj, _), (_, _, _, dq_parts) = ops.scan(back_block, zeros, length=bw.nq)
                start = [0, 0, ops.cast(j, "int32"), 0, 0]
                dk = ops.slice_update(dk, start, dkj[:, :, None])
                dv = ops.slice_update(dv, start, dvj[:, :, None])
                return dq_b + dq_parts, dk, dv

            init = (ops.zeros_like(blocks["qs"]), ops.zeros_like(kb), ops.zeros_like(vb))
            dq_b, dk, dv = ops.fori_loop(0, bw.n, back, init)
            return bw.from_row_blocks(dq_b), bw.from_key_chunks(dk), bw.from_key_chunks(dv)

        return out, grad

    out = _attend(q, k, val)
    return ops.cast(out, in_dtype)


def _blocks(length, size):
    """`(number of blocks of `size` covering `length`, padding)` (ints, or tensors if dynamic)."""
    if isinstance(length, int) and isinstance(size, int):
        count = -(-length // size)
    else:
        count = (length + size - 1) // size
    return count, count * size - length


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
