"""The channel-excitation MLP shared by `SqueezeExcitation` and `ChannelAttention`.

Both layers squeeze a channels-last feature map to per-channel descriptors,
send them through the same bottleneck MLP, `W2 · relu(W1 · z)`, with `C / r`
hidden units, and rescale the channels by a sigmoid gate. SE (Hu et al. 2018)
uses one descriptor (the average); CBAM's channel attention (Woo et al. 2018)
sums the MLP of the average and of the max descriptors before the sigmoid. That
is the only difference, so both public layers subclass `ChannelGate` below and
set `pools`.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention.layers import _common


def reduced_units(channels: int, reduction: int, min_units: int) -> int:
    """Hidden width of the excitation MLP: `max(min_units, channels // reduction)`."""
    return max(min_units, channels // reduction)


def check_feature_map(name: str, shape, ranks=(3, 4, 5)) -> int:
    """Checks a channels-last feature map shape and returns its (static) channel count."""
    return _validation.channels(name, shape, ranks)


def spatial_axes(x) -> tuple[int, ...]:
    """Axes between batch and channels of a channels-last tensor."""
    return tuple(range(1, len(x.shape) - 1))


def global_average_pool(x):
    """`(batch, *spatial, C)` -> `(batch, C)`: the squeeze of SE and CBAM."""
    return ops.mean(x, axis=spatial_axes(x))


def global_max_pool(x):
    """`(batch, *spatial, C)` -> `(batch, C)`."""
    return ops.max(x, axis=spatial_axes(x))


def expand_to_feature_map(weights, x):
    """`(batch, C)` channel weights -> broadcastable to the feature map `x`."""
    return ops.reshape(weights, (-1,) + (1,) * (len(x.shape) - 2) + (weights.shape[-1],))


@keras.saving.register_keras_serializable(package="keras_attention")
class ExcitationMLP(keras.layers.Layer):
    """Bottleneck MLP over channel descriptors: `W2 · relu(W1 · z + b1) + b2` (logits).

    Private building block of `SqueezeExcitation` and `ChannelAttention`; the
    sigmoid is left to the caller so CBAM can add two branches first.

    Args:
        reduction: channel reduction ratio `r`; the hidden layer has
            `max(min_units, C // r)` units.
        min_units: lower bound on the hidden width.
        use_bias: whether both dense layers have biases.

    Call arguments:
        inputs: `(batch, C)` descriptors.

    Returns:
        `(batch, C)` logits.
    """

    def __init__(self, reduction=16, *, min_units=1, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _validation.positive_int("reduction", reduction)
        self.min_units = _validation.positive_int("min_units", min_units)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        channels = check_feature_map("inputs", input_shape, ranks=(2,))
        self.units = reduced_units(channels, self.reduction, self.min_units)
        self.reduce = keras.layers.Dense(
            self.units,
            activation="relu",
            use_bias=self.use_bias,
            dtype=self.dtype_policy,
            name="reduce",
        )
        self.reduce.build((None, channels))
        self.expand = keras.layers.Dense(
            channels, use_bias=self.use_bias, dtype=self.dtype_policy, name="expand"
        )
        self.expand.build((None, self.units))

    def call(self, inputs):
        return self.expand(self.reduce(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"reduction": self.reduction, "min_units": self.min_units, "use_bias": self.use_bias}
        )
        return config


class ChannelGate(_common.ScoresSpec, keras.layers.Layer):
    """`output = x ⊙ sigmoid(Σ_pool MLP(pool(x)))`, the shared body of SE and CBAM-channel.

    Not registered: the public subclasses are, and they set `pools` to the
    descriptors they use, `("average",)` or `("average", "max")`.
    """

    pools: tuple[str, ...] = ("average",)
    _pool_fns = {"average": global_average_pool, "max": global_max_pool}

    def __init__(self, reduction=16, *, min_units=1, **kwargs):
        super().__init__(**kwargs)
        self.reduction = _validation.positive_int("reduction", reduction)
        self.min_units = _validation.positive_int("min_units", min_units)

    def build(self, input_shape):
        channels = check_feature_map("inputs", input_shape)
        self.mlp = ExcitationMLP(
            reduction=self.reduction, min_units=self.min_units, dtype=self.dtype_policy, name="mlp"
        )
        self.mlp.build((None, channels))

    def call(self, inputs, return_attention_scores=False):
        logits = None
        for pool in self.pools:
            branch = self.mlp(self._pool_fns[pool](inputs))
            logits = branch if logits is None else logits + branch
        weights = ops.sigmoid(logits)
        outputs = inputs * expand_to_feature_map(weights, inputs)
        return (outputs, weights) if return_attention_scores else outputs

    def _scores_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "min_units": self.min_units})
        return config
