"""Unicode-aware in-graph tokenization for translation (accented and non-Latin scripts).

`apps.common.text` marks as punctuation everything that is not RE2's `\\w`,
which is ASCII-only: it splits `fenêtre` into `fen ê tre` and every Hindi
word into letters. This module keeps the same conventions (lower-casing,
punctuation as separate tokens, apostrophes inside words, invalid UTF-8
replaced) with Unicode classes (`\\pL` letters, `\\pN` digits, `\\pM` combining
marks) and Unicode spaces (`\\p{Z}`: the no-break spaces French puts before
`:` and inside `« »`). This module is `apps.common.text` with `unicode_words=True`.

No Unicode normalization is applied (no NFKC, which no stock TensorFlow op
provides): a text and its compatibility form (`ﬁ` and `fi`, `…` and `...`) give
different tokens, in training and in the SavedModel alike.
"""

from __future__ import annotations

import functools

from apps.common import text as common_text

PAD, UNK, START, END = common_text.PAD, common_text.UNK, common_text.START, common_text.END

standardize = functools.partial(common_text.standardize, unicode_words=True)
split_words = functools.partial(common_text.split_words, unicode_words=True)
build_vocabulary = functools.partial(common_text.build_vocabulary, unicode_words=True)


class Tokenizer(common_text.Tokenizer):
    """`apps.common.text.Tokenizer` with Unicode-aware splitting."""

    unicode_words = True
