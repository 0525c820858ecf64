"""Attention to scale in the image app: the object's mask on cluttered canvases, from 3 scales.

Chen et al. (2016) run one segmentation network on an image at several scales
and merge its outputs with a learned per-pixel softmax over scales
(`keras_attention.layers.ScaleAttention`), against averaging or max-pooling
over scales. Here the task is the dense prediction of the object's mask on a
cluttered canvas (`cluttered_fashion_mnist` by default, or `cluttered_digits`):

- ground truth: the object's pixels above `mask_threshold` inside its known
  box. Clutter is drawn off the box (`clutter_covers_digit=False`, the default
  of both datasets), so inside the box there is only the object, and the mask
  is exact; it is derived from `(image, bbox)` in the input pipeline
  (`object_masks`), nothing is stored.
- network: a small fully convolutional trunk (3x3 convolutions, one stride-2,
  then dilated ones), the same weights at every scale: the canvas is resized to
  `scale * size` (bilinear), the trunk gives features at half that resolution,
  and each scale's features are resized to the grid of scale 1 (size / 2).
  A 1x1 convolution (shared) gives a mask logit per scale.
- merges (`merge`): `attention` (ScaleAttention on the features, then the 1x1
  head: since the head is linear and the weights sum to 1, that is the
  weighted sum of the scales' logits, as in the paper, with weights computed
  from the features), `average` (mean of the scales' logits) and `max`
  (their maximum). The merged logits are upsampled to the canvas.
- loss: binary cross-entropy on the merged logits, plus the same on every
  scale's own logits with `extra_supervision` (the paper's extra supervision;
  it is what made attention to scale beat the baselines there); the same for
  all three merges.
- score: mask IoU (`MaskIoU`: per canvas |pred ∩ truth| / |pred ∪ truth|, the
  prediction being logit > 0, averaged over canvases).

`benchmarks/scale_attention.py` trains the three merges at the same budget
over seeds and reports IoU with paired intervals against `average`.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from apps.image_classification import pipeline
from keras_attention.layers import ScaleAttention

MERGES = ("attention", "average", "max")


@dataclasses.dataclass(frozen=True)
class SegmentationConfig:
    """The mask network and its training (every field has the benchmark's default).

    Attributes:
        merge: how the scales are merged: `attention`, `average` or `max`.
        scales: input scales (1.0 first: its grid is the merge's), each in (0, 1].
        widths: channels of the trunk's convolutions: a 3x3, a 3x3 with stride 2,
            then 3x3 ones with dilation 2, 4, ... for the rest.
        hidden_units: the width of ScaleAttention's scoring layer.
        extra_supervision: a loss on every scale's own logits too.
        mask_threshold: the object's pixels above this (in [0, 1]) make its mask.
        learning_rate: Adam's.
    """

    merge: str = "attention"
    scales: tuple[float, ...] = (1.0, 0.75, 0.5)
    widths: tuple[int, ...] = (16, 32, 32, 32)
    hidden_units: int = 32
    extra_supervision: bool = True
    mask_threshold: float = 0.1
    learning_rate: float = 2e-3

    def __post_init__(self):
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}.")
        if len(self.scales) < 2 or self.scales[0] != 1.0 or not all(
                0 < s <= 1 for s in self.scales):
            raise ValueError("scales must be at least two scales in (0, 1], 1.0 first, got "
                             f"{self.scales}.")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be >= 2 positive channel counts, got {self.widths}.")
        if self.hidden_units < 1:
            raise ValueError(f"hidden_units must be >= 1, got {self.hidden_units}.")
        if not 0 <= self.mask_threshold < 1:
            raise ValueError(f"mask_threshold must be in [0, 1), got {self.mask_threshold}.")


def object_masks(images, boxes, threshold: float):
    """The object's mask: pixels above `threshold` inside its box.

    Args:
        images: `(batch, H, W, 1)` floats in [0, 1] (or uint8: compared with
            `threshold * 255`).
        boxes: `(batch, 4)` normalised `(ymin, xmin, ymax, xmax)`.

    Returns:
        float32 `(batch, H, W, 1)` of 0 and 1.
    """
    images = tf.convert_to_tensor(images)
    limit = threshold * 255.0 if images.dtype == tf.uint8 else threshold
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    boxes = tf.cast(boxes, tf.float32)
    # Pixel i is inside [ymin, ymax) when its index is in [round(ymin * H), round(ymax * H)).
    rows = tf.cast(tf.range(height), tf.float32)[None, :]
    cols = tf.cast(tf.range(width), tf.float32)[None, :]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    in_rows = (rows >= tf.round(boxes[:, :1] * h)) & (rows < tf.round(boxes[:, 2:3] * h))
    in_cols = (cols >= tf.round(boxes[:, 1:2] * w)) & (cols < tf.round(boxes[:, 3:4] * w))
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    ink = tf.cast(images[..., 0], tf.float32) > limit
    return tf.cast(inside & ink, tf.float32)[..., None]


def make_dataset(split: tf.data.Dataset, batch_size: int, config: SegmentationConfig, *,
                 training: bool = False, seed: int = 42) -> tf.data.Dataset:
    """Batches `(image float [0, 1], targets)` of a split of `(image, label, bbox)` examples.

    `targets` is `{"mask": mask}`, plus `{"scale_<i>": mask}` for every scale
    with `extra_supervision`.
    """
    if training:
        split = split.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)

    def to_targets(image, label, box):
        del label
        image = tf.cast(image, tf.float32) / 255.0
        mask = object_masks(image, box, config.mask_threshold)
        targets = {"mask": mask}
        if config.extra_supervision:
            targets.update({f"scale_{i}": mask for i in range(len(config.scales))})
        return image, targets

    ds = split.batch(batch_size).map(to_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _trunk(widths) -> list[keras.layers.Layer]:
    """The fully convolutional trunk run at every scale (one set of weights)."""
    layers = [keras.layers.Conv2D(widths[0], 3, padding="same", activation="relu",
                                  name="conv0"),
              keras.layers.Conv2D(widths[1], 3, strides=2, padding="same", activation="relu",
                                  name="conv1")]
    for i, width in enumerate(widths[2:], start=2):
        layers.append(keras.layers.Conv2D(width, 3, padding="same", dilation_rate=2 ** (i - 1),
                                          activation="relu", name=f"conv{i}"))
    return layers


@dataclasses.dataclass
class MaskModel:
    """`model`: canvas -> {"mask": logits (batch, S, S, 1)[, "scale_<i>": ...]};
    `weights`: canvas -> the merge's per-scale weights `(batch, g, g, scales)` on the
    merge grid (attention: ScaleAttention's; average: 1 / scales; max: one-hot of the
    scale that gives the maximum)."""

    model: keras.Model
    weights: keras.Model
    config: SegmentationConfig


def build_model(config: SegmentationConfig, canvas_size: int) -> MaskModel:
    """The multi-scale mask network for `canvas_size` x `canvas_size` x 1 canvases."""
    image = keras.Input((canvas_size, canvas_size, 1), name="image")
    grid = -(-canvas_size // 2)  # the trunk's output at scale 1 ('same', stride 2)
    trunk = _trunk(config.widths)
    head = keras.layers.Conv2D(1, 1, name="head")
    features = []
    for i, scale in enumerate(config.scales):
        size = max(1, round(canvas_size * scale))
        x = image if size == canvas_size else keras.layers.Resizing(
            size, size, interpolation="bilinear", name=f"resize_in_{i}")(image)
        for layer in trunk:
            x = layer(x)
        if x.shape[1] != grid:
            x = keras.layers.Resizing(grid, grid, interpolation="bilinear",
                                      name=f"resize_out_{i}")(x)
        features.append(x)
    logits = [head(f) for f in features]
    if config.merge == "attention":
        merged, weights = ScaleAttention(config.hidden_units, name="scale_attention")(
            features, return_attention_scores=True)
        merged = head(merged)
    else:
        stacked = keras.layers.Concatenate(name="scale_logits")(logits)  # (b, g, g, S)
        if config.merge == "average":
            merged = keras.layers.Lambda(lambda t: ops.mean(t, axis=-1, keepdims=True),
                                         name="average")(stacked)
            weights = keras.layers.Lambda(lambda t: ops.ones_like(t) / t.shape[-1],
                                          name="weights")(stacked)
        else:
            merged = keras.layers.Lambda(lambda t: ops.max(t, axis=-1, keepdims=True),
                                         name="max")(stacked)
            weights = keras.layers.Lambda(
                lambda t: ops.one_hot(ops.argmax(t, axis=-1), t.shape[-1], dtype=t.dtype),
                name="weights")(stacked)

    def upsample(x, name):
        return keras.layers.Resizing(canvas_size, canvas_size, interpolation="bilinear",
                                     name=name)(x)

    outputs = {"mask": upsample(merged, "mask")}
    if config.extra_supervision:
        outputs.update({f"scale_{i}": upsample(x, f"scale_{i}") for i, x in enumerate(logits)})
    model = keras.Model(image, outputs, name=f"mask_{config.merge}")
    return MaskModel(model, keras.Model(image, weights, name="scale_weights"), config)


@keras.saving.register_keras_serializable(package="apps.image_classification")
class MaskIoU(keras.metrics.Metric):
    """Mean over images of |pred ∩ truth| / |pred ∪ truth| (1 where both are empty).

    `y_pred` are logits (the prediction is logit > 0); `y_true` is 0/1.
    """

    def __init__(self, name="iou", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        del sample_weight
        truth = ops.reshape(ops.cast(y_true, "float32") > 0.5, (ops.shape(y_true)[0], -1))
        pred = ops.reshape(ops.cast(y_pred, "float32") > 0.0, (ops.shape(y_pred)[0], -1))
        inter = ops.sum(ops.cast(ops.logical_and(truth, pred), "float32"), axis=1)
        union = ops.sum(ops.cast(ops.logical_or(truth, pred), "float32"), axis=1)
        iou = ops.where(union > 0, inter / ops.maximum(union, 1.0), 1.0)
        self.total.assign(self.total + ops.sum(iou))
        self.count.assign(self.count + ops.cast(ops.shape(iou)[0], "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


def compile_model(mask_model: MaskModel) -> None:
    """Adam, binary cross-entropy on logits for every output, IoU on the merged mask."""
    model = mask_model.model
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(mask_model.config.learning_rate),
                  loss={name: loss for name in model.output},
                  metrics={"mask": [MaskIoU()]})


def train_and_score(config: SegmentationConfig, splits: pipeline.Splits, *, epochs: int,
                    batch_size: int = 64, seed: int = 42, verbose: int | str = 0) -> dict:
    """Trains one mask network on `splits` (with boxes) and scores it.

    Returns {"test_iou", "validation_iou", "scale_weights" (the mean weight of each
    scale over the test canvases' merge grid), "parameters", "train_seconds",
    "history"}.
    """
    if not splits.has_boxes:
        raise ValueError(f"dataset {splits.dataset!r} has no object boxes: the mask needs them "
                         "(use cluttered_fashion_mnist or cluttered_digits).")
    keras.utils.set_random_seed(seed)
    mask_model = build_model(config, splits.image_shape[0])
    compile_model(mask_model)
    train = make_dataset(splits.train, batch_size, config, training=True, seed=seed)
    validation = make_dataset(splits.validation, batch_size, config)
    test = make_dataset(splits.test, batch_size, config)
    start = time.perf_counter()
    history = mask_model.model.fit(train, validation_data=validation, epochs=epochs,
                                   verbose=verbose)
    seconds = time.perf_counter() - start
    scores = mask_model.model.evaluate(test, return_dict=True, verbose=0)
    weights = mask_model.weights.predict(test.map(lambda images, _: images), verbose=0)
    return {
        "test_iou": float(scores["mask_iou"]),
        "validation_iou": float(history.history["val_mask_iou"][-1]),
        "scale_weights": np.asarray(weights).mean(axis=(0, 1, 2)).tolist(),
        "parameters": int(mask_model.model.count_params()),
        "train_seconds": seconds,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }
