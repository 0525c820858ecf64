"""Multi-head attention with masks, returned weights, a memory-efficient path and a KV cache.

A drop-in for `keras.layers.MultiHeadAttention`: the same constructor and call
arguments, the same sub-layers and kernel shapes, the same results (see the class
docstring for the one documented difference, the output of fully masked rows).
"""

from __future__ import annotations

import functools
import operator
import string

import keras
import numpy as np
from keras import ops

from keras_attention import _validation as v
from keras_attention.layers import _attention_shared as shared
from keras_attention.layers import _common, _kernel_call

# Key chunk of the exact memory-efficient path that `flash_attention=True` selects
# when `chunk_size` is not given.
FLASH_CHUNK_SIZE = 512


def _proj_equation(free: int, bound: int, out: int):
    """Einsum equation, bias axes for a projection `(free..., bound...) -> (free..., out...)`."""
    letters = string.ascii_lowercase
    f = letters[:free]
    bd = letters[free : free + bound]
    o = letters[free + bound : free + bound + out]
    return f"{f}{bd},{bd}{o}->{f}{o}", o


def _prod(dims):
    return functools.reduce(operator.mul, dims, 1)


def _normalize_axes(attention_axes):
    """None, or a tuple of ints (as Keras takes it: an int, a list or a tuple)."""
    if attention_axes is None:
        return None
    if isinstance(attention_axes, (int, np.integer)) and not isinstance(attention_axes, bool):
        return (int(attention_axes),)
    if isinstance(attention_axes, (list, tuple)) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in attention_axes
    ) and attention_axes:
        return tuple(int(a) for a in attention_axes)
    raise ValueError(
        "`attention_axes` must be None, an int or a non-empty list/tuple of ints. "
        f"Received: attention_axes={attention_axes!r}"
    )


def _as_mask(mask):
    return mask if mask is None or hasattr(mask, "shape") else ops.convert_to_tensor(mask)


def _check_mask(name, mask, lengths, what):
    """A `(batch, length)` mask whose known length is one of `lengths` (unknowns pass)."""
    if mask is None:
        return
    shape = tuple(mask.shape)
    if len(shape) != 2:
        raise ValueError(
            f"`{name}` must have shape (batch, length). Received: {name}.shape={shape}"
        )
    known = [n for n in lengths if n is not None]
    if shape[1] is not None and known and shape[1] not in known:
        expected = " or ".join(str(n) for n in dict.fromkeys(known))
        raise ValueError(
            f"The length of `{name}` must be {expected} ({what}). "
            f"Received: {name}.shape={shape}"
        )


