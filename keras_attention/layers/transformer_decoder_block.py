"""Transformer decoder block (Vaswani et al. 2017) with cached incremental decoding."""

from __future__ import annotations

import keras

from keras_attention import _validation
from keras_attention.layers import _transformer


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerDecoderBlock(_transformer.TransformerBlockBase):
    """One Transformer decoder layer: causal self-attention, cross-attention, feed-forward.

    Post-norm (`norm_first=False`, the original paper), with `e` the encoder output:

        x = LayerNorm(x + Dropout(SelfAttention(x, x, causal)))
        x = LayerNorm(x + Dropout(CrossAttention(x, e)))
        y = LayerNorm(x + Dropout(W₂ act(W₁ x + b₁) + b₂))

    Pre-norm (`norm_first=True`) normalises the input of each sub-layer instead:
    `x = x + Dropout(SubLayer(LayerNorm(x)))`. A block first called without
    `encoder_sequence` (and without `cross_attention_cache`) is decoder-only
    (GPT-style) and has no cross-attention.

    Incremental decoding: pass `self_attention_cache` `(batch, 2, max_len,
    num_key_value_heads or num_heads, key_dim)` (zeros to start) and
    `self_attention_cache_update_index` (the position of the first of the
    `T_dec` new steps, int or int scalar tensor). The new steps' keys and
    values are written into the cache and attend to every cached position
    before them and causally among themselves.
    The cross-attention cache (keys and values of the encoder output, see
    `MultiHeadAttention.compute_cache`) is computed from `encoder_sequence` on
    the first cached call when not given, and is returned for reuse; it can
    also be passed without a self-attention cache, to skip projecting the
    encoder output again.

    Args:
        num_heads: number of attention heads (self and cross); the only
            positional argument.
        intermediate_dim: hidden width of the feed-forward network.
        key_dim: size of each head; defaults to `dim // num_heads`, which
            requires `dim` to be divisible by `num_heads`.
        dropout: dropout rate of the attention weights and of the residual
            branches.
        activation: activation of the feed-forward hidden layer.
        norm_first: pre-norm (True) or post-norm (False).
        layer_norm_epsilon: epsilon of the layer normalisations.
        normalization: `"layer"` (LayerNorm, the default) or `"rms"` (RMSNorm,
            Zhang & Sennrich 2019: `x / sqrt(mean(x²) + ε) * scale`, as in
            T5 and Llama).
        num_key_value_heads: None (multi-head self-attention), or the number
            of key/value heads of a grouped-query self-attention
            (`GroupQueryAttention`; 1 = multi-query); it must divide `num_heads`.
        rotary: apply rotary position embeddings (`RotaryEmbedding`, base
            10000) to the self-attention's queries and keys (the
            self-attention is then a `GroupQueryAttention`); with a cache the new
            steps are rotated at their positions from
            `self_attention_cache_update_index`. The cross-attention is
            always multi-head, without rotary embeddings.
        sliding_window, soft_cap, alibi: the self-attention's sliding window
            (`|i - j| < w`; with the causal mask, Mistral's window of the `w`
            latest steps), logit soft cap (Gemma 2) and ALiBi biases (True, or
            a list of `num_heads` slopes), as in `TransformerEncoderBlock`.
            With a cache they count positions from
            `self_attention_cache_update_index`. The cross-attention takes none
            of them (decoder and encoder positions do not compare); at their
            defaults the block is the one without these options.
        kernel_initializer, bias_initializer: of the attention projections and
            the feed-forward layers (each sub-layer gets its own copy).
        seed: None or an int: the dropouts draw from seeds derived from it.

    Call arguments:
        decoder_sequence: `(batch, T_dec, dim)`.
        encoder_sequence: `(batch, T_enc, dim_enc)` or None.
        decoder_padding_mask: boolean `(batch, T_dec)`, True for real steps;
            defaults to the Keras mask of `decoder_sequence`. It masks padded
            steps as queries and as keys (with a cache: the keys written in
            this call; earlier cache positions stay visible).
        encoder_padding_mask: boolean `(batch, T_enc)`, True for real steps;
            defaults to the Keras mask of `encoder_sequence`.
        use_causal_mask: forbid attention to later decoder steps (ignored with
            a self-attention cache, which is always causal).
        return_attention_scores: also return the self- and cross-attention
            weights.
        self_attention_cache: `(batch, 2, max_len, kv_heads, key_dim)` or None,
            `kv_heads` being `num_key_value_heads` or `num_heads`.
        self_attention_cache_update_index: int or int scalar tensor.
        cross_attention_cache: `(batch, 2, T_enc, num_heads, key_dim)` or None.
        training: whether dropout is active.

    Returns:
        `output` `(batch, T_dec, dim)`; with `return_attention_scores`, the
        tuple `(output, self_scores (batch, num_heads, T_dec, T_keys),
        cross_scores (batch, num_heads, T_dec, T_enc))` where `T_keys` is
        `T_dec`, or `max_len` with a cache. With `self_attention_cache`, the
        tuple ends with the updated `self_attention_cache, cross_attention_cache`.
        A decoder-only block leaves out `cross_scores` and
        `cross_attention_cache` (as keras-hub's `TransformerDecoder` does).

    Example:
        >>> block = TransformerDecoderBlock(2, intermediate_dim=32)
        >>> dec, enc = keras.random.normal((2, 5, 16)), keras.random.normal((2, 7, 16))
        >>> tuple(block(dec, enc).shape)
        (2, 5, 16)
        >>> cache = keras.ops.zeros((2, 2, 5, 2, 8))
        >>> y, cache, cross = block(dec[:, :1], enc, self_attention_cache=cache,
        ...                         self_attention_cache_update_index=0)
        >>> gpt = TransformerDecoderBlock(4, intermediate_dim=32, num_key_value_heads=1,
        ...                               rotary=True, normalization="rms")
        >>> cache = keras.ops.zeros((2, 2, 5, 1, 4))  # one key/value head
        >>> y, cache = gpt(dec[:, :1], self_attention_cache=cache,
        ...                self_attention_cache_update_index=0)
        >>> tuple(y.shape), tuple(cache.shape)
        ((2, 1, 16), (2, 2, 5, 1, 4))
        >>> banded = TransformerDecoderBlock(  # causal window of 3 steps, capped, ALiBi
        ...     4, intermediate_dim=32, sliding_window=3, soft_cap=50.0, alibi=True)
        >>> tuple(banded(dec).shape)
        (2, 5, 16)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Zhang &
        Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019; Ainslie
        et al., "GQA", EMNLP 2023; Su et al., "RoFormer", arXiv:2104.09864, 2021;
        Jiang et al., "Mistral 7B", 2023 (causal window); Gemma Team, "Gemma 2",
        2024 (soft-capping); Press et al., "Train Short, Test Long", ICLR 2022 (ALiBi).
    """

    def build(
        self,
        decoder_sequence_shape,
        encoder_sequence_shape=None,
        cross_attention_cache_shape=None,
    ):
        head_dim = _transformer.head_dim(
            "decoder_sequence", decoder_sequence_shape, self.num_heads, self.key_dim
        )
        self._head_dim = head_dim
        shape = decoder_sequence_shape
        self.self_attention = self._attention(
            "self_attention", head_dim, _transformer.SELF_ATTENTION, self_attention=True
        )
        self.self_attention.build(shape, shape)
        self.self_attention_layer_norm = self._layer_norm("self_attention_layer_norm", shape)
        self.self_attention_dropout = self._dropout(
            "self_attention_dropout", _transformer.SELF_ATTENTION_DROPOUT
        )

        self.cross_attention = None
        if encoder_sequence_shape is not None or cross_attention_cache_shape is not None:
            if encoder_sequence_shape is not None:
                _validation.rank("encoder_sequence", encoder_sequence_shape, 3)
                encoder_dim = encoder_sequence_shape[-1]
            else:
                # Built from a cache only: assume the encoder has the decoder's width.
                encoder_dim = shape[-1]
            self.cross_attention = self._attention(
                "cross_attention", head_dim, _transformer.CROSS_ATTENTION
            )
            self.cross_attention.build(shape, (None, None, encoder_dim))
            self.cross_attention_layer_norm = self._layer_norm("cross_attention_layer_norm", shape)
            self.cross_attention_dropout = self._dropout(
                "cross_attention_dropout", _transformer.CROSS_ATTENTION_DROPOUT
            )
        self._build_feedforward(shape)

    def call(
        self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
        encoder_padding_mask=None, use_causal_mask=True, return_attention_scores=False,
        self_attention_cache=None, self_attention_cache_update_index=None,
        cross_attention_cache=None, training=None, mask=None, decoder_sequence_mask=None,
        encoder_sequence_mask=None,
    ):
        has_cross = self.cross_attention is not None
        if not has_cross and (encoder_sequence is not None or cross_attention_cache is not None):
            raise ValueError(
                "This block was built without cross-attention (first called without "
                "`encoder_sequence`), so it cannot take `encoder_sequence` or "
                "`cross_attention_cache`."
            )
        if has_cross and encoder_sequence is None and cross_attention_cache is None:
            raise ValueError(
                "This block has cross-attention: pass `encoder_sequence` or "
                "`cross_attention_cache`. Received: encoder_sequence=None"
            )
        if self_attention_cache is not None and self_attention_cache_update_index is None:
            raise ValueError(
                "`self_attention_cache_update_index` is required with `self_attention_cache`. "
                "Received: self_attention_cache_update_index=None"
            )
        # Keras fills `mask` (one tensor argument) or `<argument>_mask` (several)
        # with the Keras masks of the inputs.
        if decoder_padding_mask is None:
            decoder_padding_mask = (
                decoder_sequence_mask if decoder_sequence_mask is not None else mask
            )
        if encoder_padding_mask is None:
            encoder_padding_mask = encoder_sequence_mask
        use_cache = self_attention_cache is not None

        # With a cache, the attention is causal whatever `use_causal_mask` says.
        x, extras = self._self_attention_sublayer(
            decoder_sequence,
            decoder_padding_mask,
            training,
            use_causal_mask=use_causal_mask,
            return_attention_scores=True,
            cache=self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
        )
        scores, caches = extras[:1], extras[1:]  # (self scores,), (self cache,) or ()
        if has_cross:
            if use_cache and cross_attention_cache is None:
                cross_attention_cache = self.cross_attention.compute_cache(encoder_sequence)

            def cross_attention(x):
                return self.cross_attention(
                    x,
                    # Ignored next to a cache; a copy has no Keras mask to pick up.
                    keras.ops.copy(x) if encoder_sequence is None else encoder_sequence,
                    query_mask=decoder_padding_mask,
                    value_mask=encoder_padding_mask,
                    return_attention_scores=True,
                    cache=cross_attention_cache,
                    training=training,
                )

            x, extras = self._residual(
                x,
                self.cross_attention_layer_norm,
                self.cross_attention_dropout,
                cross_attention,
                training,
            )
            scores, caches = scores + extras[:1], caches + extras[1:]

        x = self._feedforward(x, training)
        outputs = (x,)
        if return_attention_scores:
            outputs += scores
        if use_cache:
            outputs += caches
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_mask(self, decoder_sequence, mask=None):
        return mask

    def compute_output_shape(self, decoder_sequence_shape):
        return tuple(decoder_sequence_shape)

    def compute_output_spec(
        self,
        decoder_sequence,
        encoder_sequence=None,
        return_attention_scores=False,
        self_attention_cache=None,
        cross_attention_cache=None,
        **kwargs,
    ):
        dtype = self.compute_dtype
        shape = decoder_sequence.shape
        batch, t_dec = shape[0], shape[1]
        has_cross = self.cross_attention is not None
        if cross_attention_cache is not None:
            t_enc = cross_attention_cache.shape[2]
        elif encoder_sequence is not None:
            t_enc = encoder_sequence.shape[1]
        outputs = (keras.KerasTensor(shape, dtype=dtype),)
        if return_attention_scores:
            t_keys = t_dec if self_attention_cache is None else self_attention_cache.shape[2]
            outputs += (keras.KerasTensor((batch, self.num_heads, t_dec, t_keys), dtype=dtype),)
            if has_cross:
                outputs += (keras.KerasTensor((batch, self.num_heads, t_dec, t_enc), dtype=dtype),)
        if self_attention_cache is not None:
            cache_dtype = self_attention_cache.dtype
            outputs += (keras.KerasTensor(self_attention_cache.shape, dtype=cache_dtype),)
            if has_cross:
                cross_shape = (batch, 2, t_enc, self.num_heads, self._head_dim)
                outputs += (keras.KerasTensor(cross_shape, dtype=cache_dtype),)
        return outputs[0] if len(outputs) == 1 else outputs
