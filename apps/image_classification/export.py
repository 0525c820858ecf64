"""The SavedModel of the image classifier: encoded image bytes in, class and attention out.

Signature `serving_default`:
    inputs:  `image_bytes` string `[batch]`: JPEG, PNG, GIF or BMP files of any
             size, grayscale / RGB / RGBA (decoded, converted, resized with the
             aspect ratio kept, in the graph: `apps.common.images`).
    outputs: `probabilities` float32 `[batch, num_classes]`,
             `label` string `[batch]` (the most probable class name),
             `class_id` int32 `[batch]`,
             `attention_map` float32 `[batch, h, w]` (sums to 1 over h x w; what it
             is depends on the variant, see `model.py`).
Signature `predict_images` takes already decoded float32 `images`
`[batch, H, W, C]` in [0, 1] and gives the same outputs; another shape or
channel count, a NaN or Inf, or values outside [0, 1] (a 0-255 image) fail
with an `InvalidArgumentError` naming `images`.

Limits: at most 256 images per request (an `InvalidArgumentError` naming the
input beyond that).

With `invert_light_background=True` (the digit models: MNIST digits are light
on dark) a decoded grayscale image whose mean is above 0.5 (dark ink on light
paper, a scan) is inverted before classification.

Bad inputs: empty, non-image, truncated or corrupt bytes and images declaring
more than `max_pixels` pixels fail with an `InvalidArgumentError` whose message
names `image_bytes[i]`; a 1x1 image is a defined (uniform) input.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common import export as common_export
from apps.common import images as common_images


class ClassifierModule(common_export.ServingModule):
    """A `tf.Module` holding the explainer model and its preprocessing.

    Args:
        explainer: Keras model images -> (logits, attention_map).
        class_names: one name per class (the `label` output).
        image_shape: `(H, W, C)` the model takes (C is 1 or 3).
        invert_light_background: invert grayscale inputs whose mean is above 0.5.
        max_pixels: the largest declared image size accepted.
    """

    def __init__(self, explainer, class_names, image_shape, invert_light_background=False,
                 max_pixels=common_images.DEFAULT_MAX_PIXELS, name=None):
        super().__init__(name=name)
        self.explainer = explainer
        self.height, self.width, self.channels = (int(d) for d in image_shape)
        if self.channels not in (1, 3):
            raise ValueError(f"Models taking {self.channels} channels cannot be exported; "
                             "1 or 3 are supported.")
        self.class_names = tf.constant(list(class_names))
        self.invert_light_background = bool(invert_light_background)
        self.max_pixels = int(max_pixels)
        self.serving_default = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )
        self.predict_images = tf.function(
            self._predict,
            input_signature=[tf.TensorSpec([None, self.height, self.width, self.channels],
                                           tf.float32, name="images")],
        )

    def _serve(self, image_bytes):
        image_bytes = self.check_batch(image_bytes, "image_bytes")
        images = common_images.decode_images(
            image_bytes, self.height, self.width, self.channels, keep_aspect=True,
            max_pixels=self.max_pixels,
        )
        if self.invert_light_background:
            light = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True) > 0.5
            images = tf.where(light, 1.0 - images, images)
        return self._classify(images, "image_bytes")

    def _predict(self, images):
        images = self.check_batch(images, "images")
        images = common_images.check_images(images, self.height, self.width, self.channels)
        return self._classify(images, "images")

    def _classify(self, images, input_name):
        logits, attention_map = self.explainer(images, training=False)
        logits = self.check_finite(tf.cast(logits, tf.float32), input_name)
        probabilities = tf.nn.softmax(logits, axis=-1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.class_names, class_id),
            "class_id": class_id,
            "attention_map": tf.cast(attention_map, tf.float32),
        }


    def signatures(self):
        return {"serving_default": self.serving_default, "predict_images": self.predict_images}

    def warmup_requests(self):
        pngs = [common_export.warmup_png(), common_export.warmup_png(17, 90, seed=1)]
        images = np.random.default_rng(0).random((2, self.height, self.width, self.channels))
        return [
            ("serving_default", {"image_bytes": np.array(pngs, dtype=object)}),
            ("predict_images", {"images": images.astype(np.float32)}),
        ]


def export(explainer, class_names, image_shape, base: str, invert_light_background=False,
           version: int | None = None) -> str:
    """Writes `<base>/<version>/` atomically; returns that directory."""
    module = ClassifierModule(explainer, class_names, image_shape, invert_light_background)
    return common_export.export(module, base, version)
