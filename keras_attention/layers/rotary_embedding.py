"""Rotary position embedding (RoPE): rotates feature pairs by a position-dependent angle."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


@keras.saving.register_keras_serializable(package="keras_attention")
class RotaryEmbedding(keras.layers.Layer):
    """Applies rotary position embedding to a sequence (Su et al. 2021, RoFormer).

    With `D` the size of the feature axis, `p = (start_index + t) / scaling_factor`
    the position of step `t` and `θ_i = max_wavelength ** (-2i / D)` for
    `i < D/2`, the feature pairs `(x[i], x[i + D/2])` (the *half-split*
    convention of GPT-NeoX and keras-hub, not the interleaved pairs
    `(x[2i], x[2i+1])` of the paper) are rotated by the angle `p θ_i`:

        out[i]       = x[i] cos(p θ_i) - x[i + D/2] sin(p θ_i)
        out[i + D/2] = x[i + D/2] cos(p θ_i) + x[i] sin(p θ_i)

    Applied to queries and keys, `q_m · k_n` then depends on the positions only
    through `m - n`. The layer has no weights; angles are computed in float32
    and the output has the input's dtype.

    Args:
        max_wavelength: the base of the angles (10000 in the paper), > 0.
        scaling_factor: positions are divided by it (linear position
            interpolation to stretch the context), > 0; keyword-only.
        sequence_axis: axis of the steps; keyword-only.
        feature_axis: axis of the features, of even size; keyword-only.

    Call arguments:
        inputs: e.g. `(batch, T, heads, D)` or `(batch, T, D)`.
        start_index: position of the first step, int or int scalar tensor
            (e.g. the cache index in incremental decoding).

    Returns:
        The rotated tensor, the shape and dtype of `inputs`.

    Example:
        >>> rope = RotaryEmbedding()
        >>> q = keras.random.normal((2, 5, 4, 8))  # (batch, T, heads, head_dim)
        >>> tuple(rope(q).shape)
        (2, 5, 4, 8)
        >>> tuple(rope(q[:, :1], start_index=4).shape)  # one decoding step at position 4
        (2, 1, 4, 8)

    Reference:
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position
        Embedding", arXiv:2104.09864, 2021.
    """

    def __init__(
        self, max_wavelength=10000, *, scaling_factor=1.0, sequence_axis=1, feature_axis=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_wavelength = _validation.positive_float("max_wavelength", max_wavelength)
        self.scaling_factor = _validation.positive_float("scaling_factor", scaling_factor)
        for name, value in (("sequence_axis", sequence_axis), ("feature_axis", feature_axis)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"`{name}` must be an int. Received: {name}={value!r}")
        self.sequence_axis = sequence_axis
        self.feature_axis = feature_axis
        self.supports_masking = True

    def _axes(self, rank):
        axes = []
        for name, axis in (("sequence_axis", self.sequence_axis),
                           ("feature_axis", self.feature_axis)):
            if not -rank <= axis < rank:
                raise ValueError(
                    f"`{name}` is out of range for inputs of rank {rank}. "
                    f"Received: {name}={axis}"
                )
            axes.append(axis % rank)
        if axes[0] == axes[1]:
            raise ValueError(
                "`sequence_axis` and `feature_axis` must be different axes. Received: "
                f"sequence_axis={self.sequence_axis}, feature_axis={self.feature_axis}"
            )
        return axes

    def build(self, inputs_shape):
        rank = len(inputs_shape)
        if rank < 2:
            raise ValueError(
                f"`inputs` must have rank 2 or more. Received: inputs.shape={tuple(inputs_shape)}"
            )
        _, feature = self._axes(rank)
        dim = inputs_shape[feature]
        if dim is None or dim % 2:
            raise ValueError(
                "The feature axis of `inputs` must have a known, even size. Received: "
                f"inputs.shape={tuple(inputs_shape)}, feature_axis={self.feature_axis}"
            )

    def call(self, inputs, start_index=0):
        rank = len(inputs.shape)
        seq_axis, feature_axis = self._axes(rank)
        dim = inputs.shape[feature_axis]
        length = ops.shape(inputs)[seq_axis]
        positions = ops.arange(length, dtype="float32") + ops.cast(start_index, "float32")
        positions = positions / self.scaling_factor
        exponents = ops.arange(0, dim, 2, dtype="float32") / float(dim)
        inverse_freq = ops.power(ops.cast(self.max_wavelength, "float32"), -exponents)
        angles = ops.einsum("t,f->tf", positions, inverse_freq)  # (T, D/2)
        angles = ops.concatenate([angles, angles], axis=-1)  # (T, D)
        if seq_axis > feature_axis:
            angles = ops.transpose(angles)
        shape = [1] * rank
        shape[seq_axis], shape[feature_axis] = -1, dim
        angles = ops.reshape(angles, shape)
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        first, second = ops.split(inputs, 2, axis=feature_axis)
        rotated_half = ops.concatenate([ops.negative(second), first], axis=feature_axis)
        return inputs * cos + rotated_half * sin

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor,
                "sequence_axis": self.sequence_axis,
                "feature_axis": self.feature_axis,
            }
        )
        return config
