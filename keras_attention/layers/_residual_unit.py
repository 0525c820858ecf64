"""Pre-activation residual unit (He et al. 2016), building block of `ResidualAttentionModule`."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


@keras.saving.register_keras_serializable(package="keras_attention")
class ResidualUnit(keras.layers.Layer):
    """Pre-activation residual unit: `y = F(x) + shortcut(x)`, BN-ReLU before each conv.

    Bottleneck (default), with `b = max(1, filters // 4)`:

        a = relu(BN(x))
        F = conv1x1_filters(relu(BN(conv3x3_b(relu(BN(conv1x1_b(a)))))))

    Basic: `F = conv3x3_filters(relu(BN(conv3x3_filters(a))))`.
    The shortcut is `x` when shapes agree, else a strided 1×1 convolution of
    `a` (the pre-activated input), as in the pre-activation ResNet.

    Args:
        filters: positive int, output channels.
        strides: positive int, stride of the 3×3 convolution (and the projection).
        bottleneck: bottleneck (1×1, 3×3, 1×1) or basic (3×3, 3×3) unit.
            (`strides` and `bottleneck` are keyword-only.)
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)`.
        training: BatchNormalization mode.

    Returns:
        `(batch, ceil(H / strides), ceil(W / strides), filters)`.

    Reference:
        He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks",
        ECCV 2016. https://arxiv.org/abs/1603.05027
    """

    def __init__(self, filters, *, strides=1, bottleneck=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = _validation.positive_int("filters", filters)
        self.strides = _validation.positive_int("strides", strides)
        self.bottleneck = bool(bottleneck)

    def _bn(self, name):
        return keras.layers.BatchNormalization(dtype=self.dtype_policy, name=name)

    def _conv(self, filters, size, name, strides=1):
        return keras.layers.Conv2D(
            filters,
            size,
            strides=strides,
            padding="same",
            use_bias=False,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = _validation.channels("inputs", input_shape, 4)
        if self.bottleneck:
            width = max(1, self.filters // 4)
            plan = [(width, 1, 1), (width, 3, self.strides), (self.filters, 1, 1)]
        else:
            plan = [(self.filters, 3, self.strides), (self.filters, 3, 1)]
        self.norms, self.convs = [], []
        in_channels = channels
        for i, (filters, size, strides) in enumerate(plan):
            norm = self._bn(f"bn_{i}")
            norm.build((None, None, None, in_channels))
            conv = self._conv(filters, size, f"conv_{i}", strides)
            conv.build((None, None, None, in_channels))
            self.norms.append(norm)
            self.convs.append(conv)
            in_channels = filters
        self.projection = None
        if channels != self.filters or self.strides != 1:
            self.projection = self._conv(self.filters, 1, "projection", self.strides)
            self.projection.build((None, None, None, channels))

    def call(self, inputs, training=None):
        x = inputs
        shortcut = inputs
        for i, (norm, conv) in enumerate(zip(self.norms, self.convs, strict=True)):
            x = ops.relu(norm(x, training=training))
            if i == 0 and self.projection is not None:
                shortcut = self.projection(x)
            x = conv(x)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "strides": self.strides, "bottleneck": self.bottleneck}
        )
        return config
