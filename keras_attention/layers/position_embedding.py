"""Learned absolute position embeddings."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation


@keras.saving.register_keras_serializable(package="keras_attention")
class PositionEmbedding(keras.layers.Layer):
    """Returns a learned embedding of each position, to be added to the sequence.

    A trainable table `P` of shape `(sequence_length, dim)`; step `t` of the
    input gets row `P[start_index + t]`:

        out[b, t, :] = P[start_index + t, :]

    `start_index` (a Python int or an integer scalar tensor, also inside
    `tf.function`) lets a decoder embed one step at a time. The Keras mask of
    `inputs` passes through.

    Args:
        sequence_length: the longest sequence (number of rows of `P`).
        initializer: initializer of `P` (keyword-only).

    Call arguments:
        inputs: `(batch, T, dim)`; only its shape is used.
        start_index: position of the first step, int or int scalar tensor.

    Returns:
        The embeddings `(batch, T, dim)`.

    Example:
        >>> x = keras.random.normal((2, 5, 8))
        >>> x = x + PositionEmbedding(sequence_length=16)(x)

    Reference:
        Gehring et al., "Convolutional Sequence to Sequence Learning", ICML
        2017; Devlin et al., "BERT", NAACL 2019 (learned absolute positions).
    """

    def __init__(self, sequence_length, *, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = _validation.positive_int("sequence_length", sequence_length)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        _validation.rank("inputs", inputs_shape, 3)
        dim = _validation.known_last_dim("inputs", inputs_shape)
        length = inputs_shape[1]
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"`inputs` has {length} steps, more than `sequence_length`="
                f"{self.sequence_length}. Received: inputs.shape={tuple(inputs_shape)}"
            )
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, dim),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length = shape[1]
        if isinstance(start_index, int) and isinstance(length, int):
            if start_index < 0 or start_index + length > self.sequence_length:
                raise ValueError(
                    f"`start_index` + the number of steps ({start_index} + {length}) must "
                    f"lie in [0, sequence_length={self.sequence_length}]. "
                    f"Received: start_index={start_index}"
                )
        table = ops.convert_to_tensor(self.position_embeddings)
        embeddings = ops.slice(table, (start_index, 0), (length, inputs.shape[-1]))
        return ops.broadcast_to(ops.cast(embeddings[None], self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
