"""Constructor arguments: only the first one or two are positional, so an argument
order from elsewhere (keras-hub's `TransformerEncoder(intermediate_dim, num_heads)`,
`keras.layers.Attention(use_scale)`...) fails loudly instead of meaning something else."""

import pytest

from keras_attention import layers
from keras_attention.layers._residual_unit import ResidualUnit

# (layer, the positional arguments it takes, one more positional argument)
POSITIONAL = [
    (layers.AttentionPooling, (4,), 2),
    (layers.BahdanauAttention, (4,), True),
    (layers.CBAM, (8,), 7),
    (layers.ChannelAttention, (8,), 2),
    (layers.DotProductAttention, ("general",), True),
    (layers.GatedAttentionPooling, (4,), False),
    (layers.GroupQueryAttention, (8, 4, 2), 0.1),
    (layers.LocalAttention, (2,), "local_m"),
    (layers.MultiHeadAttention, (2, 8), 8),
    (layers.NonLocalBlock, (4,), "dot"),
    (layers.PatchEmbedding, (4,), 16),
    (layers.PointerGenerator, (), 1e-9),
    (layers.PositionEmbedding, (16,), "zeros"),
    (layers.ResidualAttentionModule, (8,), 1),
    (ResidualUnit, (8,), 2),
    (layers.RotaryEmbedding, (10000,), 1.0),
    (layers.ScaleAttention, (8,), 3),
    (layers.ScaledDotProductAttention, (), 0.1),
    (layers.SinusoidalPositionEncoding, (100,), 1),
    (layers.SpatialAttention, (7,), 1),
    (layers.SqueezeExcitation, (8,), 2),
    (layers.TransformerDecoderBlock, (2,), 32),
    (layers.TransformerEncoderBlock, (2,), 32),
]


@pytest.mark.parametrize(
    "layer_cls, args, extra", POSITIONAL, ids=[case[0].__name__ for case in POSITIONAL]
)
def test_only_the_leading_arguments_are_positional(layer_cls, args, extra):
    kwargs = {"intermediate_dim": 16} if "Transformer" in layer_cls.__name__ else {}
    if layer_cls is layers.PatchEmbedding:
        kwargs = {"hidden_dim": 8}
    layer_cls(*args, **kwargs)
    with pytest.raises(TypeError, match="positional argument"):
        layer_cls(*args, extra, **kwargs)
