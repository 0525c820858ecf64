"""What the Transformer encoder and decoder blocks share (not public).

`TransformerBlockBase` holds their common arguments (and their checks and
config), builds their sub-layers (attention, layer norms, dropouts, the
feed-forward network; each with its own copy of the initializers and its own
seed) and wires a sub-layer into the pre- or post-norm residual connection.
Options: layer or RMS normalisation, grouped-query self-attention, rotary
position embeddings, and the score variants sliding window, logit soft-capping
and ALiBi in the self-attention (issue 19).
"""

from __future__ import annotations

import keras

from keras_attention import _validation
from keras_attention.layers import _attention_shared, _common
from keras_attention.layers.group_query_attention import GroupQueryAttention
from keras_attention.layers.multi_head_attention import MultiHeadAttention

# Offsets of the sub-layers' seeds from the block's `seed` (see `_common.sub_seed`).
SELF_ATTENTION, SELF_ATTENTION_DROPOUT, CROSS_ATTENTION, CROSS_ATTENTION_DROPOUT = 0, 1, 2, 3
FEEDFORWARD_DROPOUT = 4

NORMALIZATIONS = ("layer", "rms")
# The base of the rotary angles with `rotary=True` (Su et al. 2021).
ROTARY_MAX_WAVELENGTH = 10000


def head_dim(name, shape, num_heads, key_dim):
    """`key_dim`, or `dim // num_heads` when it is None (dim must then divide)."""
    _validation.rank(name, shape, 3)
    dim = _validation.known_last_dim(name, shape)
    if key_dim is not None:
        return key_dim
    if dim % num_heads:
        raise ValueError(
            f"With `key_dim=None` the model dimension ({dim}) must be divisible by "
            f"`num_heads`; pass `key_dim` or change `num_heads`. Received: num_heads={num_heads}, "
            f"{name}.shape={tuple(shape)}"
        )
    return dim // num_heads


