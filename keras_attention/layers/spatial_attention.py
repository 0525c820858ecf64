"""CBAM spatial attention: where to look, from channel-pooled maps and a k×k convolution."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention.layers import _common


def check_kernel_size(kernel_size):
    """A positive odd int, so a 'same' convolution keeps the map centred."""
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size <= 0
        or kernel_size % 2 == 0
    ):
        raise ValueError(
            "`kernel_size` must be a positive odd integer (the spatial map must keep the "
            f"input's height and width). Received: kernel_size={kernel_size!r}"
        )
    return kernel_size


@keras.saving.register_keras_serializable(package="keras_attention")
class SpatialAttention(_common.ScoresSpec, keras.layers.Layer):
    """Spatial attention of CBAM: one weight in (0, 1) per position, shared by all channels.

    For a channels-last image feature map `F` of shape `(batch, H, W, C)`:

        F_avg = mean over channels of F,  F_max = max over channels of F   (batch, H, W, 1)
        M_s(F) = sigmoid(conv_{k×k}([F_avg ; F_max]))                       (batch, H, W, 1)
        output = F ⊙ M_s(F)

    The convolution has one output channel, 'same' padding and a bias; the
    paper's equation has no normalisation after it, and neither does this layer.

    Args:
        kernel_size: positive odd int, the side `k` of the convolution (7 in
            the paper).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` feature map.
        return_attention_scores: if True, also return the map `M_s`.

    Returns:
        `(batch, H, W, C)` refined map, and with `return_attention_scores=True`
        also `M_s` of shape `(batch, H, W, 1)`.

    Example:

    >>> x = keras.random.normal((2, 8, 8, 16))
    >>> y, m = SpatialAttention(kernel_size=3)(x, return_attention_scores=True)
    >>> tuple(m.shape)
    (2, 8, 8, 1)

    Reference:
        Woo, Park, Lee, Kweon. "CBAM: Convolutional Block Attention Module",
        ECCV 2018. https://arxiv.org/abs/1807.06521
    """

    def __init__(self, kernel_size=7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = check_kernel_size(kernel_size)

    def build(self, input_shape):
        _validation.rank("inputs", input_shape, 4)
        self.conv = keras.layers.Conv2D(
            1,
            self.kernel_size,
            padding="same",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((None, None, None, 2))

    def call(self, inputs, return_attention_scores=False):
        pooled = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )
        attention = ops.sigmoid(self.conv(pooled))
        outputs = inputs * attention
        return (outputs, attention) if return_attention_scores else outputs

    def _scores_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config
