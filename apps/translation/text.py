"""Unicode-aware in-graph tokenization for translation (accented and non-Latin scripts).

`apps.common.text` marks as punctuation everything that is not RE2's `\\w`,
which is ASCII-only: it splits `fenêtre` into `fen ê tre` and every Hindi
word into letters. This module keeps the same conventions (lower-casing,
punctuation as separate tokens, apostrophes inside words, invalid UTF-8
replaced) with Unicode classes (`\\pL` letters, `\\pN` digits, `\\pM` combining
marks) and Unicode spaces (`\\p{Z}`: the no-break spaces French puts before
`:` and inside `« »`). `Tokenizer` here is `apps.common.text.Tokenizer` with
that splitting; everything else (ids, padding, START/END, detokenize,
save/load) is inherited.
"""

from __future__ import annotations

import collections

import tensorflow as tf

from apps.common import text as common_text

PAD, UNK, START, END = common_text.PAD, common_text.UNK, common_text.START, common_text.END

# Any single character that is not a letter, digit, combining mark, underscore,
# space or apostrophe; or an apostrophe that ends a word.
_TOKEN_PATTERN = r"([^\pL\pN\pM_\s'’]|['’](?:\s|$))"


def standardize(text: tf.Tensor, lowercase: bool = True) -> tf.Tensor:
    """Repairs UTF-8, unifies spaces, lower-cases, and spaces out punctuation."""
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.regex_replace(text, r"<[^>]{0,40}>", " ")  # stray HTML tags
    text = tf.strings.regex_replace(text, r"[\p{Z}\s]+", " ")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _TOKEN_PATTERN, r" \1 ")
    return tf.strings.strip(text)


def split_words(text: tf.Tensor, lowercase: bool = True) -> tf.RaggedTensor:
    """`[batch]` strings -> ragged `[batch, (tokens)]`."""
    return tf.strings.split(standardize(text, lowercase))


def build_vocabulary(texts, max_size: int, min_count: int = 1, reserved=(PAD, UNK),
                     lowercase: bool = True, batch: int = 4096) -> list[str]:
    """The `max_size` most frequent tokens seen >= `min_count` times, after `reserved` ones."""
    counts: collections.Counter = collections.Counter()
    texts = list(texts)
    for i in range(0, len(texts), batch):
        tokens = split_words(tf.constant(texts[i : i + batch]), lowercase).flat_values
        counts.update(t.decode("utf-8") for t in tokens.numpy())
    ranked = sorted((t for t, c in counts.items() if c >= min_count and t not in reserved),
                    key=lambda t: (-counts[t], t))
    return list(reserved) + ranked[: max(0, max_size - len(reserved))]


class Tokenizer(common_text.Tokenizer):
    """`apps.common.text.Tokenizer` with Unicode-aware splitting (see the module docstring)."""

    def tokenize(self, text: tf.Tensor):
        """`[batch]` strings -> (`tokens` `[batch, max_length]` strings, `ids` int32)."""
        text = tf.convert_to_tensor(text, tf.string)
        words = split_words(text, self.lowercase)
        if self.bos_eos:
            words = words[:, : self.max_length - 2]
            batch = tf.shape(text)[0]
            words = tf.concat([tf.fill([batch, 1], START), words, tf.fill([batch, 1], END)],
                              axis=1)
        else:
            words = words[:, : self.max_length]
        tokens = words.to_tensor(default_value="", shape=[None, self.max_length])
        ids = tf.ragged.map_flat_values(self._to_id.lookup, words)
        ids = ids.to_tensor(default_value=0, shape=[None, self.max_length])
        return tokens, tf.cast(ids, tf.int32)