class TransformerBlockBase(keras.layers.Layer):
    """Arguments, sub-layers and residual wiring of the Transformer blocks.

    Not registered: the public subclasses are. The arguments are documented on
    them; only `num_heads` is positional.
    """

    def __init__(
        self,
        num_heads,
        *,
        intermediate_dim,
        key_dim=None,
        dropout=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        normalization="layer",
        num_key_value_heads=None,
        rotary=False,
        sliding_window=None,
        soft_cap=None,
        alibi=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = _validation.positive_int("num_heads", num_heads)
        self.intermediate_dim = _validation.positive_int("intermediate_dim", intermediate_dim)
        self.key_dim = _validation.positive_int("key_dim", key_dim, allow_none=True)
        self.dropout = _validation.rate("dropout", dropout)
        self.activation = keras.activations.get(activation)
        self.norm_first = bool(norm_first)
        self.layer_norm_epsilon = _validation.positive_float(
            "layer_norm_epsilon", layer_norm_epsilon
        )
        self.normalization = _validation.one_of("normalization", normalization, NORMALIZATIONS)
        self.num_key_value_heads = _validation.positive_int(
            "num_key_value_heads", num_key_value_heads, allow_none=True
        )
        if num_key_value_heads is not None and num_heads % num_key_value_heads:
            raise ValueError(
                "`num_heads` must be divisible by `num_key_value_heads`. Received: "
                f"num_heads={num_heads}, num_key_value_heads={num_key_value_heads}"
            )
        if not isinstance(rotary, bool):
            raise ValueError(f"`rotary` must be a bool. Received: rotary={rotary!r}")
        self.rotary = rotary
        self.sliding_window = _validation.positive_int(
            "sliding_window", sliding_window, allow_none=True
        )
        self.soft_cap = _attention_shared.check_soft_cap(soft_cap)
        self.alibi = _attention_shared.check_alibi(alibi, self.num_heads)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = _validation.seed("seed", seed)
        self.supports_masking = True

    # ----------------------------------------------------------- sub-layers
    def _initializers(self):
        return dict(
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
        )

    @property
    def self_attention_heads(self):
        """Key/value heads of the self-attention (and of its cache)."""
        return self.num_key_value_heads or self.num_heads

    def _attention_options(self, self_attention):
        """Keyword arguments of the attention sub-layers beyond the shared ones.

        The one place for options of the attention kernel: `self_attention` is
        True for the self-attention, False for the cross-attention. The score
        variants go to the self-attention only: a window and ALiBi compare
        decoder with encoder positions in the cross-attention, which mean
        nothing there, and the soft cap stays with them (Gemma 2 caps its
        decoder-only self-attention). At their defaults nothing is passed, so
        the sub-layers are the ones of a block without the options.
        """
        if not self_attention:
            return {}
        options = dict(sliding_window=self.sliding_window, soft_cap=self.soft_cap, alibi=self.alibi)
        defaults = dict(sliding_window=None, soft_cap=None, alibi=False)
        return {name: val for name, val in options.items() if val != defaults[name]}

    def _attention(self, name, key_dim, seed_offset, self_attention=False, **kwargs):
        """The block's `MultiHeadAttention`; the self-attention is a
        `GroupQueryAttention` with `num_key_value_heads` or `rotary`."""
        common = dict(
            dropout=self.dropout,
            seed=_common.sub_seed(self.seed, seed_offset),
            dtype=self.dtype_policy,
            name=name,
            **self._initializers(),
            **self._attention_options(self_attention),
            **kwargs,
        )
        if self_attention and (self.num_key_value_heads is not None or self.rotary):
            return GroupQueryAttention(
                key_dim,
                self.num_heads,
                self.self_attention_heads,
                rotary_max_wavelength=ROTARY_MAX_WAVELENGTH if self.rotary else None,
                **common,
            )
        return MultiHeadAttention(self.num_heads, key_dim, **common)

    def _layer_norm(self, name, shape):
        """`LayerNormalization`, or `RMSNormalization` with `normalization="rms"`."""
        if self.normalization == "rms":
            norm = keras.layers.RMSNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
            )
        else:
            norm = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
            )
        norm.build(shape)
        return norm

    def _dropout(self, name, seed_offset):
        return keras.layers.Dropout(
            self.dropout,
            seed=_common.sub_seed(self.seed, seed_offset),
            dtype=self.dtype_policy,
            name=name,
        )

    def _build_feedforward(self, shape):
        """The position-wise feed-forward network on `(batch, T, dim)` inputs."""
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="feedforward_intermediate_dense",
            **self._initializers(),
        )
        self.feedforward_intermediate_dense.build(shape)
        self.feedforward_output_dense = keras.layers.Dense(
            shape[-1], dtype=self.dtype_policy, name="feedforward_output_dense",
            **self._initializers(),
        )
        self.feedforward_output_dense.build(tuple(shape[:-1]) + (self.intermediate_dim,))
        self.feedforward_layer_norm = self._layer_norm("feedforward_layer_norm", shape)
        self.feedforward_dropout = self._dropout("feedforward_dropout", FEEDFORWARD_DROPOUT)

    # ----------------------------------------------------------------- call
    def _residual(self, x, norm, dropout, sublayer, training):
        """`sublayer` inside the residual connection, with `norm` before it (pre-norm)
        or after the sum (post-norm): `(new x, extras)`.

        `sublayer(x)` returns the branch output, or a tuple `(output, *extras)`
        (attention scores, caches), whose extras come back as a tuple.
        """
        residual = x
        if self.norm_first:
            x = norm(x)
        out = sublayer(x)
        out, extras = (out[0], tuple(out[1:])) if isinstance(out, (tuple, list)) else (out, ())
        x = residual + dropout(out, training=training)
        if not self.norm_first:
            x = norm(x)
        return x, extras

    def _self_attention_sublayer(self, x, padding_mask, training, **kwargs):
        """Self-attention in its residual connection: `(new x, extras)`.

        `padding_mask` masks steps as queries and as keys; `kwargs` go to the
        `self_attention` layer.
        """

        def attend(h):
            return self.self_attention(
                h, h, query_mask=padding_mask, value_mask=padding_mask, training=training, **kwargs
            )

        return self._residual(
            x, self.self_attention_layer_norm, self.self_attention_dropout, attend, training
        )

    def _feedforward(self, x, training):
        def network(h):
            return self.feedforward_output_dense(self.feedforward_intermediate_dense(h))

        x, _ = self._residual(
            x, self.feedforward_layer_norm, self.feedforward_dropout, network, training
        )
        return x

    # --------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalization": self.normalization,
                "num_key_value_heads": self.num_key_value_heads,
                "rotary": self.rotary,
                "sliding_window": self.sliding_window,
                "soft_cap": self.soft_cap,
                "alibi": self.alibi,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
