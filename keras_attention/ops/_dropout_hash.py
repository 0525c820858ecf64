"""Counter-based dropout masks for the chunked attention path (not public).

The chunked path never holds the full `(T_q, T_k)` weights, so it cannot keep a
dropout mask for the backward pass. Instead each tile's keep mask is a hash of
(seed, batch, head, query, key): the backward pass hashes the same positions
and gets exactly the mask of the forward pass.

The hash is 32-bit arithmetic modulo `2**32`, and gives the same bits on every
backend (the NumPy reference in the tests computes it in `uint32`). It runs in
`uint32` where the backend has it (TensorFlow, JAX: unsigned overflow wraps, and
JAX's default 32-bit integers cannot hold `0xFFFFFFFF` as an `int32`), and in
`int64` holding values in `[0, 2**32)` where Keras maps `uint32` to `int64`
(PyTorch): there each product is split into 16-bit halves so that nothing
overflows, and the result is masked back to 32 bits.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

_MASK32 = 0xFFFFFFFF
# "lowbias32" (Chris Wellons' hash-prospector): x ^= x >> 16; x *= M1; x ^= x >> 15;
# x *= M2; x ^= x >> 16.
_M1 = 0x7FEB352D
_M2 = 0x846CA68B


@functools.cache
def _dtype_for(backend: str) -> str:
    """The dtype the hash computes in on `backend`: `uint32`, or `int64` where
    Keras converts `uint32` to it."""
    del backend  # (the cache key)
    probe = ops.convert_to_tensor(np.zeros((1,), np.uint32), dtype="uint32")
    dtype = keras.backend.standardize_dtype(probe.dtype)
    return "uint32" if dtype == "uint32" else "int64"


def work_dtype() -> str:
    """The integer dtype of the hash's values on the current backend."""
    return _dtype_for(keras.backend.backend())


def _const(c: int, dtype: str):
    return ops.convert_to_tensor(np.asarray(c, dtype=dtype), dtype=dtype)


def _mul32(x, c: int):
    """`(x * c) mod 2**32` for `x` in `[0, 2**32)`."""
    dtype = work_dtype()
    if dtype == "uint32":  # Wraps modulo 2**32.
        return ops.multiply(x, _const(c, dtype))
    # int64: x · c would overflow; (x · c_lo + ((x · c_hi) mod 2**16) · 2**16) does not.
    lo = ops.multiply(x, _const(c & 0xFFFF, dtype))
    hi = ops.bitwise_and(ops.multiply(x, _const(c >> 16, dtype)), _const(0xFFFF, dtype))
    return ops.bitwise_and(lo + ops.multiply(hi, _const(1 << 16, dtype)), _const(_MASK32, dtype))


def _xorshift(x, bits: int):
    """`x ^ (x >> bits)` (a logical shift: the values are non-negative)."""
    return ops.bitwise_xor(x, ops.right_shift(x, _const(bits, work_dtype())))


def hash32(x):
    """A 32-bit integer mixing function (xorshift-multiply, "lowbias32") of values
    in `[0, 2**32)` held in `work_dtype()`."""
    x = _mul32(_xorshift(x, 16), _M1)
    x = _mul32(_xorshift(x, 15), _M2)
    return _xorshift(x, 16)


def _to_work(x):
    """Non-negative int32 (or smaller) values in `work_dtype()`."""
    return ops.cast(ops.cast(x, "int32"), work_dtype())


def row_keys(seed, batch, heads, t_q):
    """Per-(batch, head, query) keys `(B, H, T_q, 1)` (in `work_dtype()`) for the
    dropout hash.

    `seed` is a length-2 tensor of non-negative int32 values (drawn once per call,
    so the forward and the backward pass see the same dropout mask).
    """
    s = _to_work(seed)
    base = hash32(ops.bitwise_xor(hash32(s[0]), s[1]))
    bh = ops.arange(batch, dtype="int32")[:, None] * ops.cast(heads, "int32")
    bh = _to_work(bh + ops.arange(heads, dtype="int32")[None, :])
    key = hash32(ops.bitwise_xor(base, bh))[..., None]
    rows = _to_work(ops.arange(t_q, dtype="int32"))[None, None, :]
    return hash32(ops.bitwise_xor(key, rows))[..., None]


def keep_mask(keys, cols, rate):
    """Boolean keep mask `(B, H, T_q, len(cols))` of the row keys `keys` at key
    indices `cols`: the top 24 bits of the hash at or above `rate · 2**24`."""
    dtype = work_dtype()
    bits = hash32(ops.bitwise_xor(keys, _to_work(cols)))
    threshold = _const(int(round(rate * (1 << 24))), dtype)
    return ops.greater_equal(ops.right_shift(bits, _const(8, dtype)), threshold)
