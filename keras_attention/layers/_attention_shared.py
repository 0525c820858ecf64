"""What `MultiHeadAttention` and `GroupQueryAttention` share (not public).

The projections' properties and `compute_cache`'s checks (`Projections`), the
score variants' constructor options (`sliding_window`, `soft_cap`,
`alibi`: their checks and the kernel arguments they become), the key/value
cache's index check and write (a known index past the cache end is a
ValueError; a symbolic one leaves the cache unchanged and makes the output
NaN), and a step's key mask mapped onto the cache positions.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_attention.ops import alibi_slopes as _alibi_slopes


# ------------------------------------------------------------ score variants
def check_soft_cap(soft_cap):
    """None, or `soft_cap` as a positive finite float; a ValueError naming it otherwise."""
    if soft_cap is None:
        return None
    if (
        isinstance(soft_cap, bool)
        or not isinstance(soft_cap, numbers.Real)
        or not (math.isfinite(soft_cap) and soft_cap > 0)
    ):
        raise ValueError(
            f"`soft_cap` must be None or a positive finite float. Received: soft_cap={soft_cap!r}"
        )
    return float(soft_cap)


def check_alibi(alibi, num_heads, heads_name="num_heads"):
    """`alibi` as a config value: False, True (the slopes of `ops.alibi_slopes`) or a
    list of `num_heads` finite floats (one slope per head)."""
    if isinstance(alibi, bool):
        return alibi
    if isinstance(alibi, (list, tuple, np.ndarray)):
        slopes = list(np.asarray(alibi).tolist()) if isinstance(alibi, np.ndarray) else alibi
        if len(slopes) == num_heads and all(
            isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s)
            for s in slopes
        ):
            return [float(s) for s in slopes]
    raise ValueError(
        "`alibi` must be a bool or a list of one finite float slope per head "
        f"({heads_name}={num_heads}). Received: alibi={alibi!r}"
    )


def alibi_slopes(alibi, num_heads):
    """The `(num_heads,)` float32 slopes of a checked `alibi`, or None without ALiBi."""
    if alibi is False:
        return None
    if alibi is True:
        return _alibi_slopes(num_heads)
    return np.asarray(alibi, dtype="float32")


def kernel_variants(sliding_window, soft_cap, slopes):
    """The kernel's `window`, `soft_cap` and `alibi_slopes` keywords.

    A Keras `sliding_window` `w` (query `i` sees keys `|i − j| < w`) is the
    kernel's band `window=(w − 1, w − 1)`: a mask computed per tile, which lets
    the memory-efficient path skip the tiles outside the band (with a causal
    mask the kernel caps its right side at 0).
    """
    return dict(
        window=None if sliding_window is None else (sliding_window - 1, sliding_window - 1),
        soft_cap=soft_cap,
        alibi_slopes=None if slopes is None else ops.convert_to_tensor(slopes, "float32"),
    )


# ------------------------------------------------------ projections and cache
class Projections:
    """The sub-layers `query`, `key`, `value` and `attention_output` as Keras'
    attention layers expose them, and the inputs of `compute_cache`."""

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    def _cache_inputs(self, value, key):
        """`(value, key)` for `compute_cache`: a built layer's, without Keras masks."""
        if not self.built:
            raise ValueError(
                "`compute_cache` needs a built layer: call the layer once (or `build` it) "
                f"before computing a cache. Received: layer {self.name!r} is not built."
            )
        value = without_keras_mask(value)
        return value, value if key is None else without_keras_mask(key)


def call_masks(cache, cache_update_index, value, key, value_mask, key_mask):
    """`(value_mask, key_mask)` of a call: checks the cache arguments go together,
    and drops the Keras masks of `value`/`key` when the cache is used as it is
    (they are not attended to then, e.g. a decoder step's)."""
    if cache_update_index is not None and cache is None:
        raise ValueError(
            "`cache_update_index` needs a `cache`. Received: "
            f"cache_update_index={cache_update_index!r}, cache=None"
        )
    if cache is not None and cache_update_index is None:
        if value_mask is not None and value_mask is getattr(value, "_keras_mask", None):
            value_mask = None
        if key_mask is not None and key_mask is getattr(key, "_keras_mask", None):
            key_mask = None
    return value_mask, key_mask


