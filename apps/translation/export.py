"""The translation SavedModel: raw English text in, translation and its alignment out.

`serving_default`:

- input `text`: string `[batch]` (any bytes: invalid UTF-8 is replaced, not an error);
- outputs
  - `translation`: string `[batch]`, detokenized (lower-cased, as the tokenizer
    sees text); "" for an input without tokens (empty or whitespace-only text);
  - `attention_weights`: float32 `[batch, T_out, T_in]`, the attention of the
    chosen beam hypothesis: row t is what the decoder looked at to emit target
    token t (zeros after the end, and for the seq2seq variant, which has none);
  - `source_tokens`: string `[batch, T_in]` ("" at padding);
  - `target_tokens`: string `[batch, T_out]`, the emitted tokens, `[END]`
    included, "" after it;

with `T_in` = the source length limit (`model.max_source_length`; longer
inputs are cut there, never an error) and `T_out` = the output length limit
(`model.max_target_length`). Beam width and length penalty were fixed at export.

Tokens depend on the vocabulary the model was trained with:

- subword (the default): tokens are WordPiece pieces of one joint vocabulary
  (`apps.common.subword`; `##` marks a piece that continues a word), so the
  attention is per target piece over source pieces, and `T_in`, `T_out` count
  pieces. A word never seen in training comes out as pieces (down to its UTF-8
  bytes, `<0xE2>`, `##<0x82>`, ...), never `[UNK]`; `translation` is the
  pieces joined back into words in the graph. `unk_replace` has no effect.
- word (`--config=vocabulary=word`): tokens are words and punctuation marks;
  unknown source words are `[UNK]` to the model, and an emitted `[UNK]` is
  replaced in `translation` by the source word it attended to most (names and
  numbers are mostly copied; Luong et al. 2015) unless exported with
  `--config=unk_replace=false` (`target_tokens` keep the `[UNK]`).

It needs TensorFlow only:

    model = tf.saved_model.load("saved_models/translation/1")
    out = model.signatures["serving_default"](text=tf.constant(["Open the file"]))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common import export as common_export
from apps.common import subword
from apps.common import text as common_text
from apps.translation import text as translation_text
from keras_attention.decoding import beam_search, greedy_search


def postprocess(text: tf.Tensor) -> tf.Tensor:
    """Undoes the tokenizer's spacing around punctuation: `a , b` -> `a, b`, `a - b` -> `a-b`.

    Guillemets keep their spaces (French typography; sacreBLEU's 13a tokenizer
    does not split them off words).
    """
    for _ in range(2):  # Overlapping matches (`a - b - c`) need a second pass.
        text = tf.strings.regex_replace(text, r"(\pN) ([.,]) (\pN)", r"\1\2\3")
        text = tf.strings.regex_replace(text, r"([\pL\pN]) - ([\pL\pN])", r"\1-\2")
    text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}])", r"\1")
    text = tf.strings.regex_replace(text, r"([(\[{¿¡]) ", r"\1")
    text = tf.strings.regex_replace(text, r"([\pL\pN]) / ([\pL\pN])", r"\1/\2")
    return tf.strings.strip(text)


def join_tokens(tokens: tf.Tensor) -> tf.Tensor:
    """`[batch, T]` target token strings -> `[batch]` text; "", [START], [END] are dropped."""
    tokens = tf.convert_to_tensor(tokens, tf.string)
    keep = (tokens != "") & (tokens != translation_text.START) & (tokens != translation_text.END)
    words = tf.ragged.boolean_mask(tokens, keep)
    return postprocess(tf.strings.reduce_join(words, axis=1, separator=" "))


def replace_unknown(target_tokens, attention, source_tokens):
    """Each emitted [UNK] becomes the source token it attended to most (Luong et al. 2015).

    Rows without attention (all zeros, e.g. the seq2seq variant) are left as they are.
    """
    position = tf.argmax(attention, axis=-1, output_type=tf.int32)  # (batch, T_out)
    aligned = tf.gather(source_tokens, position, batch_dims=1)
    usable = (target_tokens == translation_text.UNK) & (tf.reduce_max(attention, -1) > 0)
    return tf.where(usable & (aligned != ""), aligned, target_tokens)


class TranslationModule(common_export.ServingModule):
    """Tokenizers + model + beam search, with the `translate` signature function.

    Args:
        model: an `RNNTranslator` or `TransformerTranslator` (has `encode`,
            `initial_state`, `step`).
        source_tokenizer, target_tokenizer: `apps.translation.text.Tokenizer`s, or
            `apps.common.subword.SubwordTokenizer`s (the target one with START/END).
        beam_width: 1 = greedy search.
        length_penalty: α of Wu et al. (2016).
        max_output_length: the most target tokens emitted (END included).
        unk_replace: in `translation`, replace each emitted [UNK] by the source
            token it attended to most (`target_tokens` keep the [UNK]); word
            vocabularies only (a subword model has no [UNK] to replace).
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, beam_width=4,
                 length_penalty=0.6, max_output_length=32, unk_replace=True):
        super().__init__(name="translation")
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.beam_width = int(beam_width)
        self.length_penalty_alpha = float(length_penalty)
        self.max_output_length = int(max_output_length)
        #: Whether the tokens are subword pieces (decoded by the target tokenizer).
        self.subword = isinstance(target_tokenizer, subword.SubwordTokenizer)
        self.unk_replace = bool(unk_replace) and not self.subword
        self.settings = {
            "beam_width": tf.constant(self.beam_width),
            "length_penalty": tf.constant(self.length_penalty_alpha),
            "max_output_length": tf.constant(self.max_output_length),
            "unk_replace": tf.constant(self.unk_replace),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate(self, text):
        text = self.check_batch(text, "text")
        source_tokens, source_ids = self.source_tokenizer.tokenize(common_text.clip_bytes(text))
        batch = tf.shape(source_ids)[0]
        has_tokens = tf.reduce_any(source_ids != 0, axis=1)
        state = self.model.initial_state(self.model.encode(source_ids, training=False))
        start = tf.fill([batch], self.target_tokenizer.start_id)
        end = self.target_tokenizer.end_id
        step = self.model.decoding_step()  # once per request, outside the loop
        if self.beam_width == 1:
            result = greedy_search(step, state, start, end, self.max_output_length,
                                   length_penalty=self.length_penalty_alpha)
        else:
            result = beam_search(step, state, start, end, self.max_output_length,
                                 beam_width=self.beam_width,
                                 length_penalty=self.length_penalty_alpha)
        sequences = tf.where(has_tokens[:, None], result.sequences, 0)
        attention = result.attention * tf.cast(has_tokens, tf.float32)[:, None, None]
        target_tokens = self.target_tokenizer.lookup_tokens(sequences)
        if self.subword:
            translation = postprocess(self.target_tokenizer.detokenize(sequences))
        else:
            words = target_tokens
            if self.unk_replace:
                words = replace_unknown(target_tokens, attention, source_tokens)
            translation = join_tokens(words)
        return {
            "translation": translation,
            "attention_weights": attention,
            "source_tokens": source_tokens,
            "target_tokens": target_tokens,
        }


    def signatures(self):
        return {"serving_default": self.translate}

    def warmup_requests(self):
        texts = [t if isinstance(t, bytes) else t.encode("utf-8") for t in WARMUP_TEXTS]
        return [("serving_default", {"text": np.array(texts, dtype=object)})]


WARMUP_TEXTS = (
    "Open the file", "Show all windows", "", "   \t ",
    # 60 words: the longest inputs the model is judged on (issue 17).
    "The program reads the configuration file given on the command line, checks every "
    "option it finds there against the list of known names, and writes a short report to "
    "the standard error stream when an option is unknown, misspelled, given twice, or "
    "has a value that cannot be parsed as a number, so the file can be fixed in time.",
    b"open \xff\xfe the \xc3 file",  # not UTF-8
)


def export(module: TranslationModule, base: str, version: int | None = None) -> str:
    """Writes `<base>/<version>/` atomically (with TF Serving warmup requests); returns it."""
    return common_export.export(module, base, version)
