"""Grouped-query attention (GQA; multi-query attention with one key/value head) with a KV cache."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation as v
from keras_attention.layers import _attention_shared as shared
from keras_attention.layers import _common, _kernel_call
from keras_attention.layers.rotary_embedding import RotaryEmbedding


@keras.saving.register_keras_serializable(package="keras_attention")
class GroupQueryAttention(shared.Projections, keras.layers.Layer):
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
            `use_causal_mask`: the `w` latest keys, as Mistral does). It is the
            kernel's band `window=(w - 1, w - 1)`, masked per tile (no
            `(T_q, T_k)` band is built; with `chunk_size` the tiles outside the
            band are skipped, so the cost grows linearly in T).
        soft_cap: None, or a positive float `c`: the scaled scores `s` become
            `c · tanh(s / c)` (Gemma 2's attention-logit soft-capping).
        alibi: False, True, or a list of `num_query_heads` floats: ALiBi (Press
            et al. 2022) adds `-slope_u · |i - j|` to query head `u`'s scores
            (after the soft cap); True takes
            `keras_attention.ops.alibi_slopes(num_query_heads)`. Positions count
            from `cache_update_index` with a cache, as the window's do.
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
            As in `MultiHeadAttention`, an index with `index < 0` or
            `index + T_q > max_len` is a ValueError when it is known at call
            time; a symbolic one leaves the cache unchanged and makes the
            output (and scores) NaN.

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
        Transformer Decoding: One Write-Head is All You Need", arXiv:1911.02150, 2019;
        Gemma Team, "Gemma 2", 2024 (soft-capping); Press et al., "Train Short,
        Test Long", ICLR 2022 (ALiBi).
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
        soft_cap=None,
        alibi=False,
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
        self.soft_cap = shared.check_soft_cap(soft_cap)
        self.alibi = shared.check_alibi(alibi, self.num_query_heads, "num_query_heads")
        self._alibi_slopes = shared.alibi_slopes(self.alibi, self.num_query_heads)
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
        value, key = self._cache_inputs(value, key)
        k = self._rotate(self._key_dense(key), 0)
        return ops.stack([k, self._value_dense(value)], axis=1)

    def call(
        self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
        attention_mask=None, return_attention_scores=False, training=None,
        use_causal_mask=False, cache=None, cache_update_index=None,
    ):
        v.scores_without_chunks(return_attention_scores, self.chunk_size)
        value_mask, key_mask = shared.call_masks(
            cache, cache_update_index, value, key, value_mask, key_mask
        )
        if key_mask is not None:
            value_mask = (
                key_mask
                if value_mask is None
                else ops.logical_and(ops.cast(value_mask, "bool"), ops.cast(key_mask, "bool"))
            )
        gate_input = query = shared.without_keras_mask(query)
        value = shared.without_keras_mask(value)
        key = value if key is None else shared.without_keras_mask(key)

        start = 0
        causal_offset = 0 if use_causal_mask else None
        new_cache = fits = None
        if cache is not None:
            v.rank("cache", cache.shape, 5)
            if cache_update_index is None:
                k, val = cache[:, 0], cache[:, 1]
                new_cache = cache
            else:
                in_graph = shared.check_cache_index(
                    cache_update_index, key.shape[1], cache.shape[2]
                )
                start = ops.cast(cache_update_index, "int32")
                k_new = self._rotate(self._key_dense(key), start)
                new_cache, k, val, fits = shared.write_cache(
                    cache, start, in_graph, k_new, self._value_dense(value)
                )
                # Cached steps are causal; the window and ALiBi count from `start` too.
                causal_offset = start
                value_mask = shared.cache_value_mask(value_mask, key, cache, start)
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
            **shared.kernel_variants(self.sliding_window, self.soft_cap, self._alibi_slopes),
        )
        if self.use_gate:
            context = context * self._gate_dense(gate_input)
        output = self._output_dense(context)
        output, scores = shared.nan_unless(fits, output, scores)

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (new_cache,)
        return outputs[0] if len(outputs) == 1 else outputs

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
        return shared.with_cache_spec(specs, cache)

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
                "soft_cap": self.soft_cap,
                "alibi": self.alibi,
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
