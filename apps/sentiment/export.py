"""The sentiment SavedModel: raw text in, label, probabilities and attended words out.

`serving_default`:

- input `text`: string `[batch]` (any bytes: invalid UTF-8 is replaced, not an error);
- outputs `probabilities` float32 `[batch, 2]` (negative, positive),
  `label` string `[batch]` ("negative" / "positive"),
  `attention_weights` float32 `[batch, T]` (0 at padding; a row sums to 1, or
  to 0 for a text without tokens), `tokens` string `[batch, T]` ("" at padding),
  with `T = max_length`; longer texts are truncated to their first T tokens.

It needs TensorFlow only:

    model = tf.saved_model.load("saved_models/sentiment/1")
    out = model.signatures["serving_default"](text=tf.constant(["What a fine film."]))
"""

from __future__ import annotations

import tensorflow as tf

from apps.common import export as common_export
from apps.common import text as common_text
from apps.sentiment import data as sentiment_data


class SentimentModule(tf.Module):
    """Tokenizer + explainer model + label names, with a `serve` signature function."""

    def __init__(self, tokenizer: common_text.Tokenizer, explainer, labels=sentiment_data.LABELS):
        super().__init__(name="sentiment")
        self.tokenizer = tokenizer
        self.explainer = explainer
        self.label_names = tf.constant(list(labels))
        self.max_length = tf.constant(tokenizer.max_length, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        tokens, ids = self.tokenizer.tokenize(text)
        out = self.explainer(ids, training=False)
        probabilities = tf.cast(out["probabilities"], tf.float32)
        weights = tf.cast(out["attention_weights"], tf.float32)
        weights = tf.where(ids > 0, weights, tf.zeros_like(weights))
        label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
        return {
            "probabilities": probabilities,
            "label": label,
            "attention_weights": weights,
            "tokens": tokens,
        }


def export(tokenizer, explainer, base: str, version: int | None = None) -> str:
    """Writes `<base>/<version>/` atomically; returns that directory."""
    module = SentimentModule(tokenizer, explainer)
    warmup = [("serving_default", {"text": ["a gripping, beautifully acted film", ""]})]
    return common_export.save_module(
        module, {"serving_default": module.serve}, base, version=version, warmup=warmup
    )
