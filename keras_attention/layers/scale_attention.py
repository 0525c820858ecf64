"""Attention to scale: a learned per-position softmax over the maps of several input scales."""

from __future__ import annotations

import keras
from keras import ops

from keras_attention import _validation
from keras_attention._masking import masked_softmax
from keras_attention.layers import _common
from keras_attention.layers.spatial_attention import check_kernel_size


def _shapes(input_shape):
    """The list of per-scale shapes of a list of maps, or of a stacked `(b, H, W, S, C)` map."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
        input_shape[0], (list, tuple)
    ):
        return [tuple(s) for s in input_shape], False
    shape = tuple(input_shape or ())
    if len(shape) == 5:
        return [shape[:3] + shape[4:]] * (1 if shape[3] is None else shape[3]), True
    raise ValueError(
        "`inputs` must be a list of S >= 2 feature maps `(batch, H, W, C)` (one per scale), "
        f"or one tensor `(batch, H, W, S, C)` with the scales stacked. Received: "
        f"inputs.shape={shape}"
    )


def _check_scales(input_shape):
    """Checks the maps (same rank-4 shape, known channels, at least two) and returns
    `(S, C, stacked)`."""
    shapes, stacked = _shapes(input_shape)
    if stacked and tuple(input_shape)[3] is None:
        raise ValueError(
            "The scale axis (axis 3) of a stacked `inputs` must be known. Received: "
            f"inputs.shape={tuple(input_shape)}"
        )
    if len(shapes) < 2:
        raise ValueError(
            "ScaleAttention merges feature maps from at least 2 scales; received "
            f"{len(shapes)}: inputs shapes={shapes}"
        )
    for i, shape in enumerate(shapes):
        _validation.channels(f"inputs[{i}]", shape, 4)
    first = shapes[0]
    for i, shape in enumerate(shapes[1:], start=1):
        for axis in range(1, 4):
            a, b = first[axis], shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(
                    "Every scale's feature map must have the same shape (resize them to one "
                    f"grid first): inputs[0].shape={first} but inputs[{i}].shape={shape}"
                )
    return len(shapes), int(first[-1]), stacked


@keras.saving.register_keras_serializable(package="keras_attention")
class ScaleAttention(keras.layers.Layer):
    """Attention to scale: a per-position softmax over S scales, and the weighted sum.

    The same network is run on an image at S scales (e.g. 1, 0.75, 0.5) and its
    feature (or score) maps `f_1 ... f_S` are resized to one grid `(H, W)`. A
    small scoring head looks at all of them and weighs them, position by
    position:

        h = relu(conv_{k×k}([f_1 ; ... ; f_S]))          (batch, H, W, hidden_units)
        e = conv_{1×1}(h)                               (batch, H, W, S)
        w_s = exp(e_s) / Σ_t exp(e_t)                   (softmax over scales)
        output = Σ_s w_s ⊙ f_s                          (batch, H, W, C)

    This is the attention model of Chen et al. (2016): two convolutions (a 3×3
    one with 512 ReLU units, then a 1×1 one with one score per scale) on the
    concatenated maps; average pooling (`w_s = 1/S`) and max pooling over
    scales are the baselines it is compared with.

    Masks: a mask is True where a position is real. A spatial mask
    `(batch, H, W)` applies to every scale; a list of S such masks (what Keras
    passes when the inputs carry masks; None entries mean all valid) or a
    `(batch, H, W, S)` mask says where each scale is valid. A scale is left out
    of the softmax where it is masked; where every scale is masked, the weights
    and the output are zeros. The output's mask is True where any scale is
    valid.

    Args:
        hidden_units: positive int, the width of the 3×3 scoring layer (512 in
            the paper).
        kernel_size: positive odd int, the side of the first scoring convolution
            (3 in the paper); keyword-only.
        kernel_initializer: initializer of both convolutions' kernels.
        bias_initializer: initializer of both convolutions' biases.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list of S >= 2 feature maps `(batch, H, W, C)` of one shape, or
            one tensor `(batch, H, W, S, C)` with the scales stacked on axis 3.
        mask: optional, see above.
        return_attention_scores: if True, also return the weights `w`.

    Returns:
        `(batch, H, W, C)` merged map, and with `return_attention_scores=True`
        also the weights `(batch, H, W, S)` (summing to 1 over scales where any
        scale is valid).

    Example:

    >>> maps = [keras.random.normal((2, 8, 8, 16)) for _ in range(3)]
    >>> y, w = ScaleAttention(hidden_units=32)(maps, return_attention_scores=True)
    >>> tuple(y.shape), tuple(w.shape)
    ((2, 8, 8, 16), (2, 8, 8, 3))

    Reference:
        Chen, Yang, Wang, Xu, Yuille. "Attention to Scale: Scale-aware Semantic
        Image Segmentation", CVPR 2016. https://arxiv.org/abs/1511.03339
    """

    def __init__(
        self,
        hidden_units=512,
        *,
        kernel_size=3,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = _validation.positive_int("hidden_units", hidden_units)
        self.kernel_size = check_kernel_size(kernel_size)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.num_scales, channels, _ = _check_scales(input_shape)
        self.hidden = keras.layers.Conv2D(
            self.hidden_units,
            self.kernel_size,
            padding="same",
            activation="relu",
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="hidden",
        )
        self.hidden.build((None, None, None, self.num_scales * channels))
        self.score = keras.layers.Conv2D(
            self.num_scales,
            1,
            kernel_initializer=_common.clone_initializer(self.kernel_initializer),
            bias_initializer=_common.clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="score",
        )
        self.score.build((None, None, None, self.hidden_units))

    def _stack(self, inputs):
        """`(batch, H, W, S, C)` from a list of maps (or the stacked tensor itself)."""
        if isinstance(inputs, (list, tuple)):
            return ops.stack(list(inputs), axis=3)
        return inputs

    def _validity(self, mask):
        """`(batch, H, W, S)` boolean validity of each scale, or None (all valid)."""
        if isinstance(mask, (list, tuple)):
            if all(m is None for m in mask):
                return None
            if len(mask) != self.num_scales:
                raise ValueError(
                    f"`mask` must have one entry per scale ({self.num_scales}). Received "
                    f"{len(mask)} masks."
                )
            reference = next(m for m in mask if m is not None)
            mask = [ops.ones_like(reference, dtype="bool") if m is None else m for m in mask]
            return ops.stack([ops.cast(m, "bool") for m in mask], axis=-1)
        if mask is None:
            return None
        mask = ops.cast(mask, "bool")
        if len(mask.shape) == 3:  # spatial: the same for every scale
            return ops.repeat(ops.expand_dims(mask, -1), self.num_scales, axis=-1)
        if len(mask.shape) == 4 and mask.shape[-1] in (None, self.num_scales):
            return mask
        raise ValueError(
            f"`mask` must be `(batch, H, W)`, `(batch, H, W, {self.num_scales})` or a list of "
            f"{self.num_scales} `(batch, H, W)` masks. Received: mask.shape={tuple(mask.shape)}"
        )

    def call(self, inputs, mask=None, return_attention_scores=False):
        stacked = self._stack(inputs)
        batch, height, width = ops.shape(stacked)[0], ops.shape(stacked)[1], ops.shape(stacked)[2]
        concatenated = ops.reshape(stacked, (batch, height, width, -1))  # [f_1 ; ... ; f_S]
        scores = self.score(self.hidden(concatenated))
        weights = masked_softmax(scores, self._validity(mask), axis=-1)
        outputs = ops.sum(stacked * ops.expand_dims(weights, -1), axis=3)
        return (outputs, weights) if return_attention_scores else outputs

    def compute_mask(self, inputs, mask=None):
        if mask is None or (isinstance(mask, (list, tuple)) and all(m is None for m in mask)):
            return None
        return ops.any(self._validity(mask), axis=-1)

    def compute_output_shape(self, input_shape):
        shapes, _ = _shapes(input_shape)
        return shapes[0]

    def compute_output_spec(self, inputs, mask=None, return_attention_scores=False):
        shape = tuple(inputs[0].shape) if isinstance(inputs, (list, tuple)) else (
            tuple(inputs.shape[:3]) + tuple(inputs.shape[4:])
        )
        num_scales = len(inputs) if isinstance(inputs, (list, tuple)) else inputs.shape[3]
        scores = (*shape[:3], num_scales) if return_attention_scores else None
        return _common.output_specs(self, shape, scores)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "kernel_size": self.kernel_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