def with_cache_spec(specs, cache):
    """The output specs `specs` (one or a tuple), and the cache's last when given."""
    if cache is None:
        return specs
    specs = specs if isinstance(specs, tuple) else (specs,)
    return (*specs, keras.KerasTensor(cache.shape, dtype=cache.dtype))


def concrete_index(index):
    """The value of a cache index known now (int, NumPy or eager tensor), else None.

    None means the index is symbolic: a traced tensor under `tf.function`,
    `jax.jit` or `torch.compile`.
    """
    if isinstance(index, (bool, np.bool_)):
        raise ValueError(
            f"`cache_update_index` must be an integer. Received: cache_update_index={index!r}"
        )
    if isinstance(index, (int, np.integer)):
        return int(index)
    shape = tuple(getattr(index, "shape", ()))
    if shape:
        raise ValueError(
            "`cache_update_index` must be a scalar. Received: "
            f"cache_update_index with shape {shape}"
        )
    if isinstance(index, np.ndarray):
        return int(index)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        value = tf.get_static_value(index)
        return None if value is None else int(value)
    if backend == "jax":
        import jax

        return None if isinstance(index, jax.core.Tracer) else int(index)
    if backend == "torch":
        import torch

        return None if torch.compiler.is_compiling() else int(index)
    return None


def check_cache_index(index, t_new, max_len):
    """Raises for a known index outside `[0, max_len - t_new]`.

    Returns True when the check has to happen in the graph (a symbolic index,
    or lengths unknown when tracing), else None.
    """
    value = concrete_index(index)
    if value is None:
        return True
    if value < 0 or (t_new is not None and max_len is not None and value + t_new > max_len):
        raise ValueError(
            "`cache_update_index` must be in [0, max_len - T_new] so the new keys fit "
            f"in the cache. Received: cache_update_index={value}, T_new={t_new}, "
            f"max_len={max_len}"
        )
    return True if t_new is None or max_len is None else None


def write_cache(cache, idx, in_graph, k_new, v_new):
    """Writes the new keys and values `(batch, T_new, heads, dim)` at `idx`.

    Returns `(new_cache, keys, values, fits)`: `keys` and `values` are the
    written cache's `(batch, max_len, heads, dim)` halves. `in_graph` is what
    `check_cache_index` returned: when True, `fits` is the in-graph check
    (a boolean scalar) and a cache the new steps do not fit in comes back
    unchanged (instead of the backend's clamped write overwriting the last
    slots); else `fits` is None.
    """
    start = [0, idx, 0, 0]
    k = ops.slice_update(cache[:, 0], start, ops.cast(k_new, cache.dtype))
    val = ops.slice_update(cache[:, 1], start, ops.cast(v_new, cache.dtype))
    new_cache = ops.stack([k, val], axis=1)
    fits = None
    if in_graph:
        t_new, max_len = ops.shape(k_new)[1], ops.shape(cache)[2]
        fits = ops.logical_and(idx >= 0, idx + t_new <= max_len)
        new_cache = ops.where(fits, new_cache, cache)
    return new_cache, k, val, fits


def nan_unless(fits, *tensors):
    """`tensors` (None passes), all NaN where the in-graph cache check `fits` failed."""
    if fits is None:
        return tensors
    return tuple(
        None if x is None else ops.where(fits, x, ops.cast(float("nan"), x.dtype))
        for x in tensors
    )


def cache_value_mask(value_mask, key, cache, idx):
    """Maps a value mask onto the cache positions when keys are written at `idx`:
    a `(batch, T_new)` mask over the new steps becomes `(batch, max_len)`, True
    at the other positions; a `(batch, max_len)` mask is kept."""
    if value_mask is None:
        return None
    max_len = cache.shape[2]
    t_new = key.shape[1]
    length = value_mask.shape[-1]
    if length is not None and length == t_new and length != max_len:
        full = ops.ones((ops.shape(cache)[0], ops.shape(cache)[2]), dtype="int32")
        update = ops.cast(value_mask, "int32")
        return ops.cast(ops.slice_update(full, [0, idx], update), "bool")
    return value_mask


def without_keras_mask(x):
    """A copy of `x` without the Keras mask, so the projections do not warn about it."""
    if x is not None and getattr(x, "_keras_mask", None) is not None:
        return ops.copy(x)
    return x
