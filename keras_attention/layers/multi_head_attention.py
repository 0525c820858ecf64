"""Multi-head attention with masks, returned weights, a memory-efficient path and a KV cache."""

from __future__ import annotations

import string

import keras
from keras import ops

from keras_attention import _validation as v
from keras_attention.layers import _common, _kernel_call


def _proj_equation(free: int, bound: int, out: int):
    """Einsum equation, bias axes for a projection `(free..., bound...) -> (free..., out...)`."""
    letters = string.ascii_lowercase
    f = letters[:free]
    bd = letters[free : free + bound]
    o = letters[free + bound : free + bound + out]
    return f"{f}{bd},{bd}{o}->{f}{o}", o


def _without_keras_mask(x):
    """A copy of `x` without the Keras mask, so the projections do not warn about it."""
    if x is not None and getattr(x, "_keras_mask", None) is not None:
        return ops.copy(x)
    return x


@keras.saving.register_keras_serializable(package="keras_attention")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017).

    Each head `i` projects the inputs and attends:
    ```
    Q_i = query W_i^Q,  K_i = key W_i^K,  V_i = value W_i^V
    head_i = softmax(Q_i K_iᵀ / sqrt(key_dim) + mask) V_i
    output = concat(head_1, ..., head_h) W^O
    ```
    The projections are `EinsumDense` sub-layers named `query`, `key`, `value`
    and `attention_output` with the kernel shapes of `keras.layers.MultiHeadAttention`,
    so weights copy one-to-one between the two. Every mask (padding, attention,
    causal) is applied on every path: with or without dropout, returned scores,
    the memory-efficient path or the cache (the causal mask is never dropped,
    cf. keras#23038). Fully masked rows give zero weights, never NaN.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value; defaults to `key_dim`.
        dropout: dropout rate on the attention weights (training only).
        use_bias: whether the projections have biases.
        output_shape: last dimension(s) of the output (int or tuple); defaults to
            the query's last dimension.
        chunk_size: None, or a positive int to use the exact memory-efficient
            path (online softmax over key chunks, no `(T_q, T_k)` tensor held in
            the forward or backward pass; dropout still applies). It cannot
            return attention scores.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer:
            for the four projections (each gets its own copy of the initializers).
        seed: None or an int, the seed of the dropout on the attention weights.

    `num_heads` and `key_dim` are the only positional arguments.

    Call arguments:
        query: `(batch, T_q, dim_q)`.
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim_k)`; defaults to `value`.
        query_mask: boolean `(batch, T_q)`; defaults to the Keras mask of `query`.
            Masked query rows get zero weights.
        value_mask: boolean `(batch, T_k)`; defaults to the Keras mask of `value`.
            With a cache: `(batch, max_len)` over cache positions, or
            `(batch, T_q)` over the keys written at `cache_update_index`.
        attention_mask: boolean broadcastable to `(batch, T_q, T_k)` (rank 2 or 3),
            or `(batch, num_heads, T_q, T_k)`. True = may attend.
        use_causal_mask: query `i` attends to keys `j <= i` only.
        return_attention_scores: also return the weights.
        training: whether dropout is applied.
        cache: optional `(batch, 2, max_len, num_heads, key_dim)` key/value cache
            (keys at `[:, 0]`, values at `[:, 1]`; needs `value_dim == key_dim`).
        cache_update_index: int (scalar tensor ok). With a cache, the keys and
            values of `key`/`value` for the `T_q` new steps are written at this
            index and query `i` attends to cache positions
            `<= cache_update_index + i` (so `< cache_update_index + T_q`). If None,
            the cache is used as it is (precomputed cross-attention keys/values,
            `key`/`value` are ignored).

    Returns:
        `(batch, T_q, dim_q)` (or `(batch, T_q, *output_shape)`); with
        `return_attention_scores` also the weights `(batch, num_heads, T_q, T_k)`;
        with a cache, the updated cache `(batch, 2, max_len, num_heads, key_dim)`
        comes last: `(output, [scores,] new_cache)`.

    Example:
    ```python
    mha = MultiHeadAttention(2, 8)  # num_heads, key_dim; the rest by keyword
    x = keras.random.normal((2, 5, 16))
    y, scores = mha(x, x, use_causal_mask=True, return_attention_scores=True)
    # Incremental decoding with a cache:
    cache = keras.ops.zeros((2, 2, 5, 2, 8))
    for t in range(5):
        y_t, cache = mha(x[:, t : t + 1], x[:, t : t + 1], cache=cache,
                         cache_update_index=t)
    ```

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
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
        chunk_size=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
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
        self.chunk_size = v.positive_int("chunk_size", chunk_size, allow_none=True)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.seed = v.seed("seed", seed)
        self.supports_masking = True
        self._seed_generator = None

    # ------------------------------------------------------------------ build
    def _sublayer_kwargs(self):
        return dict(
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            dtype=self.dtype_policy,
        )

    def _projection(self, name, heads_dim):
        equation, bias_axes = _proj_equation(2, 1, 2)
        return keras.layers.EinsumDense(
            equation,
            output_shape=(None, self.num_heads, heads_dim),
            bias_axes=bias_axes if self.use_bias else None,
            name=name,
            **self._sublayer_kwargs(),
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        v.rank("query", query_shape, 3)
        v.rank("value", value_shape, 3)
        v.rank("key", key_shape, 3)
        self._query_dense = self._projection("query", self.key_dim)
        self._query_dense.build(tuple(query_shape))
        self._key_dense = self._projection("key", self.key_dim)
        self._key_dense.build(tuple(key_shape))
        self._value_dense = self._projection("value", self.value_dim)
        self._value_dense.build(tuple(value_shape))
        out_dims = self._output_shape or (query_shape[-1],)
        equation, bias_axes = _proj_equation(2, 2, len(out_dims))
        self._output_dense = keras.layers.EinsumDense(
            equation,
            output_shape=(None, *out_dims),
            bias_axes=bias_axes if self.use_bias else None,
            name="attention_output",
            **self._sublayer_kwargs(),
        )
        self._output_dense.build((query_shape[0], query_shape[1], self.num_heads, self.value_dim))
        if self.dropout > 0:
            self._seed_generator = keras.random.SeedGenerator(self.seed, name="dropout_seed")
        self.built = True

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
        if not self.built:
            raise ValueError(
                "`compute_cache` needs a built layer: call the layer once (or `build` it) "
                f"before computing a cache. Received: layer {self.name!r} is not built."
            )
        self._check_cache_dims()
        value = _without_keras_mask(value)
        key = value if key is None else _without_keras_mask(key)
        k = self._key_dense(key)
        val = self._value_dense(value)
        return ops.stack([k, val], axis=1)

    def _check_cache_dims(self):
        if self.value_dim != self.key_dim:
            raise ValueError(
                "A key/value cache stores keys and values in one tensor and needs "
                f"value_dim == key_dim. Received: key_dim={self.key_dim}, "
                f"value_dim={self.value_dim}"
            )

    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, attention_mask=None,
        use_causal_mask=False, return_attention_scores=False, training=None, cache=None,
        cache_update_index=None,
    ):
        v.scores_without_chunks(return_attention_scores, self.chunk_size)
        if cache_update_index is not None and cache is None:
            raise ValueError(
                "`cache_update_index` needs a `cache`. Received: "
                f"cache_update_index={cache_update_index!r}, cache=None"
            )
        if (
            cache is not None
            and cache_update_index is None
            and value_mask is not None
            and value_mask is getattr(value, "_keras_mask", None)
        ):
            # The cache is used as is, so `value` is not attended to: a mask Keras
            # filled in from it describes nothing here (e.g. a decoder step's mask).
            value_mask = None
        query = _without_keras_mask(query)
        value = _without_keras_mask(value)
        key = value if key is None else _without_keras_mask(key)

        q = self._query_dense(query)  # (B, T_q, H, D)
        causal_offset = 0 if use_causal_mask else None
        new_cache = None
        if cache is not None:
            self._check_cache_dims()
            v.rank("cache", cache.shape, 5)
            if cache_update_index is None:
                k, val = cache[:, 0], cache[:, 1]
                new_cache = cache
            else:
                idx = ops.cast(cache_update_index, "int32")
                k_new = ops.cast(self._key_dense(key), cache.dtype)
                v_new = ops.cast(self._value_dense(value), cache.dtype)
                start = [0, idx, 0, 0]
                k = ops.slice_update(cache[:, 0], start, k_new)
                val = ops.slice_update(cache[:, 1], start, v_new)
                new_cache = ops.stack([k, val], axis=1)
                causal_offset = idx
                value_mask = self._cache_value_mask(value_mask, query, cache, idx)
            k = ops.cast(k, q.dtype)
            val = ops.cast(val, q.dtype)
        else:
            k = self._key_dense(key)
            val = self._value_dense(value)

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
            chunk_size=self.chunk_size,
            return_attention_scores=return_attention_scores,
            heads_first=False,
        )
        output = self._output_dense(context)

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (new_cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    @staticmethod
    def _cache_value_mask(value_mask, query, cache, idx):
        """Maps a value mask onto the cache positions when keys are written at `idx`."""
        if value_mask is None:
            return None
        max_len = cache.shape[2]
        t_new = query.shape[1]
        length = value_mask.shape[-1]
        if length is not None and length == t_new and length != max_len:
            full = ops.ones((ops.shape(cache)[0], ops.shape(cache)[2]), dtype="int32")
            update = ops.cast(value_mask, "int32")
            return ops.cast(ops.slice_update(full, [0, idx], update), "bool")
        return value_mask

    # ----------------------------------------------------------------- shapes
    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        out_dims = self._output_shape or (query_shape[-1],)
        return (*tuple(query_shape)[:-1], *out_dims)

    def compute_output_spec(
        self, query, value, key=None, return_attention_scores=False, cache=None, **kwargs
    ):
        scores_shape = None
        if return_attention_scores:
            t_k = cache.shape[2] if cache is not None else value.shape[1]
            scores_shape = (query.shape[0], self.num_heads, query.shape[1], t_k)
        specs = _common.output_specs(
            self, self.compute_output_shape(query.shape, value.shape), scores_shape
        )
        if cache is None:
            return specs
        specs = specs if isinstance(specs, tuple) else (specs,)
        return (*specs, keras.KerasTensor(cache.shape, dtype=cache.dtype))

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
                "chunk_size": self.chunk_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "seed": self.seed,
            }
        )
        return config