@keras.saving.register_keras_serializable(package="keras_attention")
class MultiHeadAttention(shared.Projections, keras.layers.Layer):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017).

    Each head `i` projects the inputs and attends:
    ```
    Q_i = query W_i^Q,  K_i = key W_i^K,  V_i = value W_i^V
    head_i = softmax(Q_i K_iᵀ / sqrt(key_dim) + mask) V_i
    output = concat(head_1, ..., head_h) W^O
    ```
    A drop-in for `keras.layers.MultiHeadAttention`: it takes the same constructor
    and call arguments (and a Keras-saved config), and its projections are
    `EinsumDense` sub-layers named `query`, `key`, (`gate`,) `value` and
    `attention_output` with Keras' kernel shapes, so weights copy one-to-one.
    Every mask (padding, attention, causal, sliding window) is applied on every
    path: with or without dropout, returned scores, the memory-efficient path or
    the cache (the causal mask is never dropped, cf. keras#23038).

    Fully masked rows: a query row that may attend to no key (its `query_mask`
    entry is False, or all its keys are masked) gets all-zero attention weights,
    never NaN, so its attention output is the output projection's bias. Keras 3.15
    returns the same zero weights and the same output when it computes the weights
    (`return_attention_scores=True` or `dropout > 0`), but on its fused path (no
    scores, no dropout) it averages the values uniformly for such rows; this layer
    gives the zeros on every path. All other rows agree with Keras. Also, unlike
    Keras 3.15 (which only reads the query's Keras mask), an explicit `query_mask`
    argument is honoured.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value; defaults to `key_dim`.
        dropout: dropout rate on the attention weights (training only).
        use_bias: whether the projections have biases.
        output_shape: last dimension(s) of the output (int or tuple); defaults to
            the query's last dimension.
        attention_axes: None, an int or a tuple of ints: the axes of the inputs
            attended over (as in Keras; negative axes count from the end of the
            input's shape, so `-2` is the sequence axis of a rank-3 input). None
            means every axis but the batch and the features. Several axes are
            attended over jointly, as one flattened sequence; the other axes act
            as batch axes. Masks other than `attention_mask`, the causal mask,
            `sliding_window`, `alibi` and the cache need the plain case: rank-3
            inputs attending over axis 1 (`soft_cap` applies in every case).
        sliding_window: None or a positive int: query `i` attends to keys `j`
            with `|i - j| < sliding_window` (as in Keras; combine with
            `use_causal_mask` for Mistral's causal window of `sliding_window`
            keys). With a cache, `i` counts from `cache_update_index`. It is the
            kernel's band `window=(sliding_window - 1, sliding_window - 1)` of
            `keras_attention.ops.scaled_dot_product_attention`, masked per tile:
            no `(T_q, T_k)` band is built, and on the memory-efficient path
            (`chunk_size` or `flash_attention=True`) the tiles outside the band
            are skipped, so the cost grows linearly in T.
        soft_cap: None, or a positive float `c`: the scaled scores `s` become
            `c · tanh(s / c)` before the masks and the softmax (Gemma 2's
            attention-logit soft-capping).
        alibi: False, True, or a list of `num_heads` floats: ALiBi (Press et al.
            2022) adds `-slope_h · |i - j|` to head `h`'s scores (after the soft
            cap); True takes the slopes of `keras_attention.ops.alibi_slopes`,
            a list gives them. With a cache, `i` counts from `cache_update_index`.
        flash_attention: None, False or True. Here True selects the exact
            memory-efficient path (the online-softmax kernel of `chunk_size`; with
            `chunk_size=None` it uses chunks of `FLASH_CHUNK_SIZE` = 512): the
            same results as the plain path up to rounding, no `(T_q, T_k)` tensor,
            dropout supported, no returned scores. None and False give the plain
            path unless `chunk_size` is set (`keras.config.enable_flash_attention`
            is not consulted); False with a `chunk_size` is an error.
        chunk_size: None, or a positive int to use the exact memory-efficient
            path (online softmax over key chunks, no `(T_q, T_k)` tensor held in
            the forward or backward pass; dropout still applies). It cannot
            return attention scores.
        kernel_initializer, bias_initializer: for the projections (each gets its
            own copy).
        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint: for
            the projections.
        activity_regularizer: applied to the output of every projection, as Keras does.
        use_gate: whether to gate the attention output with a sigmoid projection of
            the query (Keras' `use_gate`, a `gate` sub-layer).
        seed: None or an int, the seed of the dropout on the attention weights.

    `num_heads` and `key_dim` are the only positional arguments.

    Call arguments:
        query: `(batch, T_q, dim_q)` (or `(batch, *axes, dim_q)`, see `attention_axes`).
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim_k)`; defaults to `value`.
        query_mask: boolean `(batch, T_q)`; defaults to the Keras mask of `query`.
            Masked query rows get zero weights.
        value_mask: boolean `(batch, T_k)`; defaults to the Keras mask of `value`.
            With a cache: `(batch, max_len)` over cache positions, or
            `(batch, T_q)` over the keys written at `cache_update_index`.
        key_mask: like `value_mask`, defaults to the Keras mask of `key`. As in
            Keras, when both are given both apply (a key is attended to only if
            both masks allow it).
        attention_mask: boolean broadcastable to `(batch, T_q, T_k)` (rank 2 or 3),
            or `(batch, num_heads, T_q, T_k)`. True = may attend.
        return_attention_scores: also return the weights.
        training: whether dropout is applied.
        use_causal_mask: query `i` attends to keys `j <= i` only.
        cache: optional `(batch, 2, max_len, num_heads, key_dim)` key/value cache
            (keys at `[:, 0]`, values at `[:, 1]`; needs `value_dim == key_dim`).
        cache_update_index: int (scalar tensor ok). With a cache, the keys and
            values of `key`/`value` for the `T_q` new steps are written at this
            index and query `i` attends to cache positions
            `<= cache_update_index + i` (so `< cache_update_index + T_q`). If None,
            the cache is used as it is (precomputed cross-attention keys/values,
            `key`/`value` are ignored). An index with
            `index < 0` or `index + T_q > max_len` is a ValueError when it is known
            at call time (a Python int, a NumPy or an eager tensor). A symbolic
            index (under `tf.function`, `jax.jit`, `torch.compile`) cannot raise
            in the graph: then the cache comes back unchanged and the output (and
            scores) are NaN, instead of the backend's clamped write silently
            overwriting the last slots.

    Returns:
        `(batch, T_q, dim_q)` (or `(batch, T_q, *output_shape)`); with
        `return_attention_scores` also the weights `(batch, num_heads, T_q, T_k)`
        (with `attention_axes`, `(batch, *other axes, num_heads, *query axes,
        *key axes)` as in Keras); with a cache, the updated cache
        `(batch, 2, max_len, num_heads, key_dim)` comes last:
        `(output, [scores,] new_cache)`.

    Example:

    >>> mha = MultiHeadAttention(2, 8)  # num_heads, key_dim; the rest by keyword
    >>> x = keras.random.normal((2, 5, 16))
    >>> y, scores = mha(x, x, use_causal_mask=True, return_attention_scores=True)
    >>> tuple(y.shape), tuple(scores.shape)
    ((2, 5, 16), (2, 2, 5, 5))
    >>> cache = keras.ops.zeros((2, 2, 5, 2, 8))  # incremental decoding
    >>> for t in range(5):
    ...     y_t, cache = mha(x[:, t : t + 1], x[:, t : t + 1], cache=cache,
    ...                      cache_update_index=t)
    >>> tuple(y_t.shape)
    (2, 1, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Beltagy et
        al., "Longformer", 2020 (sliding window); Gemma Team, "Gemma 2", 2024
        (soft-capping); Press et al., "Train Short, Test Long: Attention with
        Linear Biases Enables Input Length Extrapolation", ICLR 2022 (ALiBi).
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        *,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        soft_cap=None,
        alibi=False,
        flash_attention=None,
        chunk_size=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = v.positive_int("num_heads", num_heads)
        self.key_dim = v.positive_int("key_dim", key_dim)
        self.value_dim = v.positive_int("value_dim", value_dim, allow_none=True) or key_dim
        self.dropout = v.rate("dropout", dropout)
        if not isinstance(use_bias, bool):
            raise ValueError(f"`use_bias` must be a bool. Received: use_bias={use_bias!r}")
        self.use_bias = use_bias
        if not isinstance(use_gate, bool):
            raise ValueError(f"`use_gate` must be a bool. Received: use_gate={use_gate!r}")
        self.use_gate = use_gate
        if output_shape is not None:
            shape = (output_shape,) if isinstance(output_shape, int) else output_shape
            try:
                shape = tuple(shape)
            except TypeError:
                shape = None
            if not shape or any(
                isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape
            ):
                raise ValueError(
                    "`output_shape` must be a positive int or a tuple of positive ints. "
                    f"Received: output_shape={output_shape!r}"
                )
            output_shape = shape
        self._output_shape = output_shape
        self.attention_axes = _normalize_axes(attention_axes)
        self.sliding_window = v.positive_int("sliding_window", sliding_window, allow_none=True)
        self.soft_cap = shared.check_soft_cap(soft_cap)
        self.alibi = shared.check_alibi(alibi, self.num_heads)
        self._alibi_slopes = shared.alibi_slopes(self.alibi, self.num_heads)
        if flash_attention is not None and not isinstance(flash_attention, bool):
            raise ValueError(
                "`flash_attention` must be None or a bool. "
                f"Received: flash_attention={flash_attention!r}"
            )
        self.chunk_size = v.positive_int("chunk_size", chunk_size, allow_none=True)
        if flash_attention is False and self.chunk_size is not None:
            raise ValueError(
                "`flash_attention=False` asks for the plain path, `chunk_size` for the "
                "memory-efficient one. Received: flash_attention=False, "
                f"chunk_size={chunk_size}"
            )
        self.flash_attention = flash_attention
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.projection_activity_regularizer = keras.regularizers.get(activity_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = v.seed("seed", seed)
        self.supports_masking = True
        self._seed_generator = None
        self._gate_dense = None
        self._axes = None  # the resolved attention axes, set in build

    @property
    def _chunk(self):
        """The key chunk of the memory-efficient path, or None for the plain path."""
        if self.chunk_size is None and self.flash_attention:
            return FLASH_CHUNK_SIZE
        return self.chunk_size

    # ------------------------------------------------------------------ build
    def _sublayer_kwargs(self):
        return dict(
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            activity_regularizer=self.projection_activity_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
        )

    def _projection(self, name, rank, heads_dim, **kwargs):
        equation, bias_axes = _proj_equation(rank - 1, 1, 2)
        return keras.layers.EinsumDense(
            equation,
            output_shape=(*[None] * (rank - 2), self.num_heads, heads_dim),
            bias_axes=bias_axes if self.use_bias else None,
            name=name,
            **kwargs,
            **self._sublayer_kwargs(),
        )

    def _resolve_axes(self, rank):
        """The attention axes of rank-`rank` inputs, each in `[1, rank - 2]`."""
        if self.attention_axes is None:
            return tuple(range(1, rank - 1))
        axes = tuple(a + rank if a < 0 else a for a in self.attention_axes)
        if any(not 1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                "`attention_axes` must be distinct axes of the inputs other than the batch "
                f"axis (0) and the feature axis (-1); inputs of rank {rank} allow axes 1 to "
                f"{rank - 2} (or {1 - rank} to -2). Received: "
                f"attention_axes={self.attention_axes!r}"
            )
        return axes

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        query_shape, value_shape, key_shape = (
            tuple(query_shape), tuple(value_shape), tuple(key_shape)
        )
        rank = len(query_shape)
        if rank < 3:
            v.rank("query", query_shape, 3)
        v.rank("value", value_shape, rank)
        v.rank("key", key_shape, rank)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value.shape={value_shape}, key.shape={key_shape}"
            )
        self._axes = self._resolve_axes(rank)
        others = [a for a in range(1, rank - 1) if a not in self._axes]
        for a in others:
            if None not in (query_shape[a], value_shape[a]) and query_shape[a] != value_shape[a]:
                raise ValueError(
                    f"Axis {a} is not an attention axis, so `query` and `value` must agree "
                    f"on it. Received: query.shape={query_shape}, value.shape={value_shape}, "
                    f"attention_axes={self.attention_axes!r}"
                )
        self._query_dense = self._projection("query", rank, self.key_dim)
        self._query_dense.build(query_shape)
        self._key_dense = self._projection("key", rank, self.key_dim)
        self._key_dense.build(key_shape)
        if self.use_gate:
            self._gate_dense = self._projection(
                "gate", rank, self.value_dim, activation="sigmoid"
            )
            self._gate_dense.build(query_shape)
        self._value_dense = self._projection("value", rank, self.value_dim)
        self._value_dense.build(value_shape)
        out_dims = self._output_shape or (query_shape[-1],)
        equation, bias_axes = _proj_equation(rank - 1, 2, len(out_dims))
        self._output_dense = keras.layers.EinsumDense(
            equation,
            output_shape=(*[None] * (rank - 2), *out_dims),
            bias_axes=bias_axes if self.use_bias else None,
            name="attention_output",
            **self._sublayer_kwargs(),
        )
        self._output_dense.build((*query_shape[:-1], self.num_heads, self.value_dim))
        if self.dropout > 0:
            self._seed_generator = keras.random.SeedGenerator(self.seed, name="dropout_seed")
        self.built = True

    @property
    def gate_dense(self):
        return self._gate_dense

    def _plain_case(self):
        """Rank-3 inputs attending over axis 1 (the only case with masks and caches)."""
        return self._axes == (1,)

    # ------------------------------------------------------------------- call
    def compute_cache(self, value, key=None):
        """Projects a whole `value` (and `key`) sequence into a cache tensor.

        Args:
            value: `(batch, T_k, dim_v)`.
            key: `(batch, T_k, dim_k)`; defaults to `value`.

        Returns:
            `(batch, 2, T_k, num_heads, key_dim)`: keys at `[:, 0]`, values at `[:, 1]`,
            for `call(..., cache=cache)` with `cache_update_index=None`.
        """
        value, key = self._cache_inputs(value, key)
        self._check_cache_dims()
        k = self._key_dense(key)
        val = self._value_dense(value)
        return ops.stack([k, val], axis=1)

    def _check_cache_dims(self):
        if not self._plain_case():
            raise ValueError(
                "A key/value cache needs rank-3 inputs attending over axis 1. Received: "
                f"attention_axes={self.attention_axes!r} (resolved to {self._axes})"
            )
        if self.value_dim != self.key_dim:
            raise ValueError(
                "A key/value cache stores keys and values in one tensor and needs "
                f"value_dim == key_dim. Received: key_dim={self.key_dim}, "
                f"value_dim={self.value_dim}"
            )

    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
        attention_mask=None, return_attention_scores=False, training=None,
        use_causal_mask=False, cache=None, cache_update_index=None,
    ):
        chunk = self._chunk
        if return_attention_scores and chunk is not None and self.flash_attention:
            raise ValueError(
                "`return_attention_scores=True` cannot be used with flash_attention=True "
                "(the memory-efficient path never forms the weights). Received: "
                "flash_attention=True; use flash_attention=None to get the weights."
            )
        v.scores_without_chunks(return_attention_scores, chunk)
        value_mask, key_mask = shared.call_masks(
            cache, cache_update_index, value, key, value_mask, key_mask
        )
        query_mask, value_mask, key_mask = (
            _as_mask(query_mask), _as_mask(value_mask), _as_mask(key_mask)
        )
        query = shared.without_keras_mask(query)
        value = shared.without_keras_mask(value)
        key = value if key is None else shared.without_keras_mask(key)
        if not self._plain_case():
            return self._call_over_axes(
                query, value, key, query_mask, value_mask, key_mask, attention_mask,
                return_attention_scores, training, use_causal_mask, cache,
            )

        q = self._query_dense(query)  # (B, T_q, H, D)
        causal_offset = 0 if use_causal_mask else None
        new_cache = fits = None
        t_q = query.shape[1]
        _check_mask("query_mask", query_mask, [t_q], f"the length of `query`, {t_q}")
        if cache is not None:
            self._check_cache_dims()
            v.rank("cache", cache.shape, 5)
            max_len = cache.shape[2]
            if cache_update_index is None:
                lengths = [max_len]
                what = f"the cache length, {max_len}"
                k, val = cache[:, 0], cache[:, 1]
                new_cache = cache
            else:
                t_new = key.shape[1]
                lengths = [max_len, t_new]
                what = f"the cache length, {max_len}, or the new steps, {t_new}"
                in_graph = shared.check_cache_index(cache_update_index, t_new, max_len)
                idx = ops.cast(cache_update_index, "int32")
                new_cache, k, val, fits = shared.write_cache(
                    cache, idx, in_graph, self._key_dense(key), self._value_dense(value)
                )
                # Cached steps are causal; the window and ALiBi count from `idx` too.
                causal_offset = idx
            _check_mask("value_mask", value_mask, lengths, what)
            _check_mask("key_mask", key_mask, lengths, what)
            if cache_update_index is not None:
                value_mask = shared.cache_value_mask(value_mask, key, cache, idx)
                key_mask = shared.cache_value_mask(key_mask, key, cache, idx)
            k = ops.cast(k, q.dtype)
            val = ops.cast(val, q.dtype)
        else:
            t_k = value.shape[1]
            _check_mask("value_mask", value_mask, [t_k], f"the length of `value`, {t_k}")
            _check_mask("key_mask", key_mask, [t_k], f"the length of `key`, {t_k}")
            k = self._key_dense(key)
            val = self._value_dense(value)
        if key_mask is not None:
            key_mask = ops.cast(key_mask, "bool")
            value_mask = (
                key_mask if value_mask is None
                else ops.logical_and(ops.cast(value_mask, "bool"), key_mask)
            )

        context, scores = _kernel_call.attend(
            q,
            k,
            val,
            query_mask=query_mask,
            value_mask=value_mask,
            attention_mask=attention_mask,
            causal_offset=causal_offset,
            dropout=self.dropout,
            seed=self._seed_generator,
            training=training,
            chunk_size=chunk,
            return_attention_scores=return_attention_scores,
            heads_first=False,
            **shared.kernel_variants(self.sliding_window, self.soft_cap, self._alibi_slopes),
        )
        output = self._project_output(context, query)
        output, scores = shared.nan_unless(fits, output, scores)

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (new_cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _project_output(self, context, query):
        if self._gate_dense is not None:
            context = context * ops.cast(self._gate_dense(query), context.dtype)
        return self._output_dense(context)

    def _call_over_axes(
        self, query, value, key, query_mask, value_mask, key_mask, attention_mask,
        return_attention_scores, training, use_causal_mask, cache,
    ):
        """Attention over `self._axes` of inputs `(batch, *axes, features)`, flattened.

        The attention axes become one sequence axis and the other axes join the
        batch axis, so the kernel (and its masks, dropout and chunked path) is the
        rank-3 one; the scores come back in Keras' layout.
        """
        given = dict(
            query_mask=query_mask, value_mask=value_mask, key_mask=key_mask, cache=cache
        )
        given = {name: val for name, val in given.items() if val is not None}
        if use_causal_mask:
            given["use_causal_mask"] = True
        if self.sliding_window is not None:
            given["sliding_window"] = self.sliding_window
        if self.alibi is not False:  # positions in one sequence, as the window's
            given["alibi"] = self.alibi
        if given:
            name = next(iter(given))
            raise ValueError(
                f"`{name}` needs rank-3 inputs attending over axis 1; with other "
                "`attention_axes` pass an `attention_mask` instead. Received: "
                f"attention_axes={self.attention_axes!r} (resolved to {self._axes} for "
                f"query.shape={tuple(query.shape)}), {name} given"
            )
        q = self._query_dense(query)  # (B, *dims, H, D)
        k = self._key_dense(key)
        val = self._value_dense(value)
        rank = len(q.shape)
        axes = self._axes
        others = [a for a in range(1, rank - 2) if a not in axes]
        perm = [0, *others, *axes, rank - 2, rank - 1]
        q_shape, k_shape = ops.shape(q), ops.shape(k)
        q_len = _prod([q_shape[a] for a in axes])
        k_len = _prod([k_shape[a] for a in axes])

        def flatten(x, length):
            x = ops.transpose(x, perm)
            return ops.reshape(x, (-1, length, self.num_heads, x.shape[-1]))

        mask = None
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            # As Keras: missing axes go in front of the query's attention axes, so the
            # mask's leading axes are the batch and other axes (then the heads).
            while len(mask.shape) < len(others) + 2 + 2 * len(axes):
                mask = ops.expand_dims(mask, -2 * len(axes) - 1)
            heads = mask.shape[len(others) + 1]
            heads = self.num_heads if heads not in (1, None) else 1
            target = (
                q_shape[0], *[q_shape[a] for a in others], heads,
                *[q_shape[a] for a in axes], *[k_shape[a] for a in axes],
            )
            mask = ops.reshape(ops.broadcast_to(mask, target), (-1, heads, q_len, k_len))
        context, scores = _kernel_call.attend(
            flatten(q, q_len),
            flatten(k, k_len),
            flatten(val, k_len),
            query_mask=None,
            value_mask=None,
            attention_mask=mask,
            causal_offset=None,
            dropout=self.dropout,
            seed=self._seed_generator,
            training=training,
            chunk_size=self._chunk,
            return_attention_scores=return_attention_scores,
            heads_first=False,
            soft_cap=self.soft_cap,
        )
        batch_shape = [q_shape[0], *[q_shape[a] for a in others]]
        context = ops.reshape(
            context,
            (*batch_shape, *[q_shape[a] for a in axes], self.num_heads, self.value_dim),
        )
        context = ops.transpose(context, [int(i) for i in np.argsort(perm)])
        output = self._project_output(context, query)
        if not return_attention_scores:
            return output
        scores = ops.reshape(
            scores,
            (*batch_shape, self.num_heads, *[q_shape[a] for a in axes],
             *[k_shape[a] for a in axes]),
        )
        return output, scores

    # ----------------------------------------------------------------- shapes
    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        out_dims = self._output_shape or (query_shape[-1],)
        return (*tuple(query_shape)[:-1], *out_dims)

    def compute_output_spec(
        self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
        attention_mask=None, return_attention_scores=False, training=None,
        use_causal_mask=False, cache=None, cache_update_index=None,
    ):
        scores_shape = None
        if return_attention_scores:
            rank = len(query.shape)
            axes = self._axes if self._axes is not None else self._resolve_axes(rank)
            if axes == (1,) and rank == 3:
                t_k = cache.shape[2] if cache is not None else value.shape[1]
                scores_shape = (query.shape[0], self.num_heads, query.shape[1], t_k)
            else:
                others = [a for a in range(1, rank - 1) if a not in axes]
                scores_shape = (
                    query.shape[0], *[query.shape[a] for a in others], self.num_heads,
                    *[query.shape[a] for a in axes], *[value.shape[a] for a in axes],
                )
        specs = _common.output_specs(
            self, self.compute_output_shape(query.shape, value.shape), scores_shape
        )
        return shared.with_cache_spec(specs, cache)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self._output_shape,
                "attention_axes": self.attention_axes,
                "sliding_window": self.sliding_window,
                "soft_cap": self.soft_cap,
                "alibi": self.alibi,
                "flash_attention": self.flash_attention,
                "chunk_size": self.chunk_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(
                    self.projection_activity_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "use_gate": self.use_gate,
                "seed": self.seed,
            }
        )
        return config
