"""Convolutional Block Attention Module: channel attention, then spatial attention."""

from __future__ import annotations

import keras

from keras_attention import _validation
from keras_attention.layers import _common
from keras_attention.layers.channel_attention import ChannelAttention
from keras_attention.layers.spatial_attention import SpatialAttention, check_kernel_size


@keras.saving.register_keras_serializable(package="keras_attention")
class CBAM(_common.ScoresSpec, keras.layers.Layer):
    """CBAM: refines a feature map with channel attention, then spatial attention.

    For a channels-last feature map `F` of shape `(batch, H, W, C)`:

        F'  = M_c(F)  ⊙ F        M_c = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))
        F'' = M_s(F') ⊙ F'       M_s = sigmoid(conv_{k×k}([mean_c(F'); max_c(F')]))

    (see `ChannelAttention` and `SpatialAttention`, which are its sub-layers
    `channel_attention` and `spatial_attention`).

    Args:
        reduction: positive int, the reduction ratio of the channel MLP.
        kernel_size: positive odd int, the side of the spatial convolution.
        min_units: positive int, the smallest hidden width of the channel MLP.
            (`kernel_size` and `min_units` are keyword-only.)
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` feature map.
        return_attention_scores: if True, also return the spatial map `M_s`
            (the channel weights come from `layer.channel_attention` if needed).

    Returns:
        `(batch, H, W, C)` refined map, and with `return_attention_scores=True`
        also `M_s` of shape `(batch, H, W, 1)` with values in [0, 1].

    Example:

    >>> x = keras.random.normal((2, 8, 8, 32))
    >>> y, m = CBAM(reduction=8, kernel_size=7)(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(m.shape)
    ((2, 8, 8, 32), (2, 8, 8, 1))

    Reference:
        Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
        ECCV 2018. https://arxiv.org/abs/1807.06521
    """

    def __init__(self, reduction=16, *, kernel_size=7, min_units=1, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _validation.positive_int("reduction", reduction)
        self.kernel_size = check_kernel_size(kernel_size)
        self.min_units = _validation.positive_int("min_units", min_units)

    def build(self, input_shape):
        _validation.rank("inputs", input_shape, 4)
        self.channel_attention = ChannelAttention(
            reduction=self.reduction,
            min_units=self.min_units,
            dtype=self.dtype_policy,
            name="channel_attention",
        )
        self.channel_attention.build(input_shape)
        self.spatial_attention = SpatialAttention(
            kernel_size=self.kernel_size, dtype=self.dtype_policy, name="spatial_attention"
        )
        self.spatial_attention.build(input_shape)

    def call(self, inputs, return_attention_scores=False):
        refined = self.channel_attention(inputs)
        return self.spatial_attention(refined, return_attention_scores=return_attention_scores)

    # The scores are those of the spatial attention, the last sub-layer.
    _scores_shape = SpatialAttention._scores_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "kernel_size": self.kernel_size,
                "min_units": self.min_units,
            }
        )
        return config
