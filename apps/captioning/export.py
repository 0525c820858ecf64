"""The captioning SavedModel: encoded image bytes in; caption, words and attention maps out.

Signature `serving_default`:
    inputs:  `image_bytes` string `[batch]`: JPEG, PNG, GIF or BMP files of any
             size, grayscale / RGB / RGBA (decoded, composited over black,
             resized with the aspect ratio kept and padded, in the graph:
             `apps.common.images`).
    outputs: `caption` string `[batch]`: the caption (beam search);
             `tokens` string `[batch, T_out]`: its words, then "[END]" at the
             step where the decoder stopped, then "" (padding);
             `attention_weights` float32 `[batch, T_out, H', W']`: the attention
             map over the encoder's grid with which each token was emitted (each
             sums to 1; zeros at padding), `T_out = max_length - 1`.
With `model.variant="semantic_attention"` (`semantic.py`) both signatures also return
             `attributes` string `[batch, k]`: the top-k predicted attribute
             words, best first; `attribute_scores` float32 `[batch, k]`: their
             sigmoid scores; `input_attribute_attention` and
             `output_attribute_attention` float32 `[batch, T_out, k]`: the input
             and output attention over those attributes at each emitted token
             (each row sums to 1; zeros at padding).
Signature `caption_images` takes decoded float32 `images` `[batch, S, S, 3]` in
[0, 1] and gives the same outputs; another shape, a NaN or Inf, or values
outside [0, 1] fail with an `InvalidArgumentError` naming `images`.

Limits: at most 256 images per request (an `InvalidArgumentError` naming the
input beyond that).

Bad inputs: empty, non-image, truncated or corrupt bytes, and images declaring
more than `max_pixels` pixels fail with an `InvalidArgumentError` whose message
names `image_bytes[i]` (one bad item fails its request); a 1x1 image is a
defined (uniform) input; a batch of zero images gives zero rows.

It needs TensorFlow only:

    model = tf.saved_model.load("saved_models/captioning/1")
    out = model.signatures["serving_default"](image_bytes=tf.constant([png_bytes]))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common import export as common_export
from apps.common import images as common_images
from apps.common import text as common_text


class CaptionerModule(common_export.ServingModule):
    """The captioner, its tokenizer and image decoding, with the serving signatures.

    Args:
        model: a built `ShowAttendTell`.
        tokenizer: the `apps.common.text.Tokenizer` of its vocabulary.
        beam_width: beam search width (1 = greedy).
        max_pixels: the largest declared image accepted.
    """

    def __init__(self, model, tokenizer: common_text.Tokenizer, beam_width: int = 3,
                 max_pixels: int = common_images.DEFAULT_MAX_PIXELS, name=None):
        super().__init__(name=name)
        self.model = model
        self.tokenizer = tokenizer
        self.beam_width = int(beam_width)
        self.max_pixels = int(max_pixels)
        self.image_size = int(model.config.image_size)
        # The semantic-attention captioner (semantic.py) also returns its attributes.
        self.semantic = getattr(model, "attribute_ids", None) is not None
        size = self.image_size
        # Plain TensorFlow ops and tf.while_loop inside: nothing for autograph to convert.
        self.serving_default = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
            autograph=False,
        )
        self.caption_images = tf.function(
            self._caption,
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")],
            autograph=False,
        )
        # One traced decoder behind both signatures.
        self._caption_decoded = tf.function(
            self._caption_checked,
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)], autograph=False,
        )

    def _serve(self, image_bytes):
        image_bytes = self.check_batch(image_bytes, "image_bytes")
        images = common_images.decode_images(
            image_bytes, self.image_size, self.image_size, 3, keep_aspect=True,
            max_pixels=self.max_pixels,
        )
        return self._caption_decoded(images)

    def _caption(self, images):
        size = self.image_size
        images = self.check_batch(images, "images")
        return self._caption_decoded(common_images.check_images(images, size, size, 3))

    def _caption_checked(self, images):
        # An empty batch skips the model (TensorFlow's CPU convolutions mishandle zero rows).
        return tf.cond(tf.shape(images)[0] > 0, lambda: self._decode(images), self._empty)

    def _decode(self, images):
        result = self.model.decode(images, beam_width=self.beam_width)
        sequences = result.sequences
        out = {
            "caption": self.tokenizer.detokenize(sequences),
            "tokens": self.tokenizer.lookup_tokens(sequences),
            "attention_weights": tf.cast(result.attention, tf.float32),
        }
        if self.semantic:
            out.update(
                attributes=self.tokenizer.lookup_tokens(result.attributes),
                attribute_scores=tf.cast(result.attribute_scores, tf.float32),
                input_attribute_attention=tf.cast(result.input_attention, tf.float32),
                output_attribute_attention=tf.cast(result.output_attention, tf.float32),
            )
        return out

    def _empty(self):
        steps = self.model.config.max_length - 1
        height, width = self.model.grid_shape
        out = {
            "caption": tf.zeros([0], tf.string),
            "tokens": tf.zeros([0, steps], tf.string),
            "attention_weights": tf.zeros([0, steps, height, width], tf.float32),
        }
        if self.semantic:
            k = self.model.top_k
            out.update(
                attributes=tf.zeros([0, k], tf.string),
                attribute_scores=tf.zeros([0, k], tf.float32),
                input_attribute_attention=tf.zeros([0, steps, k], tf.float32),
                output_attribute_attention=tf.zeros([0, steps, k], tf.float32),
            )
        return out


    def signatures(self):
        return {"serving_default": self.serving_default, "caption_images": self.caption_images}

    def warmup_requests(self):
        pngs = [common_export.warmup_png(), common_export.warmup_png(120, 80, seed=1)]
        size = self.image_size
        images = np.random.default_rng(0).random((1, size, size, 3)).astype(np.float32)
        return [
            ("serving_default", {"image_bytes": np.array(pngs, dtype=object)}),
            ("caption_images", {"images": images}),
        ]


def save(module: CaptionerModule, base: str, version: int | None = None) -> str:
    """Writes `module` to `<base>/<version>/` atomically; returns that directory."""
    return common_export.export(module, base, version)


def export(model, tokenizer, base: str, beam_width: int = 3, version: int | None = None) -> str:
    """Exports `model` and `tokenizer` to `<base>/<version>/` atomically; returns that directory."""
    return save(CaptionerModule(model, tokenizer, beam_width=beam_width), base, version)
