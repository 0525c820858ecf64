"""Fixed sinusoidal position encoding (Vaswani et al. 2017)."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


@keras.saving.register_keras_serializable(package="keras_attention")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Returns the sinusoidal position encoding of a sequence, to be added to it.

    For position `pos` and channel `j` of a `dim`-wide encoding, with `i = j // 2`:

        PE(pos, 2i)   = sin(pos / max_wavelength^(2i / dim))
        PE(pos, 2i+1) = cos(pos / max_wavelength^(2i / dim))

    Positions are `start_index, start_index + 1, ...`, so a decoder that runs one
    step at a time passes the step index as `start_index` (a Python int or an
    integer scalar tensor, also inside `tf.function`). The layer has no weights
    and passes the Keras mask of `inputs` through.

    Args:
        max_wavelength: the longest wavelength of the sinusoids (10000 in the
            paper).

    Call arguments:
        inputs: `(batch, T, dim)`; only its shape is used.
        start_index: position of the first step, int or int scalar tensor.

    Returns:
        The encoding `(batch, T, dim)` in the layer's compute dtype.

    Example:
        >>> x = keras.random.normal((2, 5, 8))
        >>> x = x + SinusoidalPositionEncoding()(x)

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5.
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        if (
            isinstance(max_wavelength, bool)
            or not isinstance(max_wavelength, (int, float))
            or max_wavelength <= 0
        ):
            raise ValueError(
                "`max_wavelength` must be a positive number. "
                f"Received: max_wavelength={max_wavelength!r}"
            )
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def build(self, inputs_shape):
        _validation.rank("inputs", inputs_shape, 3)
        _validation.known_last_dim("inputs", inputs_shape)

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, dim = shape[1], inputs.shape[-1]
        positions = ops.cast(ops.arange(length), "float32") + ops.cast(start_index, "float32")
        channels = ops.arange(dim)
        exponent = ops.cast(2 * (channels // 2), "float32") / float(dim)
        inverse_timescales = ops.power(float(self.max_wavelength), -exponent)
        angles = ops.expand_dims(positions, -1) * ops.expand_dims(inverse_timescales, 0)
        is_even = ops.equal(channels % 2, 0)
        encoding = ops.where(is_even, ops.sin(angles), ops.cos(angles))  # (T, dim)
        encoding = ops.broadcast_to(encoding[None], shape)
        return ops.cast(encoding, self.compute_dtype)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
