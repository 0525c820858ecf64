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
`[batch, H, W, C]` in [0, 1] and gives the same outputs.

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


class ClassifierModule(tf.Module):
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
        images = common_images.decode_images(
            image_bytes, self.height, self.width, self.channels, keep_aspect=True,
            max_pixels=self.max_pixels,
        )
        if self.invert_light_background:
            light = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True) > 0.5
            images = tf.where(light, 1.0 - images, images)
        return self._predict(images)

    def _predict(self, images):
        logits, attention_map = self.explainer(images, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.class_names, class_id),
            "class_id": class_id,
            "attention_map": tf.cast(attention_map, tf.float32),
        }


def export(explainer, class_names, image_shape, base: str, invert_light_background=False,
           version: int | None = None) -> str:
    """Writes `<base>/<version>/` atomically; returns that directory."""
    module = ClassifierModule(explainer, class_names, image_shape, invert_light_background)
    signatures = {
        "serving_default": module.serving_default,
        "predict_images": module.predict_images,
    }
    warmup = [("serving_default", {"image_bytes": np.array(
        [common_export.warmup_png(), common_export.warmup_png(17, 90, seed=1)], dtype=object)})]
    return common_export.save_module(module, signatures, base, version, warmup=warmup)
