"""In-graph text processing shared by the text apps (sentiment, translation).

`standardize` and `split_words` are TensorFlow ops, so the same code builds the
vocabulary in Python and tokenizes raw strings inside the exported SavedModel:
training and serving can never disagree. Bytes that are not valid UTF-8 are
replaced (U+FFFD), never an error. No Unicode normalization (NFKC or other) is
applied: see `standardize`.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import unicodedata

import tensorflow as tf

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"

# Words (letters, digits, apostrophes inside words) and single punctuation marks.
# RE2's `\w` is ASCII-only: this splits "fenêtre" into "fen ê tre".
_TOKEN_PATTERN = r"([^\w\s'’]|['’](?:\s|$))"
# The same with Unicode classes (`\pL` letters, `\pN` digits, `\pM` combining
# marks): for accented and non-Latin scripts (translation).
_UNICODE_TOKEN_PATTERN = r"([^\pL\pN\pM_\s'’]|['’](?:\s|$))"


#: Bytes of each text a SavedModel reads (`clip_bytes`); the rest is ignored.
MAX_TEXT_BYTES = 1 << 20


def clip_bytes(text: tf.Tensor, limit: int = MAX_TEXT_BYTES) -> tf.Tensor:
    """The first `limit` bytes of each string (a character cut in two becomes U+FFFD)."""
    return tf.strings.substr(text, 0, limit)


def token_ids(tokenizer, texts, chunk_size: int = 4096) -> tf.Tensor:
    """`tokenizer.tokenize(texts)[1]` for a whole in-memory split, `chunk_size` texts a call.

    For the apps' tf.data pipelines: ids made once, before the pipeline, cost nothing per
    epoch, and a pipeline without a tokenizer inside starts an epoch at once (with one, each
    epoch's iterator instantiated the tokenizer's graph again, which dominated a training
    run of a few steps with the subword tokenizer). The tokenizers are deterministic, so the
    ids are those the pipeline made per batch.
    """
    texts = list(texts)
    chunks = [tokenizer.tokenize(tf.constant(texts[i:i + chunk_size], tf.string))[1]
              for i in range(0, len(texts), chunk_size)]
    return tf.concat(chunks or [tokenizer.tokenize(tf.constant([], tf.string))[1]], axis=0)


def whole_tokens_pattern(tokens) -> str:
    """An RE2 pattern that fully matches exactly `tokens` (for `standardize`'s `keep_whole`).

    Raises ValueError for an empty token or one with a space in it (they are
    matched one whitespace-separated word at a time)."""
    tokens = sorted(set(tokens), key=lambda t: (-len(t), t))
    bad = [t for t in tokens if not t or re.search(r"\s", t)]
    if bad:
        raise ValueError(f"keep_whole tokens must be non-empty and without spaces; got {bad[:5]}")
    return "|".join(re.escape(t) for t in tokens)


def standardize(text: tf.Tensor, lowercase: bool = True, unicode_words: bool = False,
                keep_whole: str | None = None) -> tf.Tensor:
    """Repairs UTF-8, lower-cases and spaces out punctuation.

    Invalid UTF-8 becomes U+FFFD. Control characters (NUL included: `tf.strings.lower`
    would cut the text there) and every Unicode space (no-break, em, ideographic, ...)
    separate words like a space. The result is the words separated by single
    spaces, with none at either end (`apps.common.subword` round-trips it exactly).

    `keep_whole` (a `whole_tokens_pattern`): a whitespace-separated word (after
    lower-casing) that it matches in full is kept as it is, not split at its
    punctuation: emoticons such as ":)" or ":-(" stay one token, as VADER reads them.

    No Unicode normalization is applied, deliberately: NFKC is not a stock
    TensorFlow op (tensorflow-text's `normalize_utf8` is a custom op that TF
    Serving lacks), and the exported vocabularies were built on this output. So
    "…" stays one token (not "..."), "ﬁ" is not "fi", full-width "Ａ" is not "a"
    (lower-casing gives "ａ"), and "é" precomposed and "e" + U+0301 stay different.
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
    text = tf.strings.regex_replace(text, r"[\p{Z}\p{Cc}\s]+", " ")
    text = tf.strings.regex_replace(text, r"<[^>]{0,40}>", " ")  # stray HTML tags
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    pattern = _UNICODE_TOKEN_PATTERN if unicode_words else _TOKEN_PATTERN

    def space_out(t):
        t = tf.strings.regex_replace(t, pattern, r" \1 ")
        t = tf.strings.regex_replace(t, " {2,}", " ")  # left by spacing out punctuation
        return tf.strings.strip(t)

    if not keep_whole:
        return space_out(text)
    words = tf.strings.split(text)
    flat = words.flat_values
    # Word by word, the spacing gives what it gives on the whole text (no word is empty,
    # and none spaces out to nothing).
    flat = tf.where(tf.strings.regex_full_match(flat, keep_whole), flat, space_out(flat))
    return tf.strings.reduce_join(words.with_flat_values(flat), axis=-1, separator=" ")


# BERT's basic tokenizer (Devlin et al. 2019; `BertStandardizer`). Punctuation: ASCII
# !-/ :-@ [-` {-~ and every Unicode P* character, each one a word of its own.
_BERT_PUNCTUATION = r"([!-/:-@\[-`{-~\pP])"
# CJK ideographs: spaced out one by one, as BERT's `_tokenize_chinese_chars`.
_BERT_CJK = (r"([\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
             r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}])")


