"""Grouped-query attention (GQA; multi-query attention with one key/value head) with a KV cache."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation as v
from keras_attention.layers import _common, _kernel_call
from keras_attention.layers.multi_head_attention import MultiHeadAttention, _without_keras_mask
from keras_attention.layers.rotary_embedding import RotaryEmbedding


@keras.saving.register_keras_serializable(package="keras_attention")
class GroupQueryAttention(keras.layers.Layer):
    """Grouped-query attention (Ainslie et al. 2023); multi-query attention (Shazeer
    2019) with `num_key_value_heads=1`, multi-head attention with
    `num_key_value_heads == num_query_heads`.

    The query is projected to `H = num_query_heads` heads, key and value to
    `G = num_key_value_heads` heads; query head `u` attends with key/value head
    `u // (H / G)`:
    ```
    Q_u = query W_u^Q,  K_g = key W_g^K,  V_g = value W_g^V
    head_u = softmax(Q_u K_gᵀ / sqrt(head_dim) + mask) V_g,  g = u // (H / G)
    output = concat(head_1, ..., head_H) W^O
    ```
    Keys and values stay at `G` heads in the projections and in the cache, and
    are repeated to `H` heads only for the attention itself: a cache is
    `G / H` the size of a multi-head one. The sub-layers `query`, `key`,
    `value`, `attention_output` (and `gate`) have the kernel shapes of
    `keras.layers.GroupQueryAttention`, so weights copy one-to-one, and the
    constructor and call take its arguments. Every mask (padding, attention,
    causal, sliding window) applies on every path; fully masked query rows
    get zero weights, never NaN.

    Args:
        head_dim: size of each head (query, key and value).
        num_query_heads: number of query heads `H`.
        num_key_value_heads: number of key/value heads `G`; must divide `H`.
        dropout: dropout rate on the attention weights (training only).
        use_bias: whether the projections have biases.
        sliding_window: None, or a positive int `w`: query position `i` attends
            to key positions `j` with `|i - j| < w` only (with
            `use_causal_mask`: the `w` latest keys, as Mistral does).
        flash_attention: None or False (as Keras' default when flash attention
            is not enabled). True is a ValueError: the layer runs this
            project's kernel; `chunk_size` gives its exact memory-efficient path.
        use_gate: multiply the attention output, before the output projection,
            by `sigmoid(query W^G + b^G)` (Qiu et al. 2025, gated attention).
        chunk_size: None, or a positive int: the exact memory-efficient path
            (online softmax over key chunks, no `(T_q, T_k)` weights held; it
            cannot return attention scores).
        rotary_max_wavelength: None (no position embedding), or the base of a
            `RotaryEmbedding` applied to the projected queries and keys (at
            positions `cache_update_index + t` with a cache, else `t`).
        kernel_initializer, bias_initializer: of the projections (each gets its
            own copy).
        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint: of
            the projections.
        activity_regularizer: on the layer's output.
        seed: None or an int, the seed of the dropout on the attention weights.

    `head_dim`, `num_query_heads` and `num_key_value_heads` may be positional
    (Keras' order); the rest are keyword-only.

    Call arguments:
        query: `(batch, T_q, dim)`.
        value: `(batch, T_k, dim_v)`.
        key: `(batch, T_k, dim_k)`; defaults to `value`.
        query_mask, value_mask, key_mask: boolean `(batch, T_q)` / `(batch, T_k)`,
            default to the Keras masks of the inputs. With a cache, `value_mask`
            and `key_mask` are `(batch, max_len)` over the cache positions or
            `(batch, T_q)` over the keys written at `cache_update_index`.
        attention_mask: boolean broadcastable to `(batch, T_q, T_k)`, or
            `(batch, num_query_heads, T_q, T_k)`. True = may attend.
        return_attention_scores: also return the weights.
        training: whether dropout is applied.
        use_causal_mask: query `i` attends to keys `j <= i` only.
        cache: optional `(batch, 2, max_len, num_key_value_heads, head_dim)`
            key/value cache (keys at `[:, 0]`, values at `[:, 1]`).
        cache_update_index: int (scalar tensor ok). The new keys and values are
            written at this index and query `i` attends to cache positions
            `<= cache_update_index + i`. If None, the cache is used as it is
            (e.g. precomputed cross-attention keys/values, see `compute_cache`).

    Returns:
        `(batch, T_q, dim)`; with `return_attention_scores` also the weights
        `(batch, num_query_heads, T_q, T_k)`; with a cache, the updated cache
        comes last: `(output, [scores,] new_cache)`.

    Example:
        >>> gqa = GroupQueryAttention(8, 4, 2)  # head_dim, num_query_heads, num_key_value_heads
        >>> x = keras.random.normal((2, 5, 32))
        >>> tuple(gqa(x, x, use_causal_mask=True).shape)
        (2, 5, 32)
        >>> cache = keras.ops.zeros((2, 2, 5, 2, 8))  # 2 key/value heads, not 4
        >>> y, cache = gqa(x[:, :1], x[:, :1], cache=cache, cache_update_index=0)
        >>> tuple(y.shape), tuple(cache.shape)
        ((2, 1, 32), (2, 2, 5, 2, 8))

    Reference:
        Ainslie et al., "GQA: Training Generalized Multi-Query Transformer
        Models from Multi-Head Checkpoints", EMNLP 2023; Shazeer, "Fast
        Transformer Decoding: One Write-Head is All You Need", arXiv:1911.02150, 2019.
    """

    def __init__(
        self,
        head_dim,
        num_query_heads,
        num_key_value_heads,
        *,
        dropout=0.0,
        use_bias=True,
        sliding_window=None,
        flash_attention=None,
        use_gate=False,
        chunk_size=None,
        rotary_max_wavelength=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.head_dim = v.positive_int("head_dim", head_dim)
        self.num_query_heads = v.positive_int("num_query_heads", num_query_heads)
        self.num_key_value_heads = v.positive_int("num_key_value_heads", num_key_value_heads)
        if num_query_heads % num_key_value_heads:
            raise ValueError(
                "`num_query_heads` must be divisible by `num_key_value_heads`. Received: "
                f"num_query_heads={num_query_heads}, num_key_value_heads={num_key_value_heads}"
            )
        self.num_repeats = num_query_heads // num_key_value_heads
        self.dropout = v.rate("dropout", dropout)
        for name, value in (("use_bias", use_bias), ("use_gate", use_gate)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
        self.use_bias = use_bias
        self.use_gate = use_gate
        self.sliding_window = v.positive_int("sliding_window", sliding_window, allow_none=True)
        if flash_attention not in (None, False):
            raise ValueError(
                "This layer runs its own attention kernel, not a flash-attention one: use "
                "flash_attention=None (or False), and chunk_size=<int> for the exact "
                f"memory-efficient path. Received: flash_attention={flash_attention!r}"
            )
        self.flash_attention = flash_attention
        self.chunk_size = v.positive_int("chunk_size", chunk_size, allow_none=True)
        self.rotary_max_wavelength = (
            None
            if rotary_max_wavelength is None
            else v.positive_float("rotary_max_wavelength", rotary_max_wavelength)
        )
        if self.rotary_max_wavelength is not None and head_dim % 2:
            raise ValueError(
                "Rotary embeddings rotate pairs of features, so `head_dim` must be even "
                f"with `rotary_max_wavelength`. Received: head_dim={head_dim}, "
                f"rotary_max_wavelength={rotary_max_wavelength}"
            )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed = v.seed("seed", seed)
        self.supports_masking = True
        self._seed_generator = None
        self._rotary = None

    # ------------------------------------------------------------------ build
    def _dense(self, name, equation, output_shape, bias_axes, activation=None):
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            activation=activation,
            name=name,
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
        )

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        v.rank("query", query_shape, 3)
        v.rank("value", value_shape, 3)
        v.rank("key", key_shape, 3)
        dim = v.known_last_dim("query", query_shape)
        heads, groups = self.num_query_heads, self.num_key_value_heads
        self._query_dense = self._dense(
            "query", "bqm,muh->bquh", (None, heads, self.head_dim), "uh"
        )
        self._query_dense.build(tuple(query_shape))
        self._key_dense = self._dense("key", "bkm,mvh->bkvh", (None, groups, self.head_dim), "vh")
        self._key_dense.build(tuple(key_shape))
        if self.use_gate:
            self._gate_dense = self._dense(
                "gate", "bqm,muh->bquh", (None, heads, self.head_dim), "uh", "sigmoid"
            )
            self._gate_dense.build(tuple(query_shape))
        self._value_dense = self._dense(
            "value", "bkm,mvh->bkvh", (None, groups, self.head_dim), "vh"
        )
        self._value_dense.build(tuple(value_shape))
        self._output_dense = self._dense("attention_output", "bquh,uhm->bqm", (None, dim), "m")
        self._output_dense.build((None, None, heads, self.head_dim))
        if self.rotary_max_wavelength is not None:
            self._rotary = RotaryEmbedding(
                self.rotary_max_wavelength, dtype=self.dtype_policy, name="rotary_embedding"
            )
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
    def _rotate(self, x, start_index):
        return x if self._rotary is None else self._rotary(x, start_index=start_index)

    def compute_cache(self, value, key=None):
        """Projects a whole `value` (and `key`) sequence into a cache tensor.

        Returns `(batch, 2, T_k, num_key_value_heads, head_dim)`: keys at
        `[:, 0]` (rotated at positions `0..T_k-1` with rotary embeddings),
        values at `[:, 1]`, for `call(..., cache=cache)` without
        `cache_update_index`.
        """
        if not self.built:
            raise ValueError(
                "`compute_cache` needs a built layer: call the layer once (or `build` it) "
                f"before computing a cache. Received: layer {self.name!r} is not built."
            )
        value = _without_keras_mask(value)
        key = value if key is None else _without_keras_mask(key)
        k = self._rotate(self._key_dense(key), 0)
        return ops.stack([k, self._value_dense(value)], axis=1)

    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
        attention_mask=None, return_attention_scores=False, training=None,
        use_causal_mask=False, cache=None, cache_update_index=None,
    ):
        v.scores_without_chunks(return_attention_scores, self.chunk_size)
        if cache_update_index is not None and cache is None:
            raise ValueError(
                "`cache_update_index` needs a `cache`. Received: "
                f"cache_update_index={cache_update_index!r}, cache=None"
            )
        if cache is not None and cache_update_index is None:
            # The cache is used as is: masks Keras filled in from the unused
            # `value`/`key` describe nothing here.
            if value_mask is not None and value_mask is getattr(value, "_keras_mask", None):
                value_mask = None
            if key is not None and key_mask is not None and key_mask is getattr(
                key, "_keras_mask", None
            ):
                key_mask = None
        if key_mask is not None:
            value_mask = (
                key_mask
                if value_mask is None
                else ops.logical_and(ops.cast(value_mask, "bool"), ops.cast(key_mask, "bool"))
            )
        gate_input = query = _without_keras_mask(query)
        value = _without_keras_mask(value)
        key = value if key is None else _without_keras_mask(key)

        start = 0
        causal_offset = 0 if use_causal_mask else None
        new_cache = None
        if cache is not None:
            v.rank("cache", cache.shape, 5)
            if cache_update_index is None:
                k, val = cache[:, 0], cache[:, 1]
                new_cache = cache
            else:
                start = ops.cast(cache_update_index, "int32")
                k_new = self._rotate(self._key_dense(key), start)
                v_new = self._value_dense(value)
                at = [0, start, 0, 0]
                k = ops.slice_update(cache[:, 0], at, ops.cast(k_new, cache.dtype))
                val = ops.slice_update(cache[:, 1], at, ops.cast(v_new, cache.dtype))
                new_cache = ops.stack([k, val], axis=1)
                causal_offset = start
                value_mask = MultiHeadAttention._cache_value_mask(value_mask, key, cache, start)
        else:
            k = self._rotate(self._key_dense(key), 0)
            val = self._value_dense(value)
        q = self._query_dense(query)  # (B, T_q, H, D)
        q = self._rotate(q, start)
        k = ops.cast(k, q.dtype)
        val = ops.cast(val, q.dtype)
        if self.num_repeats > 1:  # G -> H heads, for the attention only
            k = ops.repeat(k, self.num_repeats, axis=2)
            val = ops.repeat(val, self.num_repeats, axis=2)
        if self.sliding_window is not None:
            attention_mask = self._with_window(attention_mask, q, k, start)

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
        if self.use_gate:
            context = context * self._gate_dense(gate_input)
        output = self._output_dense(context)

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (new_cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _with_window(self, attention_mask, q, k, start):
        """`attention_mask` and the band `|i - j| < sliding_window` (query `i` at `start + i`)."""
        rows = ops.arange(ops.shape(q)[1], dtype="int32") + ops.cast(start, "int32")
        cols = ops.arange(ops.shape(k)[1], dtype="int32")
        band = ops.less(ops.abs(rows[:, None] - cols[None, :]), self.sliding_window)[None]
        if attention_mask is None:
            return band
        attention_mask = ops.cast(attention_mask, "bool")
        if len(attention_mask.shape) == 4:
            band = band[:, None]
        return ops.logical_and(attention_mask, band)

    # ----------------------------------------------------------------- shapes
    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return tuple(query_shape)

    def compute_output_spec(
        self, query, value, key=None, return_attention_scores=False, cache=None, **kwargs
    ):
        scores_shape = None
        if return_attention_scores:
            t_k = cache.shape[2] if cache is not None else value.shape[1]
            scores_shape = (query.shape[0], self.num_query_heads, query.shape[1], t_k)
        specs = _common.output_specs(self, tuple(query.shape), scores_shape)
        if cache is None:
            return specs
        specs = specs if isinstance(specs, tuple) else (specs,)
        return (*specs, keras.KerasTensor(cache.shape, dtype=cache.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "head_dim": self.head_dim,
                "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "sliding_window": self.sliding_window,
                "flash_attention": self.flash_attention,
                "use_gate": self.use_gate,
                "chunk_size": self.chunk_size,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "seed": self.seed,
            }
        )
        return config
