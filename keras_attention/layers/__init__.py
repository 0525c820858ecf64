"""Public, registered, serializable Keras 3 attention layers."""
from keras_attention.layers.attention_pooling import AttentionPooling  # noqa: F401
from keras_attention.layers.bahdanau_attention import BahdanauAttention  # noqa: F401
from keras_attention.layers.cbam import CBAM  # noqa: F401
from keras_attention.layers.channel_attention import ChannelAttention  # noqa: F401
from keras_attention.layers.dot_product_attention import DotProductAttention  # noqa: F401
from keras_attention.layers.gated_attention_pooling import GatedAttentionPooling  # noqa: F401
from keras_attention.layers.group_query_attention import (  # noqa: F401
    GroupQueryAttention,
)
from keras_attention.layers.hierarchical_attention_pooling import HierarchicalAttentionPooling  # noqa: E501, F401
from keras_attention.layers.local_attention import LocalAttention  # noqa: F401
from keras_attention.layers.multi_head_attention import MultiHeadAttention  # noqa: F401
from keras_attention.layers.non_local_block import NonLocalBlock  # noqa: F401
from keras_attention.layers.patch_embedding import PatchEmbedding  # noqa: F401
from keras_attention.layers.pointer_generator import PointerGenerator  # noqa: F401
from keras_attention.layers.position_embedding import PositionEmbedding  # noqa: F401
from keras_attention.layers.residual_attention_module import (  # noqa: F401
    ResidualAttentionModule,
)
from keras_attention.layers.rotary_embedding import RotaryEmbedding  # noqa: F401
from keras_attention.layers.scale_attention import ScaleAttention  # noqa: F401
from keras_attention.layers.scaled_dot_product_attention import (  # noqa: F401
    ScaledDotProductAttention,
)
from keras_attention.layers.sinusoidal_position_encoding import (  # noqa: F401
    SinusoidalPositionEncoding,
)
from keras_attention.layers.spatial_attention import SpatialAttention  # noqa: F401
from keras_attention.layers.squeeze_excitation import SqueezeExcitation  # noqa: F401
from keras_attention.layers.transformer_decoder_block import (  # noqa: F401
    TransformerDecoderBlock,
)
from keras_attention.layers.transformer_encoder_block import (  # noqa: F401
    TransformerEncoderBlock,
)

# Every layer imported above (so a new one needs no second line here); the API reference
# (mkdocs) documents what is in `__all__`.
__all__ = sorted(name for name, value in list(globals().items())
                 if isinstance(value, type) and not name.startswith("_"))
