"""Exact memory-efficient attention: online softmax over score tiles (not public).

The forward pass visits the queries in blocks of `Tiling.query_block` rows and,
for each block, the keys in chunks of `Tiling.chunk_size`, with a running max,
running sum and running output (online softmax); the backward pass (the
FlashAttention one) visits the keys in blocks of `Tiling.key_block` and, within
each, the queries in blocks of `chunk_size` rows, recomputing each tile's
weights from `(Q, K, logsumexp)`. Either way a score tile is at most
`1024 x chunk_size` per batch and head whatever T (with the default blocks):
small enough to stay in a CPU's cache between the elementwise passes that
follow its matrix product, and the backward's full-size accumulations (of `dQ`)
happen once per key block, not once per chunk. A forward tile costs four
elementwise passes (row max, subtract, exp, row sum) besides its two matrix
products. The backward gets `S − logsumexp` and `dP − rowsum(dO ⊙ O)` straight
from the matrix products (an extra column `[Q, −lse]·[K, 1]ᵀ`), so each tile
costs two elementwise passes. With T_q unknown when the graph is traced, both
passes use one block of all query rows and key chunks of `chunk_size`. With
`dropout_rate > 0` the dropout mask of each tile comes from a counter-based
hash of (seed, batch, head, query, key) (see `_dropout_hash`), so the backward
pass regenerates exactly the mask of the forward pass without storing it.

Memory: neither pass copies the queries or the output gradients whole (each
block is taken from a reshaped view, and scaled, inside the loop). With a
window, the backward sums each query block's dQ terms as the key blocks slide
past it, so the scan outputs are `dK`, `dV` and `dQ` once each (T rows), not
the terms of every (key block, query block) pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
from keras import ops

from keras_attention import _validation
from keras_attention.ops import _dropout_hash, _masks

# Finite stand-in for -inf in the float32 running max: masked scores are set to
# it and then explicitly zeroed after `exp`, so no NaN appears.
_NEG = -1e30


@dataclasses.dataclass(frozen=True)
class Tiling:
    """The tile sizes of the chunked path.

    Forward, the queries go in blocks of `query_block` rows and the keys of each
    block in chunks of `chunk_size`; backward, the keys go in blocks of
    `key_block` and the queries against each in blocks of `chunk_size` rows. So a
    score tile is at most `query_block x chunk_size` forward and
    `chunk_size x key_block` backward, per batch and head. Sizes larger than the
    sequence are capped by it (a sequence up to `query_block` is one block).
    """

    chunk_size: int
    query_block: int = 1024
    key_block: int = 1024

    def __post_init__(self):
        for name in ("chunk_size", "query_block", "key_block"):
            _validation.positive_int(name, getattr(self, name))


@dataclasses.dataclass(frozen=True, eq=False)
class _Layout:
    """One pass's tiling of `(T_q, T_k)`: `nq` query blocks of `bq` rows (`row_pad`
    padding rows at the end) and `n` key chunks of `c` keys (`pad` padding keys).

    Sizes are ints, or scalar tensors where the lengths are unknown when tracing.
    """

    t_q: Any
    t_k: Any
    bq: Any
    nq: Any
    row_pad: Any
    c: Any
    n: Any
    pad: Any

    @property
    def no_pad(self):
        return isinstance(self.pad, int) and self.pad == 0

    @property
    def no_row_pad(self):
        return isinstance(self.row_pad, int) and self.row_pad == 0


@dataclasses.dataclass(frozen=True, eq=False)
class _Tiles:
    """A `_Layout` and what each tile's validity and dropout are made of.

    `rows` holds the row-wise inputs of the query blocks, stacked `(nq, ...)`:
    each block's index, and the rows of any mask or dropout key with a T_q axis;
    a loop over the blocks takes the block's rows as a dict `block`. `tiled_mask`
    is a mask with a T_k axis cut into key chunks `(..., n, c)`, `broadcast_mask`
    one without a T_k axis (it applies to every tile as it is).
    """

    layout: _Layout
    rows: dict
    masked: bool
    t_k: Any
    causal_offset: Any
    tiled_mask: Any
    broadcast_mask: Any
    dropout_rate: float
    keep_scale: float
    variants: _Variants
    band: _Band | None


@dataclasses.dataclass(frozen=True, eq=False)
class _Variants:
    """The score variants of a call: `window` None or `(left, right)` (ints, `right`
    already capped by causality), `offset` the query rows' position offset (the
    causal offset, or 0), `soft_cap` None or a float, `alibi` None or float32
    slopes `(1, H, 1, 1)`."""

    window: Any = None
    offset: Any = 0
    soft_cap: Any = None
    alibi: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class _Band:
    """Where a sliding window lets a pass skip tiles: each outer block (forward: a
    query block; backward: a key block) of `outer` positions needs the inner
    chunks (forward: key chunks; backward: query blocks) of `inner` positions from
    `start(index)` on, `trip` of them, out of `count`. `trip` does not depend on
    the lengths (unless it is capped by `count`), so neither does the work per
    outer block.
    """

    trip: Any
    outer: int
    inner: int
    count: Any
    shift: Any  # inner position of the first one outer position 0 may need

    def start(self, index):
        """The first inner chunk of outer block `index` (int32), clamped so that the
        `trip` chunks from it are all real (and distinct) chunks."""
        low = ops.cast(index, "int32") * self.outer + self.shift
        first = ops.floor_divide(ops.maximum(low, 0), self.inner)
        return ops.minimum(first, ops.cast(self.count - self.trip, "int32"))


def band_rows(window, chunk_size):
    """The block size that the banded passes use: the band's width rounded up to a
    whole number of chunks (capped by the `Tiling`'s block sizes)."""
    left, right = window
    return chunk_size * max(1, -(-(left + right) // chunk_size))


def _band(window, offset, outer, inner, count, forward):
    """The `_Band` of outer blocks of `outer` positions over inner chunks of `inner`,
    or None when there is no window (or the band may reach every inner chunk).

    Forward, query row `r` needs keys `[r + offset − left, r + offset + right]`;
    backward, key `j` is needed by rows `[j − offset − right, j − offset + left]`.
    Either way an outer block spans `outer + left + right` inner positions, i.e.
    at most `ceil(span / inner) + 1` chunks (exactly `(phase + span − 1) // inner + 1`
    when the blocks all start at the same phase of the chunks).
    """
    if window is None or not isinstance(outer, int):
        return None
    left, right = window
    span = outer + left + right
    shift = offset - left if forward else -offset - right
    if isinstance(shift, int) and outer % inner == 0:
        trip = (shift % inner + span - 1) // inner + 1
    else:
        trip = -(-span // inner) + 1
    if isinstance(count, int):
        if trip >= count:
            return None
    else:
        trip = ops.minimum(ops.cast(count, "int32"), trip)
    return _Band(trip=trip, outer=outer, inner=inner, count=count, shift=shift)


def tiles_per_block(t_q, t_k, tiling, window, causal_offset=None):
    """`(forward, backward)`: the tiles one outer block of each pass visits, as the
    passes compute it (forward: key chunks per query block; backward: query blocks
    per key block), for static lengths. With a window these do not grow with T."""
    variants = _Variants(window=_capped_window(window, causal_offset),
                         offset=0 if causal_offset is None else causal_offset)
    counts = []
    for forward in (True, False):
        layout = _pass_layout(t_q, t_k, tiling, variants.window, forward)
        outer, inner, count = (layout.bq, layout.c, layout.n) if forward else (
            layout.c, layout.bq, layout.nq)
        band = _band(variants.window, variants.offset, outer, inner, count, forward)
        counts.append(count if band is None else band.trip)
    return tuple(counts)


def _capped_window(window, causal_offset):
    """`(left, right)` with `right` capped at 0 under a causal mask (None stays None)."""
    if window is None:
        return None
    left, right = window
    return (left, 0 if causal_offset is not None else right)


def _pass_layout(t_q, t_k, tiling, window, forward):
    """The `_Layout` of the forward pass (query blocks x key chunks) or the backward
    one (query blocks of `chunk_size` rows x key blocks); a window shrinks the
    blocks to about its width (see `band_rows`)."""
    rows, keys = tiling.query_block, tiling.key_block
    if window is not None:
        rows = min(rows, band_rows(window, tiling.chunk_size))
        keys = min(keys, band_rows(window, tiling.chunk_size))
    if forward:
        return _layout(t_q, t_k, rows, tiling.chunk_size)
    return _layout(t_q, t_k, tiling.chunk_size, keys)


def _blocks(length, size):
    """`(number of blocks of `size` covering `length`, padding)` (ints, or tensors if dynamic)."""
    if isinstance(length, int) and isinstance(size, int):
        count = -(-length // size)
    else:
        count = (length + size - 1) // size
    return count, count * size - length


def _layout(t_q, t_k, rows_per_block, keys_per_chunk):
    """Query blocks and key chunks of these sizes (the sizes are capped by T)."""
    c = min(keys_per_chunk, t_k) if isinstance(t_k, int) else keys_per_chunk
    c = max(c, 1)
    n, pad = _blocks(t_k, c)
    if isinstance(t_q, int):
        bq = max(1, min(rows_per_block, t_q))
        nq, row_pad = _blocks(t_q, bq)
    else:  # One block of all rows: Keras' TensorFlow `scan` needs a static length.
        bq, nq, row_pad = t_q, 1, 0
    return _Layout(t_q=t_q, t_k=t_k, bq=bq, nq=nq, row_pad=row_pad, c=c, n=n, pad=pad)


def _key_chunks(x, axis, layout):
    """The T_k axis `axis` of `x` padded and split into `(n, c)`."""
    shape = ops.shape(x)
    if not layout.no_pad:
        widths = [[0, 0]] * len(x.shape)
        widths[axis] = [0, layout.pad]
        x = ops.pad(x, widths, constant_values=False if x.dtype == "bool" else 0)
    return ops.reshape(x, (*shape[:axis], layout.n, layout.c, *shape[axis + 1 :]))


def _from_key_chunks(x, layout):
    """`(B, H, n, c, d)` -> `(B, H, T_k, d)`, the padding keys dropped."""
    shape = ops.shape(x)
    x = ops.reshape(x, (shape[0], shape[1], layout.n * layout.c, -1))
    return x if layout.no_pad else x[:, :, : layout.t_k]  # (a slice may copy)


def _query_blocks(x, layout):
    """`(s0, s1, T_q, ...)` -> `(s0, s1, nq, bq, ...)` (a reshape: no copy unless
    there are padding rows). The passes take one block at a time from it
    (`ops.take(..., axis=2)`), so no full-size copy of the queries, or of the
    output gradients, is made."""
    shape = ops.shape(x)
    if not layout.no_row_pad:
        x = ops.pad(x, [[0, 0], [0, 0], [0, layout.row_pad]] + [[0, 0]] * (len(x.shape) - 3))
    return ops.reshape(x, (shape[0], shape[1], layout.nq, layout.bq, *shape[3:]))


def _row_blocks(x, layout):
    """`(s0, s1, T_q, ...)` -> `(nq, s0, s1, bq, ...)`: the query blocks, first (a
    copy: for the small row-wise inputs that a loop takes as `xs`)."""
    return ops.moveaxis(_query_blocks(x, layout), 2, 0)


def _from_row_blocks(x, layout):
    """The inverse of `_row_blocks` (padding rows dropped)."""
    shape = ops.shape(x)
    x = ops.reshape(ops.moveaxis(x, 0, 2), (shape[1], shape[2], layout.nq * layout.bq, *shape[4:]))
    return x if layout.no_row_pad else x[:, :, : layout.t_q]


def _tiles(layout, mask, causal_offset, row_keys, dropout_rate, variants=None, forward=True):
    """The `_Tiles` of `layout` for a rank-4 `mask` (or None), dropout row keys (or
    None) and the `_Variants` of the scores; `forward` says which pass (which way
    a window's band is walked)."""
    variants = variants or _Variants()
    if forward:
        band = _band(variants.window, variants.offset, layout.bq, layout.c, layout.n, True)
    else:
        band = _band(variants.window, variants.offset, layout.c, layout.bq, layout.nq, False)
    # A mask without a T_k axis applies to every tile as it is; one with a T_k
    # axis is padded and cut into tiles (it is only as large as the caller made it).
    mask_cols = mask if mask is not None and mask.shape[-1] != 1 else None
    broadcast_mask = mask if mask is not None and mask.shape[-1] == 1 else None
    tiled_mask = None if mask_cols is None else _key_chunks(mask_cols, 3, layout)
    rows = {"index": ops.arange(layout.nq, dtype="int32")}
    for name, m in (("mask", tiled_mask), ("mask_broadcast", broadcast_mask)):
        if m is not None and m.shape[2] != 1:
            rows[name] = _row_blocks(m, layout)
    if row_keys is not None:
        rows["row_keys"] = _row_blocks(row_keys, layout)
    return _Tiles(
        layout=layout,
        rows=rows,
        masked=(not layout.no_pad or causal_offset is not None or mask is not None
                or variants.window is not None),
        t_k=ops.cast(layout.t_k, "int32"),
        causal_offset=causal_offset,
        tiled_mask=tiled_mask,
        broadcast_mask=broadcast_mask,
        dropout_rate=dropout_rate,
        keep_scale=1.0 / (1.0 - dropout_rate),
        variants=variants,
        band=band,
    )


def _tile_masks(j, block, tiles):
    """Tile (block, j)'s validity `(.., bq | 1, c)`, dropout multiplier and ALiBi
    bias `(1, H, bq, c)` (each None when there is none)."""
    layout, variants = tiles.layout, tiles.variants
    cols = ops.cast(j, "int32") * layout.c + ops.arange(layout.c, dtype="int32")
    relative = None  # query position − key position, (bq, c)
    if tiles.causal_offset is not None or variants.window is not None or variants.alibi is not None:
        r = block["index"] * layout.bq + ops.arange(layout.bq, dtype="int32")
        relative = (r + variants.offset)[:, None] - cols[None, :]
    valid = None
    if tiles.masked:
        valid = ops.less(cols, tiles.t_k)[None, None, None, :]
        if tiles.causal_offset is not None:
            valid = ops.logical_and(valid, ops.greater_equal(relative, 0)[None, None])
        if variants.window is not None:
            band = _masks.window_mask(relative, variants.window)
            valid = ops.logical_and(valid, band[None, None])
        if tiles.tiled_mask is not None:
            tile = ops.take(block.get("mask", tiles.tiled_mask), j, axis=3)
            valid = ops.logical_and(valid, tile)
        if tiles.broadcast_mask is not None:
            valid = ops.logical_and(valid, block.get("mask_broadcast", tiles.broadcast_mask))
    drop = None
    if "row_keys" in block:
        keep = _dropout_hash.keep_mask(block["row_keys"], cols, tiles.dropout_rate)
        drop = ops.where(keep, tiles.keep_scale, 0.0)
    bias = None
    if variants.alibi is not None:
        bias = -variants.alibi * ops.abs(ops.cast(relative, "float32"))[None, None]
    return valid, drop, bias


def _logits(s, variants, bias):
    """`(logits, tanh or None)`: the soft cap `cap · tanh(s / cap)` and the ALiBi
    bias applied to the scaled scores `s` of a tile (the tanh is kept for the
    backward pass)."""
    t = None
    if variants.soft_cap is not None:
        t = ops.tanh(s * (1.0 / variants.soft_cap))
        s = t * variants.soft_cap
    if bias is not None:
        s = s + bias
    return s, t


def _serialized(index, value):
    """`index`, made to depend on the tensor `value` (its value is unchanged).

    A TensorFlow graph while-loop runs up to ten iterations at once; the chunk
    loops take their chunk index through this, from the previous iteration's
    result, so one chunk's `(T_q, chunk_size)` tensors are alive at a time.
    """
    x = ops.sum(ops.reshape(value, (-1,))[:1])  # (no error if `value` is empty)
    return index + ops.cast(ops.less(x, x), "int32")


def chunked_attention(
    query,
    key,
    value,
    mask,
    causal_offset,
    scale,
    tiling,
    dropout_rate=0.0,
    seed=None,
    window=None,
    soft_cap=None,
    alibi_slopes=None,
):
    """Attention of `(B, H, T, d)` tensors over the tiles of `tiling`, in float32.

    `mask` is None or boolean rank 4 broadcastable to `(B, H, T_q, T_k)`;
    `causal_offset` None or an int (tensor): query `i` sees key `j <= i + offset`.
    `window` is None or `(left, right)`: query `i` sees keys
    `i + offset − left <= j <= i + offset + right` (offset: the causal offset or
    0), and each query block visits only the key chunks that the band reaches
    (backward: each key block only the query blocks). `soft_cap` (None or a
    float) caps the scaled scores at `cap · tanh(s / cap)`; `alibi_slopes` (None
    or `(H,)`) adds `−slope_h · |i + offset − j|` after the cap.
    The result has the dtype of `query`; the gradient is the tiled backward pass.
    """
    in_dtype = keras.backend.standardize_dtype(query.dtype)
    q = ops.cast(query, "float32")
    k = ops.cast(key, "float32")
    val = ops.cast(value, "float32")
    b, h, t_q = ops.shape(q)[0], ops.shape(q)[1], ops.shape(q)[2]
    t_k = ops.shape(k)[2]
    scale_f = ops.cast(scale, "float32")
    if causal_offset is not None and not isinstance(causal_offset, int):
        causal_offset = ops.cast(causal_offset, "int32")
    alibi = None
    if alibi_slopes is not None:
        alibi = ops.stop_gradient(ops.reshape(ops.cast(alibi_slopes, "float32"), (1, -1, 1, 1)))
    variants = _Variants(
        window=_capped_window(window, causal_offset),
        offset=0 if causal_offset is None else causal_offset,
        soft_cap=None if soft_cap is None else float(soft_cap),
        alibi=alibi,
    )
    row_keys = None
    if dropout_rate > 0:
        seed_values = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=seed)
        row_keys = _dropout_hash.row_keys(seed_values, b, h, t_q)

    def tiles(forward):
        layout = _pass_layout(t_q, t_k, tiling, variants.window, forward)
        return _tiles(layout, mask, causal_offset, row_keys, dropout_rate, variants, forward)

    @ops.custom_gradient
    def attend(q, k, val):
        # The scale is applied per query block (no full-size scaled copy of `q`).
        forward_tiles = tiles(forward=True)
        out, lse = _forward(q, scale_f, k, val, forward_tiles)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            backward_tiles = forward_tiles
            if isinstance(t_q, int):  # Key blocks, and query blocks of chunk_size rows.
                backward_tiles = tiles(forward=False)
            d_out = ops.cast(upstream, "float32")
            return _backward(d_out, q, k, val, out, lse, scale_f, backward_tiles)

        return out, grad

    return ops.cast(attend(q, k, val), in_dtype)


def _forward(q, scale, k, val, tiles):
    """`(output, logsumexp)` of the queries `q` (scaled by `scale`) by online softmax
    over `tiles`."""
    layout = tiles.layout
    b, h, d_v = ops.shape(q)[0], ops.shape(q)[1], ops.shape(val)[3]
    k_r, v_r = _key_chunks(k, 2, layout), _key_chunks(val, 2, layout)
    q_r = _query_blocks(q, layout)

    def forward_block(carry, block):
        qs = ops.take(q_r, block["index"], axis=2) * scale
        m0 = ops.full((b, h, layout.bq), _NEG, dtype="float32")
        l0 = ops.zeros((b, h, layout.bq), dtype="float32")
        acc0 = ops.zeros((b, h, layout.bq, d_v), dtype="float32")
        # With a window, only the band's key chunks: `trip` of them from `first`.
        first, trip = 0, layout.n
        if tiles.band is not None:
            first, trip = tiles.band.start(block["index"]), tiles.band.trip

        def body(t, state):
            j = t + first
            valid, drop, bias = _tile_masks(j, block, tiles)
            s = ops.einsum("bhqd,bhkd->bhqk", qs, ops.take(k_r, j, axis=2))
            s, _ = _logits(s, tiles.variants, bias)
            return _online_softmax_step(state, s, ops.take(v_r, j, axis=2), valid, drop)

        m, denom, acc = ops.fori_loop(0, trip, body, (m0, l0, acc0))
        seen = ops.greater(denom, 0.0)
        safe = ops.where(seen, denom, 1.0)
        lse = ops.where(seen, m + ops.log(safe), 0.0)
        result = (acc / safe[..., None], lse)
        return result, result

    # (Keras' TensorFlow `scan` wants the outputs shaped like the carry: the carry
    # is a block's result, unused.)
    init = (ops.zeros((b, h, layout.bq, d_v), "float32"), ops.zeros((b, h, layout.bq), "float32"))
    # (The loop takes the row-wise inputs as `xs`, and each block's queries from
    # `q_r`: `xs` would be copied whole, into a TensorArray on TensorFlow.)
    _, (out_b, lse_b) = ops.scan(forward_block, init, tiles.rows)
    return _from_row_blocks(out_b, layout), _from_row_blocks(lse_b, layout)


def _online_softmax_step(state, s, vj, valid, drop):
    """Folds the scores `s` of one tile (and its values `vj`) into `(max, sum, output)`."""
    m, denom, acc = state
    if valid is not None:
        s = ops.where(valid, s, _NEG)
    m_new = ops.maximum(m, ops.max(s, axis=-1))
    # Rows with no valid key yet subtract 0, so their masked scores give
    # exp(_NEG) = 0 (not exp(_NEG − _NEG) = 1).
    shift = ops.where(ops.greater(m_new, 0.5 * _NEG), m_new, 0.0)
    p = ops.exp(s - shift[..., None])
    alpha = ops.exp(m - m_new)
    pd = p if drop is None else p * drop
    pv = ops.einsum("bhqk,bhkd->bhqd", pd, vj)
    denom = denom * alpha + ops.sum(p, axis=-1)
    acc = acc * alpha[..., None] + pv
    return m_new, denom, acc


def _backward(d_out, q, k, val, out, lse, scale, tiles):
    """`(dQ, dK, dV)` for the upstream gradient `d_out`, over the tiles of `tiles`
    (`q` unscaled)."""
    layout, band = tiles.layout, tiles.band
    kb, vb = _key_chunks(k, 2, layout), _key_chunks(val, 2, layout)
    # rowsum(dO ⊙ O) = rowsum(P ⊙ dP), also with dropout.
    delta = ops.sum(d_out * out, axis=-1)[..., None]
    # The row-wise inputs: the small ones stacked by block, the queries and output
    # gradients as views taken a block at a time (no full-size copies).
    q_r, d_out_r = _query_blocks(q, layout), _query_blocks(d_out, layout)
    blocks = dict(tiles.rows, neg_lse=_row_blocks(-lse[..., None], layout),
                  neg_delta=_row_blocks(-delta, layout))
    # One query block's dQ terms are zeros shaped like the queries' blocks.
    block_shape = ops.shape(blocks["neg_lse"])[1:-1] + (ops.shape(q)[-1],)

    def key_block(j, first=None):
        """Key block `j`'s `(dK, dV)`, the `dQ` terms of the query blocks it meets
        (stacked) and the first of those blocks. With `first` given (the sliding
        accumulation below), the blocks from it may lie outside `[0, nq)`: such a
        virtual block takes a real one's rows and is masked out whole (its terms
        are zeros)."""
        virtual = first is not None
        kj = ops.take(kb, j, axis=2)
        vj = ops.take(vb, j, axis=2)
        one = ops.ones_like(kj[..., :1])
        kj_one = ops.concatenate([kj, one], axis=-1)
        vj_one = ops.concatenate([vj, one], axis=-1)

        def back_block(sums, _):
            i, dkj, dvj, _ = sums
            real = i
            if virtual:
                real = ops.clip(i, 0, layout.nq - 1)
            # The block is taken here (not scanned over as `xs`, which would copy
            # every block into a TensorArray once per key block).
            block = {name: ops.take(x, real, axis=0) for name, x in blocks.items()}
            block["qs"] = ops.take(q_r, real, axis=2) * scale
            block["d_out"] = ops.take(d_out_r, real, axis=2)
            # [Q, −lse]·[K_j, 1]ᵀ = S_j − lse and [dO, −delta]·[V_j, 1]ᵀ = dP_j − delta.
            block["qs_lse"] = ops.concatenate([block["qs"], block["neg_lse"]], axis=-1)
            block["d_out_delta"] = ops.concatenate([block["d_out"], block["neg_delta"]], axis=-1)
            valid, drop, bias = _tile_masks(j, block, tiles)
            if virtual:  # (`valid` is not None: a window masks.)
                in_range = ops.logical_and(ops.greater_equal(i, 0), ops.less(i, layout.nq))
                valid = ops.logical_and(valid, in_range)
            dv_i, ds = _backward_tile(block, kj, vj, kj_one, vj_one, valid, drop, bias, tiles)
            dvj = dvj + dv_i
            dkj = dkj + ops.einsum("bhqk,bhqd->bhkd", ds, block["qs"])
            dq_i = ops.einsum("bhqk,bhkd->bhqd", ds, kj) * scale
            sums = (i + 1, dkj, dvj, dq_i)
            return sums, sums

        # With a window, only the query blocks that the band reaches from this key
        # block: `trip` of them from `first`.
        trip = layout.nq if band is None else band.trip
        if first is None:
            first = ops.zeros((), "int32") if band is None else band.start(j)
        zeros = (first, ops.zeros_like(kj), ops.zeros_like(vj), ops.zeros(block_shape))
        (_, dkj, dvj, _), (_, _, _, dq_parts) = ops.scan(back_block, zeros, length=trip)
        return dkj, dvj, dq_parts, first

    slide = _sliding(band, layout)
    if slide is not None:
        # Banded, with key blocks a whole number `r` of query blocks apart: key block
        # `j` meets the query blocks from `j·r + base` on (unclamped), so once it is
        # done the `r` blocks from there are complete. The scan carries the partial
        # sums of the next `r` blocks and emits the `r` complete ones: the stacked
        # dQ terms are T rows in all, not `trip / r` times that.
        r, base = slide

        def slide_step(carry, j):
            _, _, pending = carry
            j = _serialized(j, pending)
            dkj, dvj, parts, _ = key_block(j, first=j * r + base)
            pad = r + r - band.trip
            if pad:
                parts = ops.concatenate([parts, ops.zeros((pad, *block_shape))], axis=0)
            parts = parts + ops.concatenate([pending, ops.zeros((r, *block_shape))], axis=0)
            return (dkj, dvj, parts[r:]), (dkj, dvj, parts[:r])

        zeros_r = ops.zeros((r, *block_shape))
        init = (ops.zeros_like(kb[:, :, 0]), ops.zeros_like(vb[:, :, 0]), zeros_r)
        (_, _, pending), (dk_s, dv_s, done) = ops.scan(
            slide_step, init, ops.arange(layout.n, dtype="int32")
        )
        # Blocks `base .. base + n·r − 1` are in `done`, the next `r` in `pending`.
        # (Query blocks outside those met by no key block: zeros.)
        dq_b = ops.reshape(done, (layout.n * r, *block_shape))
        if layout.n * r < layout.nq - base:
            dq_b = ops.concatenate([dq_b, pending], axis=0)
        have = ops.shape(dq_b)[0]
        before, after = max(base, 0), max(layout.nq - base - have, 0)
        if before or after:
            dq_b = ops.pad(dq_b, [[before, after]] + [[0, 0]] * (len(block_shape)))
        start = max(-base, 0)
        if start or start + layout.nq != ops.shape(dq_b)[0]:
            dq_b = dq_b[start : start + layout.nq]
        dk, dv = ops.moveaxis(dk_s, 0, 2), ops.moveaxis(dv_s, 0, 2)
    elif band is not None and isinstance(layout.n, int):
        # Banded: each key block's results are scan outputs (stacked once, not
        # written into full-size tensors per key block, which would cost O(T) per
        # block), and the dQ terms are summed per query block at the end.
        def step(carry, j):
            result = key_block(_serialized(j, carry[0]))
            return result, result

        init = (ops.zeros_like(kb[:, :, 0]), ops.zeros_like(vb[:, :, 0]),
                ops.zeros((band.trip, *block_shape)), ops.zeros((), "int32"))
        _, (dk_s, dv_s, dq_s, firsts) = ops.scan(
            step, init, ops.arange(layout.n, dtype="int32")
        )
        rows = ops.reshape(firsts[:, None] + ops.arange(band.trip, dtype="int32")[None], (-1,))
        dq_terms = ops.reshape(dq_s, (layout.n * band.trip, *ops.shape(dq_s)[2:]))
        dq_b = ops.segment_sum(dq_terms, rows, num_segments=layout.nq)
        dk, dv = ops.moveaxis(dk_s, 0, 2), ops.moveaxis(dv_s, 0, 2)
    else:
        def back(j, carry):
            dq_b, dk, dv = carry
            dkj, dvj, dq_parts, first = key_block(_serialized(j, dq_b))
            start = [0, 0, ops.cast(j, "int32"), 0, 0]
            dk = ops.slice_update(dk, start, dkj[:, :, None])
            dv = ops.slice_update(dv, start, dvj[:, :, None])
            if band is None:
                return dq_b + dq_parts, dk, dv
            rows_start = [first, 0, 0, 0, 0]
            size = [band.trip, *(ops.shape(dq_b)[1:])]
            update = ops.slice(dq_b, rows_start, size) + dq_parts
            return ops.slice_update(dq_b, rows_start, update), dk, dv

        init = (ops.zeros((layout.nq, *block_shape)), ops.zeros_like(kb), ops.zeros_like(vb))
        dq_b, dk, dv = ops.fori_loop(0, layout.n, back, init)
    dq = _from_row_blocks(dq_b, layout)
    return dq, _from_key_chunks(dk, layout), _from_key_chunks(dv, layout)


def _sliding(band, layout):
    """`(r, base)` when the backward pass can accumulate dQ by sliding (see
    `_backward`): static sizes, key blocks of `r` whole query blocks, a static
    shift (key block `j` meets query blocks from `j·r + base`), and at most `2r`
    query blocks met per key block; else None."""
    if band is None or not all(isinstance(x, int) for x in (layout.n, layout.nq, band.trip)):
        return None
    if not isinstance(band.shift, int) or band.outer % band.inner:
        return None
    r = band.outer // band.inner
    if band.trip > 2 * r:
        return None
    return r, band.shift // band.inner


def _backward_tile(block, kj, vj, kj_one, vj_one, valid, drop, bias, tiles):
    """One tile's `(dV term, dS)`, from its weights recomputed as `P = exp(S − lse)`.

    `kj_one`, `vj_one` are the key block's keys and values with a column of ones.
    With a soft cap the scores are recomputed from `Q Kᵀ` (the cap is not linear)
    and `dS` gets the cap's derivative `1 − tanh²`; an ALiBi bias is a constant
    added to `S`.
    """
    variants = tiles.variants
    t = None
    if variants.soft_cap is None:
        x = ops.einsum("bhqd,bhkd->bhqk", block["qs_lse"], kj_one)
        if bias is not None:
            x = x + bias
    else:
        s, t = _logits(ops.einsum("bhqd,bhkd->bhqk", block["qs"], kj), variants, bias)
        x = s + block["neg_lse"]
    p = ops.exp(x)
    if valid is not None:
        p = ops.where(valid, p, 0.0)
    if drop is None:
        dv_i = ops.einsum("bhqk,bhqd->bhkd", p, block["d_out"])
        ds = p * ops.einsum("bhqd,bhkd->bhqk", block["d_out_delta"], vj_one)
    else:
        dv_i = ops.einsum("bhqk,bhqd->bhkd", p * drop, block["d_out"])
        dp = ops.einsum("bhqd,bhkd->bhqk", block["d_out"], vj)
        ds = p * (dp * drop + block["neg_delta"])
    if t is not None:
        ds = ds * (1.0 - t * t)
    return dv_i, ds
