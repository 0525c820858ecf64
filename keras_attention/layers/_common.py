"""Small helpers shared by the layers (not public)."""

from __future__ import annotations

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer` for one sub-layer (as keras-hub does).

    An initializer built without a seed draws one when it is created, so one
    instance shared by several sub-layers would give them the same values; each
    copy made from the config draws its own. Strings and dicts pass through.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


def sub_seed(seed, index):
    """The seed of a layer's `index`-th random sub-layer: `seed + index`, or None.

    Distinct per sub-layer, so two dropouts of the same shape do not draw the same mask.
    """
    return None if seed is None else seed + index


def output_specs(layer, shape, scores_shape=None):
    """`KerasTensor`s in `layer`'s compute dtype: the output, and `(output, scores)`
    when `scores_shape` is given."""
    output = keras.KerasTensor(tuple(shape), dtype=layer.compute_dtype)
    if scores_shape is None:
        return output
    return output, keras.KerasTensor(tuple(scores_shape), dtype=layer.compute_dtype)


class ScoresSpec:
    """`compute_output_spec` for a layer with one input tensor whose call returns its
    output, or `(output, scores)` with `return_attention_scores=True`.

    A mixin, listed before `keras.layers.Layer`: the layer defines
    `_scores_shape(input_shape)`, and `compute_output_shape(input_shape)` unless
    its output has the shape of its input.
    """

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        scores_shape = self._scores_shape(inputs.shape) if return_attention_scores else None
        return output_specs(self, self.compute_output_shape(inputs.shape), scores_shape)

    def _scores_shape(self, input_shape):
        raise NotImplementedError
