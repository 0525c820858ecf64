"""The sentiment SavedModel: raw text in, label, probabilities and attended words out.

`serving_default`:

- input `text`: string `[batch]` (any bytes: invalid UTF-8 is replaced, not an error);
- outputs `probabilities` float32 `[batch, 2]` (negative, positive),
  `label` string `[batch]` ("negative" / "positive"),
  `attention_weights` float32 `[batch, T]` (0 at padding; a row sums to 1, or
  to 0 for a text without tokens), `tokens` string `[batch, T]` ("" at padding),
  with `T = max_length`; longer texts are truncated to their first T tokens.

Limits: at most 256 texts per request (more is an `InvalidArgumentError` naming
`text`); only the first 1 MiB of each text is read (`MAX_TEXT_BYTES`). NUL and
other control characters, and Unicode spaces (no-break, em, ...), separate
words like a space. A text of no words (empty, spaces only) gets probabilities
from the model's empty input, all-zero attention and no tokens.

The `han` variant (`apps.sentiment.hierarchical`) reads a document as up to
`max_sentences` sentences of up to `max_sentence_length` words, split in the
graph: its `tokens` and `attention_weights` are `[batch, S, W]` (a word's share
of the document: word weight x sentence weight), and it also returns
`word_weights` `[batch, S, W]` (summing to 1 within each sentence) and
`sentence_weights` `[batch, S]` (summing to 1 over the sentences; 0 at
padding). Every extra output of the explainer is returned, 0 at padding.
A model with the lexicon prior (`model.lexicon_prior`) also returns
`lexicon_score` float32 `[batch]`: the lexicon's own verdict in (-1, 1)
(`apps.sentiment.lexicon.LexiconScore`), 0 for a text without rated words.
Models trained on `spam_assassin` label "ham" / "spam".

The `bert` variant (the default) tokenizes as its checkpoint's BERT tokenizer does,
in the graph (`apps.common.bert.tokenizer`): `tokens` are WordPiece pieces between
`[CLS]` and `[SEP]`, `T = model.pieces` (128; longer texts keep their first 126
pieces), accents are stripped and text lower-cased, invalid UTF-8 and control
characters are dropped (BERT's cleaning, not U+FFFD), and a word no piece covers
(an emoji glued to a word, a word of more than 100 characters) is one `[UNK]`. A
text of no words is `[CLS] [SEP]`: its probabilities are the model's for that, and
its attention falls on those two.

It needs TensorFlow only:

    model = tf.saved_model.load("saved_models/sentiment/1")
    out = model.signatures["serving_default"](text=tf.constant(["What a fine film."]))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common import export as common_export
from apps.common import text as common_text
from apps.sentiment.builder import LABELS


class SentimentModule(common_export.ServingModule):
    """Tokenizer + explainer model + label names, with a `serve` signature function."""

    def __init__(self, tokenizer: common_text.Tokenizer, explainer, labels=LABELS):
        super().__init__(name="sentiment")
        self.tokenizer = tokenizer
        self.explainer = explainer
        self.label_names = tf.constant(list(labels))
        self.max_length = tf.constant(tokenizer.max_length, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        text = self.check_batch(text, "text")
        tokens, ids = self.tokenizer.tokenize(common_text.clip_bytes(text))
        out = self.explainer(ids, training=False)
        probabilities = self.check_finite(tf.cast(out["probabilities"], tf.float32), "text")
        label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
        result = {"probabilities": probabilities, "label": label, "tokens": tokens}
        for key, value in out.items():  # attention_weights, and han's word/sentence weights
            if key != "probabilities":
                value = tf.cast(value, tf.float32)
                real = tf.reduce_any(ids > 0, axis=list(range(len(value.shape), len(ids.shape))))
                result[key] = tf.where(real, value, tf.zeros_like(value))
        return result

    def signatures(self):
        return {"serving_default": self.serve}

    def warmup_requests(self):
        # A normal text, and the kinds of bad input every loader must answer.
        long = " ".join(["A gripping, beautifully acted film. It drags a little!"] * 400)
        texts = ["a gripping, beautifully acted film", "", " \t\n\u00a0 ",
                 b"\xff\xfe not UTF-8 \xc3\x28 at all", long]
        texts = [t if isinstance(t, bytes) else t.encode("utf-8") for t in texts]
        return [("serving_default", {"text": np.array(texts, dtype=object)})]


def export(tokenizer, explainer, base: str, version: int | None = None,
           labels=LABELS) -> str:
    """Writes `<base>/<version>/` atomically; returns that directory. `labels`: the names
    of classes 0 and 1 (`pipeline.label_names(dataset)`)."""
    return common_export.export(SentimentModule(tokenizer, explainer, labels), base, version)
