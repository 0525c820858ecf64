"""Attention module of the Residual Attention Network (Wang et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention.layers import _common
from keras_attention.layers._residual_unit import ResidualUnit


def _resize_like(x, reference):
    """Bilinear resize of `x` to the height and width of `reference` (any sizes, odd too)."""
    shape = ops.shape(reference)
    resized = ops.image.resize(
        x, (shape[1], shape[2]), interpolation="bilinear", data_format="channels_last"
    )
    return ops.cast(resized, x.dtype)


@keras.saving.register_keras_serializable(package="keras_attention")
class ResidualAttentionModule(_common.ScoresSpec, keras.layers.Layer):
    """Residual attention module: a trunk branch gated by a bottom-up top-down soft mask.

    With `U_k` a pre-activation residual unit with `filters` output channels:

        x = U^p(inputs)                                   (p pre-processing units)
        T = U^t(x)                                        (trunk branch)
        M = sigmoid(head(mask_branch(x)))  ∈ (0, 1)       (soft mask, same shape as T)
        output = U^p((1 + M) ⊙ T)                         (attention residual learning)

    The mask branch goes down `mask_depth` times (3×3/2 max-pool, then `r`
    units), runs `r` more units at the coarsest scale, then goes up (bilinear
    resize to the size of the matching scale, plus a skip connection through
    one residual unit, then `r` units) back to the input size; `head` is
    BN-ReLU-1×1 conv twice. Upsampling resizes to the exact size of the
    skip (or of the input), so odd heights and widths work.

    Args:
        filters: positive int, output channels (the first unit projects the
            input when its channel count differs).
        p: non-negative int, residual units before splitting and after merging.
        t: positive int, residual units in the trunk branch.
        r: positive int, residual units between adjacent scales of the mask branch.
        mask_depth: positive int, number of max-pool downsamplings in the mask
            branch (the paper uses 3, 2 and 1 for its three stages).
        bottleneck: bottleneck (default, as in the paper) or basic residual units.
            (All but `filters` are keyword-only.)
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(batch, H, W, C)` feature map.
        return_attention_scores: if True, also return the soft mask `M`.
        training: BatchNormalization mode.

    Returns:
        `(batch, H, W, filters)`, and with `return_attention_scores=True` also
        the soft mask `(batch, H, W, filters)` with values in (0, 1).

    Example:

    >>> x = keras.random.normal((2, 15, 15, 16))
    >>> module = ResidualAttentionModule(filters=32, mask_depth=2)
    >>> y, mask = module(x, return_attention_scores=True)
    >>> tuple(y.shape), tuple(mask.shape)
    ((2, 15, 15, 32), (2, 15, 15, 32))

    Reference:
        Wang, Jiang, Qian, Yang, Li, Zhang, Wang, Tang. "Residual Attention
        Network for Image Classification", CVPR 2017.
        https://arxiv.org/abs/1704.06904
    """

    def __init__(self, filters, *, p=1, t=2, r=1, mask_depth=2, bottleneck=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = _validation.positive_int("filters", filters)
        self.p = _validation.non_negative_int("p", p)
        self.t = _validation.positive_int("t", t)
        self.r = _validation.positive_int("r", r)
        self.mask_depth = _validation.positive_int("mask_depth", mask_depth)
        self.bottleneck = bool(bottleneck)

    def _units(self, prefix, count, in_channels):
        units = []
        for i in range(count):
            unit = ResidualUnit(
                self.filters,
                bottleneck=self.bottleneck,
                dtype=self.dtype_policy,
                name=f"{prefix}_{i}",
            )
            unit.build((None, None, None, in_channels if i == 0 else self.filters))
            units.append(unit)
        return units

    def build(self, input_shape):
        channels = _validation.channels("inputs", input_shape, 4)
        f = self.filters
        self.pre_units = self._units("pre", self.p, channels)
        split_channels = f if self.p else channels
        self.trunk_units = self._units("trunk", self.t, split_channels)
        self.pool = keras.layers.MaxPooling2D(
            3, strides=2, padding="same", dtype=self.dtype_policy, name="pool"
        )
        # Mask branch, flattened per role: down_units[i * r + j] is unit j at depth i+1.
        self.down_units = self._units("mask_down", self.mask_depth * self.r, split_channels)
        self.skip_units = self._units("mask_skip", self.mask_depth - 1, f)
        self.up_units = self._units("mask_up", self.mask_depth * self.r, f)
        self.head_norms, self.head_convs = [], []
        for i in range(2):
            norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"mask_bn_{i}")
            norm.build((None, None, None, f))
            conv = keras.layers.Conv2D(
                f, 1, use_bias=i == 1, dtype=self.dtype_policy, name=f"mask_conv_{i}"
            )
            conv.build((None, None, None, f))
            self.head_norms.append(norm)
            self.head_convs.append(conv)
        self.post_units = self._units("post", self.p, f)

    @staticmethod
    def _run(units, x, training):
        for unit in units:
            x = unit(x, training=training)
        return x

    def _soft_mask(self, x, training):
        r = self.r
        sizes, skips = [x], []
        for depth in range(self.mask_depth):
            x = self.pool(x)
            x = self._run(self.down_units[depth * r : (depth + 1) * r], x, training)
            if depth < self.mask_depth - 1:
                sizes.append(x)
                skips.append(self.skip_units[depth](x, training=training))
        x = self._run(self.up_units[:r], x, training)  # 2r units at the coarsest scale
        for level, depth in enumerate(reversed(range(self.mask_depth - 1)), start=1):
            x = _resize_like(x, sizes[depth + 1]) + skips[depth]
            x = self._run(self.up_units[level * r : (level + 1) * r], x, training)
        x = _resize_like(x, sizes[0])
        for norm, conv in zip(self.head_norms, self.head_convs, strict=True):
            x = conv(ops.relu(norm(x, training=training)))
        return ops.sigmoid(x)

    def branches(self, inputs, training=None):
        """Returns `(trunk T, soft mask M)`, both `(batch, H, W, filters)`, after the pre units."""
        x = self._run(self.pre_units, inputs, training)
        return self._run(self.trunk_units, x, training), self._soft_mask(x, training)

    def call(self, inputs, return_attention_scores=False, training=None):
        trunk, mask = self.branches(inputs, training=training)
        outputs = self._run(self.post_units, (1.0 + mask) * trunk, training)
        return (outputs, mask) if return_attention_scores else outputs

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.filters)

    def _scores_shape(self, input_shape):
        return self.compute_output_shape(input_shape)  # the soft mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "p": self.p,
                "t": self.t,
                "r": self.r,
                "mask_depth": self.mask_depth,
                "bottleneck": self.bottleneck,
            }
        )
        return config