@functools.lru_cache(maxsize=1)
def _accent_table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every character whose canonical decomposition (NFD) differs from it, and that
    decomposition without its nonspacing marks (Mn): what BERT's accent stripping makes
    of it ("é" -> "e", "ﬃ" is unchanged: NFD is canonical only)."""
    keys, values = [], []
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        decomposed = unicodedata.normalize("NFD", char)
        if decomposed == char:
            continue
        keys.append(char)
        values.append("".join(c for c in decomposed if unicodedata.category(c) != "Mn"))
    return tuple(keys), tuple(values)


class BertStandardizer(tf.Module):
    """BERT's basic tokenizer (uncased) as stock TensorFlow ops: raw strings -> words
    separated by single spaces.

    As Hugging Face's `BertNormalizer` + `BertPreTokenizer` with lower-casing and accent
    stripping (the `bert-base-uncased` family; tested against the `tokenizers` library):
    invalid UTF-8 becomes U+FFFD, which is then removed with NUL and every other
    character of Unicode's "other" categories (control, format, private use, surrogate;
    tab, newline and carriage return are spaces); Unicode separators (Z*) are spaces;
    accents are stripped (NFD, nonspacing marks dropped; the decompositions come from
    Python's `unicodedata`, held in a lookup table in the graph), then the text is
    lower-cased; every CJK ideograph and every punctuation mark (ASCII `!-/:-@[-`{-~` and
    Unicode P*) is a word of its own. Unassigned code points (Cn), which the library also
    removes, are kept: RE2 has no class for them.

    `max_chars`: characters of the cleaned text (controls removed, spaces collapsed) that
    are read; the rest is ignored (None: all; callers that keep a fixed number of pieces
    pass a bound).
    """

    def __init__(self, max_chars: int | None = None, name=None):
        super().__init__(name=name)
        self.max_chars = max_chars
        keys, values = _accent_table()
        self._accents = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
            default_value="\x00")  # NUL never reaches the table: cleaning removed it

    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace",
                                            replacement_char=0xFFFD)
        text = tf.strings.regex_replace(text, r"[\t\n\r]", " ")
        text = tf.strings.regex_replace(text, r"[\p{C}\x{FFFD}]", "")
        text = tf.strings.regex_replace(text, r"[\p{Z} ]+", " ")
        if self.max_chars is not None:
            text = tf.strings.substr(text, 0, self.max_chars, unit="UTF8_CHAR")
        chars = tf.strings.unicode_split(text, "UTF-8")
        stripped = self._accents.lookup(chars.flat_values)
        flat = tf.where(stripped == "\x00", chars.flat_values, stripped)
        text = tf.strings.reduce_join(chars.with_flat_values(flat), axis=-1)
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        # ICU lower-cases a word-final capital sigma to "ς"; BERT's tokenizers map every
        # character on its own ("σ").
        text = tf.strings.regex_replace(text, "Σ", "σ")
        text = tf.strings.lower(text, encoding="utf-8")
        text = tf.strings.regex_replace(text, _BERT_CJK, r" \1 ")
        text = tf.strings.regex_replace(text, _BERT_PUNCTUATION, r" \1 ")
        text = tf.strings.regex_replace(text, " {2,}", " ")
        return tf.strings.strip(text)


def split_words(text: tf.Tensor, lowercase: bool = True,
                unicode_words: bool = False, keep_whole: str | None = None) -> tf.RaggedTensor:
    """`[batch]` strings -> ragged `[batch, (words)]` tokens (`standardize`'s words)."""
    return tf.strings.split(standardize(text, lowercase, unicode_words, keep_whole))


def build_vocabulary(texts, max_size: int, min_count: int = 1, reserved=(PAD, UNK),
                     lowercase: bool = True, batch: int = 4096,
                     unicode_words: bool = False, keep_whole: str | None = None) -> list[str]:
    """The `max_size` most frequent tokens of `texts` after `reserved` ones (ties by token),
    as `split_words` splits them."""
    counts: collections.Counter = collections.Counter()
    texts = list(texts)
    for i in range(0, len(texts), batch):
        tokens = split_words(tf.constant(texts[i : i + batch]), lowercase,
                             unicode_words, keep_whole).flat_values
        counts.update(t.decode("utf-8") for t in tokens.numpy())
    ranked = sorted(
        (t for t, c in counts.items() if c >= min_count and t not in reserved),
        key=lambda t: (-counts[t], t),
    )
    return list(reserved) + ranked[: max(0, max_size - len(reserved))]


class Tokenizer(tf.Module):
    """Raw strings <-> padded ids, as TensorFlow ops (lives inside SavedModels).

    Id 0 is padding, id 1 unknown; `START`/`END` are added when `bos_eos=True`.

    Args:
        vocabulary: list of tokens; index = id. Must start with PAD, UNK.
        max_length: tokens kept per text (longer texts are truncated; END counts).
        bos_eos: wrap each text in START ... END (decoder targets).
        lowercase: lower-case before splitting.
        keep_whole: words kept as one token when a whitespace-separated word
            (after lower-casing) is exactly one of them (emoticons: `standardize`).

    Subclasses set `unicode_words = True` for Unicode-aware splitting.
    """

    unicode_words = False

    def __init__(self, vocabulary, max_length: int, bos_eos: bool = False,
                 lowercase: bool = True, keep_whole=(), name=None):
        super().__init__(name=name)
        self.keep_whole = tuple(sorted(set(keep_whole)))
        self._keep_pattern = (whole_tokens_pattern(self.keep_whole) if self.keep_whole
                              else None)
        vocabulary = list(vocabulary)
        if vocabulary[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}; got {vocabulary[:2]}")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("vocabulary has duplicate tokens.")
        if bos_eos and (START not in vocabulary or END not in vocabulary):
            raise ValueError(f"bos_eos=True needs {START!r} and {END!r} in the vocabulary.")
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}.")
        self.vocabulary = vocabulary
        self.max_length = int(max_length)
        self.bos_eos = bos_eos
        self.lowercase = lowercase
        keys = tf.constant(vocabulary)
        ids = tf.range(len(vocabulary), dtype=tf.int64)
        self._to_id = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, ids), default_value=1
        )
        self._to_token = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(ids, keys), default_value=UNK
        )
        self.start_id = vocabulary.index(START) if START in vocabulary else -1
        self.end_id = vocabulary.index(END) if END in vocabulary else -1

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def tokenize(self, text: tf.Tensor):
        """`[batch]` strings -> (`tokens` `[batch, max_length]` strings, `ids` int32).

        Padding positions hold "" and id 0. With `bos_eos`, START and END wrap the
        (truncated) words.
        """
        text = tf.convert_to_tensor(text, tf.string)
        words = split_words(text, self.lowercase, self.unicode_words, self._keep_pattern)
        if self.bos_eos:
            words = words[:, : self.max_length - 2]
            batch = tf.shape(text)[0]
            start = tf.fill([batch, 1], START)
            end = tf.fill([batch, 1], END)
            words = tf.concat([start, words, end], axis=1)
        else:
            words = words[:, : self.max_length]
        tokens = words.to_tensor(default_value="", shape=[None, self.max_length])
        ids = tf.ragged.map_flat_values(self._to_id.lookup, words)
        ids = ids.to_tensor(default_value=0, shape=[None, self.max_length])
        return tokens, tf.cast(ids, tf.int32)

    def lookup_tokens(self, ids: tf.Tensor) -> tf.Tensor:
        """int ids -> token strings (padding gives "")."""
        ids = tf.cast(ids, tf.int64)
        tokens = self._to_token.lookup(ids)
        return tf.where(ids == 0, tf.constant(""), tokens)

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """`[batch, T]` ids -> `[batch]` strings: stops at END, drops PAD/START, joins words."""
        ids = tf.cast(ids, tf.int64)
        if self.end_id >= 0:
            ended = tf.cumsum(tf.cast(ids == self.end_id, tf.int32), axis=1) > 0
            ids = tf.where(ended, tf.zeros_like(ids), ids)
        keep = ids != 0
        if self.start_id >= 0:
            keep &= ids != self.start_id
        tokens = tf.ragged.boolean_mask(self._to_token.lookup(ids), keep)
        text = tf.strings.reduce_join(tokens, axis=1, separator=" ")
        # Re-attach punctuation that standardize spaced out.
        text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}])", r"\1")
        text = tf.strings.regex_replace(text, r"([(\[{¿¡]) ", r"\1")
        return text

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"vocabulary": self.vocabulary, "max_length": self.max_length,
                       "bos_eos": self.bos_eos, "lowercase": self.lowercase,
                       "keep_whole": list(self.keep_whole)}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        return cls(**spec)
