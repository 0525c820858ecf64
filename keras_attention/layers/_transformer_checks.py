"""Argument checks shared by the Transformer blocks."""

from __future__ import annotations

from keras_attention import _validation


def check_block_args(num_heads, intermediate_dim, key_dim, dropout, layer_norm_epsilon):
    _validation.positive_int("num_heads", num_heads)
    _validation.positive_int("intermediate_dim", intermediate_dim)
    _validation.positive_int("key_dim", key_dim, allow_none=True)
    _validation.rate("dropout", dropout)
    _validation.positive_float("layer_norm_epsilon", layer_norm_epsilon)


def head_dim(name, shape, num_heads, key_dim):
    """`key_dim`, or `dim // num_heads` when it is None (dim must then divide)."""
    _validation.rank(name, shape, 3)
    dim = shape[-1]
    if dim is None:
        raise ValueError(
            f"The last dimension of `{name}` must be known. Received: {name}.shape={tuple(shape)}"
        )
    if key_dim is not None:
        return key_dim
    if dim % num_heads:
        raise ValueError(
            f"With `key_dim=None` the model dimension ({dim}) must be divisible by "
            f"`num_heads`; pass `key_dim` or change `num_heads`. Received: num_heads={num_heads}, "
            f"{name}.shape={tuple(shape)}"
        )
    return dim // num_heads
