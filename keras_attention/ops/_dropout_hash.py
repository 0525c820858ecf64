"""Counter-based dropout masks for the chunked attention path (not public).

The chunked path never holds the full `(T_q, T_k)` weights, so it cannot keep a
dropout mask for the backward pass. Instead each tile's keep mask is a hash of
(seed, batch, head, query, key): the backward pass hashes the same positions
and gets exactly the mask of the forward pass.
"""

from __future__ import annotations

from keras import ops

_MASK32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """`(x * c) mod 2**32` for int64 `x` in [0, 2**32) without int64 overflow."""
    lo = ops.multiply(x, c & 0xFFFF)
    hi = ops.bitwise_and(ops.multiply(x, c >> 16), 0xFFFF)
    return ops.bitwise_and(lo + ops.multiply(hi, 65536), _MASK32)


def hash32(x):
    """A 32-bit integer mixing function (xorshift-multiply, "lowbias32") on int64."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = _mul32(x, 0x7FEB352D)
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = _mul32(x, 0x846CA68B)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def row_keys(seed, batch, heads, t_q):
    """Per-(batch, head, query) int64 keys `(B, H, T_q, 1)` for the dropout hash.

    `seed` is a length-2 integer tensor (drawn once per call, so the forward and
    the backward pass see the same dropout mask).
    """
    s = ops.cast(seed, "int64")
    base = hash32(ops.bitwise_xor(hash32(ops.bitwise_and(s[0], _MASK32)), s[1] & _MASK32))
    bh = ops.arange(batch, dtype="int64")[:, None] * ops.cast(heads, "int64")
    bh = bh + ops.arange(heads, dtype="int64")[None, :]
    key = hash32(ops.bitwise_xor(base, ops.bitwise_and(bh, _MASK32)))[..., None]
    rows = ops.arange(t_q, dtype="int64")[None, None, :]
    return hash32(ops.bitwise_xor(key, rows))[..., None]


def keep_mask(keys, cols, rate):
    """Boolean keep mask `(B, H, T_q, len(cols))` of the row keys `keys` at key indices `cols`."""
    bits = hash32(ops.bitwise_xor(keys, ops.cast(cols, "int64")))
    threshold = int(round(rate * (1 << 24)))
    return ops.greater_equal(ops.right_shift(bits, 8), threshold)
