"""A WordPiece subword vocabulary that tokenizes inside the TensorFlow graph, with core ops.

Shared by the text apps (issues 16 and 17): unknown words come out as pieces,
not `[UNK]`, and any Unicode text round-trips.

- **Training** (`train_vocabulary`): Hugging Face `tokenizers`' `WordPieceTrainer`
  learns the pieces from text standardized by `apps.common.text.standardize`
  (the same TensorFlow op the SavedModel runs), split on spaces.
- **Tokenization** (`SubwordTokenizer`): greedy longest-match-first WordPiece
  over each word (BERT's algorithm, `##` marks a piece that continues a word),
  written with stock TensorFlow ops only (`tf.strings`, `tf.lookup.StaticHashTable`,
  `tf.while_loop`, `tf.io.decode_raw`): no tensorflow-text op, no `py_function`,
  so TF Serving's stock build loads it. For every word the `tokenizers` library
  covers, the pieces are exactly the library's (`tokenizers.models.WordPiece` on
  the same vocabulary file).
- **Byte fallback**: where the library would give `[UNK]` (a character no piece
  covers at that point of the word), this tokenizer emits the character's UTF-8
  bytes as byte pieces instead, `<0xF0>` at the start of a word and `##<0x9F>`
  inside one. All 512 byte pieces are in every vocabulary, so `[UNK]` never
  comes out and `detokenize(tokenize(s)) == standardize(s)` for any text that
  fits the limits below (emoji, CJK, combining marks, any script).
- **Detokenization** (`SubwordTokenizer.detokenize`), in the graph too: pieces are
  joined with a space before every word-initial piece and none before a `##`
  piece; byte pieces are reassembled into UTF-8. It never fails on an invalid
  id sequence: bytes that do not form valid UTF-8 (a lone `<0xF0>`, a cut
  sequence) become U+FFFD, and ids outside the vocabulary, `[UNK]` and the
  special tokens other than `[PAD]`, `[START]` and `[END]` decode to the word
  "\ufffd". Decoding stops at the first `[END]`. (A byte piece a model emits
  for an ASCII control byte, e.g. `<0x00>`, decodes to that byte: tokenization
  never produces one, since `standardize` turns control characters into spaces.)

How it runs: the words are cut into runs (below); the longest piece that starts
at every character of every run is found in one vectorized pass (a substring
and a hash lookup per candidate length, up to the longest piece in the
vocabulary); then a `tf.while_loop` walks each run, one piece per step. On 2
shared AMD EPYC cores a batch of 32 sentences of about 20 words takes about
4.5 ms, a 700-word document about 5 ms (word-level `text.Tokenizer`: 0.7 ms).

Limits, enforced by truncation, never an error:

- `MAX_TEXT_BYTES` (1 MiB) per text are read (`text.clip_bytes`);
- a word longer than `max_word_chars` characters (default 100, as in BERT) is
  cut into runs of that many characters; each later run goes on with `##`
  pieces, so nothing is lost (the library instead gives such a word `[UNK]`);
- at most `max_length` pieces per text are kept (`START`/`END` included when
  `bos_eos=True`); the rest of the text is dropped, and past
  `max_length * (longest piece + 1)` characters never even read, so a 1 MiB
  text costs well under a second.

`SubwordTokenizer.normalize(text)` is the reference of the round trip: what
`detokenize(tokenize(text))` returns whenever nothing was cut.

Standardization is `apps.common.text.standardize` (`lowercase`, `unicode_words`
default to lower-casing and Unicode-aware punctuation splitting): invalid UTF-8
becomes U+FFFD, punctuation marks are words of their own, no NFKC.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from apps.common import text as text_lib
from apps.common.text import END, PAD, START, UNK

#: Mask token for masked-language-model pretraining (issue 16).
MASK = "[MASK]"
#: The reserved tokens at the head of a vocabulary `train_vocabulary` builds, in id order.
RESERVED = (PAD, UNK, START, END, MASK)
#: The prefix of a piece that continues a word.
CONTINUATION = "##"
#: Characters per word processed as one run (`max_word_chars` default).
MAX_WORD_CHARS = 100
#: Vocabulary file names inside a directory written by `SubwordTokenizer.save`.
VOCABULARY_FILE, OPTIONS_FILE = "vocab.txt", "tokenizer.json"


def byte_pieces() -> list[str]:
    """The 512 byte pieces, in vocabulary order: `<0x00>`..`<0xFF>`, then `##<0x00>`..`##<0xFF>`."""
    initial = [f"<0x{b:02X}>" for b in range(256)]
    return initial + [CONTINUATION + p for p in initial]


def standardize_texts(texts, lowercase: bool = True, unicode_words: bool = True,
                      batch: int = 4096):
    """Yields `text.standardize` of each Python string (as a Python string), in order."""
    chunk: list[str] = []

    def flush():
        out = text_lib.standardize(tf.constant(chunk, tf.string), lowercase, unicode_words)
        return [s.decode("utf-8") for s in out.numpy()]

    for item in texts:
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        if not isinstance(item, str):
            raise TypeError(f"texts must hold strings; got {type(item).__name__}: {item!r:.80}")
        chunk.append(item)
        if len(chunk) == batch:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def train_vocabulary(texts, vocab_size: int, *, reserved=RESERVED, min_frequency: int = 2,
                     limit_alphabet: int | None = None, lowercase: bool = True,
                     unicode_words: bool = True) -> list[str]:
    """Learns a WordPiece vocabulary of at most `vocab_size` pieces from `texts`.

    `texts` is any iterable of strings; they are standardized in the graph
    (`text.standardize`) and split on spaces before `tokenizers`' WordPieceTrainer
    sees them. The vocabulary is `reserved` (which must start with `[PAD]`,
    `[UNK]`), the 512 byte pieces, then the learned pieces, sorted: the
    trainer's own order changes from process to process, the pieces it picks
    (the most frequent merges) do not, unless frequencies tie at the cut.
    Every learned single character is completed with its other form (`c` and
    `##c`), taking the place of the last learned pieces, so a known character
    never falls back to bytes.

    Args:
        texts: iterable of `str` (bytes are decoded as UTF-8, invalid bytes replaced).
        vocab_size: total pieces, reserved and byte pieces included.
        reserved: special tokens, ids 0, 1, ...
        min_frequency: the least count of a pair the trainer merges.
        limit_alphabet: the most distinct characters kept as pieces (the rarest
            others are left to the byte fallback). Default: a quarter of the
            learned room, at most 1,000, so that characters in both forms take
            at most half the vocabulary and merges the rest.
        lowercase, unicode_words: `text.standardize`'s options (the tokenizer
            must use the same).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    reserved = list(reserved)
    if reserved[:2] != [PAD, UNK]:
        raise ValueError(f"reserved must start with {PAD!r}, {UNK!r}; got {reserved[:2]}.")
    head = len(reserved) + 2 * 256
    if int(vocab_size) <= head:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for learned pieces: the "
                         f"{len(reserved)} reserved tokens and 512 byte pieces take {head}.")
    if limit_alphabet is None:
        limit_alphabet = max(1, min(1000, (int(vocab_size) - head) // 4))
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=MAX_WORD_CHARS))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(
        vocab_size=int(vocab_size) - 2 * 256, min_frequency=int(min_frequency),
        special_tokens=reserved, limit_alphabet=int(limit_alphabet),
        continuing_subword_prefix=CONTINUATION, show_progress=False)
    tokenizer.train_from_iterator(
        standardize_texts(texts, lowercase, unicode_words), trainer=trainer)
    trained = tokenizer.get_vocab()
    learned = [p for p, _ in sorted(trained.items(), key=lambda kv: kv[1]) if p not in reserved]
    if not learned:
        raise ValueError("texts gave no pieces to learn: pass non-empty text.")
    known = set(learned)
    completions = []
    for piece in learned:
        bare = piece[len(CONTINUATION):] if piece.startswith(CONTINUATION) else piece
        if len(bare) == 1:
            for form in (bare, CONTINUATION + bare):
                if form not in known:
                    known.add(form)
                    completions.append(form)
    room = int(vocab_size) - head
    singles = [p for p in learned if len(_bare(p)) == 1]
    longer = [p for p in learned if len(_bare(p)) > 1]
    pieces = singles + completions
    if len(pieces) > room:
        pieces = pieces[:room]
    pieces += longer[: max(0, room - len(pieces))]
    # The trainer breaks ties between equally frequent pairs in hash order, which
    # changes from process to process: the same pieces come out in another order.
    # Sorted, the same pieces always get the same ids.
    return reserved + byte_pieces() + sorted(pieces)


def _bare(piece: str) -> str:
    return piece[len(CONTINUATION):] if piece.startswith(CONTINUATION) else piece


def save_vocabulary(vocabulary, path: str) -> None:
    """Writes one piece per line (UTF-8, "\\n" after each)."""
    vocabulary = list(vocabulary)
    for i, piece in enumerate(vocabulary):
        if not piece or any(c.isspace() for c in piece):
            raise ValueError(f"vocabulary[{i}] = {piece!r}: a piece must be non-empty and "
                             "hold no whitespace (one piece per line).")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(p + "\n" for p in vocabulary))
    os.replace(tmp, path)


def load_vocabulary(path: str) -> list[str]:
    """Reads a file written by `save_vocabulary` (one piece per line)."""
    with open(path, encoding="utf-8", newline="") as f:
        data = f.read()
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines):
        if not line or line != line.strip():
            raise ValueError(f"{path}, line {i + 1}: {line!r} is not a piece (expected one "
                             "non-empty piece per line, no spaces).")
    return lines


class SubwordTokenizer(tf.Module):
    """Raw strings <-> WordPiece ids, as TensorFlow core ops (lives inside SavedModels).

    The same interface as `text.Tokenizer` (`tokenize` -> padded pieces and ids,
    `detokenize`, `lookup_tokens`), plus `tokenize_ragged`.

    Args:
        vocabulary: pieces, index = id. Must start with `[PAD]`, `[UNK]` and hold
            the 512 `byte_pieces()` (with `unknown="word"`: start with `[PAD]` and
            hold `[UNK]` anywhere, no byte pieces needed); the `bos_token` and
            `eos_token` are needed for `bos_eos`.
        max_length: pieces kept per text (START and END included with `bos_eos`).
        bos_eos: wrap each text in `bos_token` ... `eos_token`.
        lowercase, unicode_words: `text.standardize`'s options; must match training.
        max_word_chars: characters of a word matched as one run (longer words
            are cut into runs; later runs continue with `##` pieces).
        standardization: "default" (`text.standardize` with the two options above)
            or "bert" (`text.BertStandardizer`: BERT's uncased basic tokenizer; the
            two options are then ignored).
        unknown: what a word with a character no piece covers becomes: "bytes" (its
            characters' UTF-8 byte pieces, nothing lost) or "word" (one `[UNK]` for the
            whole word, as BERT; so is a word longer than `max_word_chars`).
        bos_token, eos_token: the pieces `bos_eos` adds (BERT: "[CLS]", "[SEP]").

    With `standardization="bert"`, `unknown="word"` and the checkpoint's
    `vocab.txt`, the ids are those of BERT's uncased tokenizer (Hugging Face
    `tokenizers`' `BertWordPieceTokenizer`), as `tests/apps/common/test_bert.py` checks.
    """

    def __init__(self, vocabulary, max_length: int, bos_eos: bool = False,
                 lowercase: bool = True, unicode_words: bool = True,
                 max_word_chars: int = MAX_WORD_CHARS, standardization: str = "default",
                 unknown: str = "bytes", bos_token: str = START, eos_token: str = END,
                 name=None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        if standardization not in ("default", "bert"):
            raise ValueError(f"standardization must be 'default' or 'bert', got "
                             f"{standardization!r}.")
        if unknown not in ("bytes", "word"):
            raise ValueError(f"unknown must be 'bytes' or 'word', got {unknown!r}.")
        if unknown == "bytes" and vocabulary[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}; got {vocabulary[:2]}.")
        if unknown == "word" and (vocabulary[:1] != [PAD] or UNK not in vocabulary):
            raise ValueError(f"vocabulary must start with {PAD!r} and hold {UNK!r}; got "
                             f"{vocabulary[:1]} first, {UNK!r} "
                             f"{'present' if UNK in vocabulary else 'absent'}.")
        seen: set = set()
        for i, piece in enumerate(vocabulary):
            if not isinstance(piece, str) or not piece or any(c.isspace() for c in piece):
                raise ValueError(f"vocabulary[{i}] = {piece!r}: pieces must be non-empty "
                                 "strings without whitespace.")
            if piece == CONTINUATION:
                raise ValueError(f"vocabulary[{i}] is {CONTINUATION!r} alone, which covers "
                                 "nothing.")
            if piece in seen:
                raise ValueError(f"vocabulary[{i}] = {piece!r} is a duplicate.")
            seen.add(piece)
        missing = [p for p in byte_pieces() if p not in seen]
        if missing and unknown == "bytes":
            raise ValueError(f"vocabulary lacks {len(missing)} of the 512 byte pieces (e.g. "
                             f"{missing[0]!r}); build it with train_vocabulary or add "
                             "byte_pieces(), or use unknown='word'.")
        if bos_eos and (bos_token not in seen or eos_token not in seen):
            raise ValueError(f"bos_eos=True needs {bos_token!r} and {eos_token!r} in the "
                             "vocabulary.")
        if int(max_length) < (3 if bos_eos else 1):
            raise ValueError(f"max_length must be at least {3 if bos_eos else 1} "
                             f"(bos_eos={bos_eos}), got {max_length}.")
        if int(max_word_chars) < 1:
            raise ValueError(f"max_word_chars must be positive, got {max_word_chars}.")
        self.vocabulary = vocabulary
        self.max_length = int(max_length)
        self.bos_eos = bool(bos_eos)
        self.lowercase = bool(lowercase)
        self.unicode_words = bool(unicode_words)
        self.max_word_chars = int(max_word_chars)
        self.standardization = standardization
        self.unknown = unknown
        self.bos_token, self.eos_token = bos_token, eos_token
        self.start_id = vocabulary.index(bos_token) if bos_token in seen else -1
        self.end_id = vocabulary.index(eos_token) if eos_token in seen else -1
        self.unk_id = vocabulary.index(UNK)
        specials = {p for p in vocabulary if p.startswith("[") and p.endswith("]") and len(p) > 2}
        index = {p: i for i, p in enumerate(vocabulary)}
        bytes_set = set(byte_pieces()) if unknown == "bytes" else set()
        if unknown == "bytes":
            self._byte_initial = index["<0x00>"]
            self._byte_continued = index[CONTINUATION + "<0x00>"]
            if (any(index[p] != self._byte_initial + b
                    for b, p in enumerate(byte_pieces()[:256]))
                    or any(index[p] != self._byte_continued + b
                           for b, p in enumerate(byte_pieces()[256:]))):
                raise ValueError("the 256 byte pieces of each form must have consecutive ids "
                                 "in byte order, as byte_pieces() lists them.")
        matchable = [p for p in vocabulary if p not in specials and p not in bytes_set]
        #: The longest piece in characters (without `##`): the longest match tried.
        self.max_piece_chars = max([len(_bare(p)) for p in matchable] + [1])
        # The most characters one piece covers (runs cut pieces too).
        self._piece_span = min(self.max_piece_chars, self.max_word_chars)
        self._bert = (text_lib.BertStandardizer(
            max_chars=self.max_length * (self._piece_span + 1))
            if standardization == "bert" else None)
        # " " (never inside a word) maps to "no piece": a table cannot be empty.
        keys = tf.constant([" "] + matchable, tf.string)
        values = tf.constant([-1] + [index[p] for p in matchable], tf.int64)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1)
        self._pieces = tf.constant(vocabulary)
        # Decoding: the text each piece adds, and whether it glues to the previous one.
        surfaces, glue = [], []
        for p in vocabulary:
            if p in bytes_set:
                b = int(_bare(p)[3:5], 16)
                surfaces.append(bytes([b]))
                glue.append(p.startswith(CONTINUATION))
            elif p in specials:
                surfaces.append("\ufffd".encode())
                glue.append(False)
            else:
                surfaces.append(_bare(p).encode("utf-8"))
                glue.append(p.startswith(CONTINUATION))
        self._surfaces = tf.constant(surfaces, tf.string)
        self._glue = tf.constant(glue, tf.bool)
        # `tokenize` of a batch, traced once: every tf.data pipeline, evaluation and export
        # that calls it embeds a call to this one graph instead of tracing its few hundred
        # ops again (a run of an app traced it 5 to 10 times). No autograph: the code has no
        # Python control flow on tensors (its loop is a `tf.while_loop`).
        self._tokenize_batch = tf.function(
            self._tokenize, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    # -- tokenization ----------------------------------------------------------------

    def _check_text(self, text) -> tf.Tensor:
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank is not None and text.shape.rank != 1:
            raise ValueError("text must be a 1-D batch of strings ([batch]); got shape "
                             f"{text.shape}.")
        return text

    def _standardize(self, text: tf.Tensor) -> tf.Tensor:
        if self._bert is not None:
            return self._bert(text_lib.clip_bytes(text))
        return text_lib.standardize(text_lib.clip_bytes(text), self.lowercase,
                                    self.unicode_words)

    def _words(self, text: tf.Tensor, limit: int) -> tf.RaggedTensor:
        standardized = self._standardize(text)
        # The first `limit` pieces lie within the first limit * (longest piece + a space)
        # characters: the rest is never read (bounds the work on a 1 MiB text).
        standardized = tf.strings.substr(standardized, 0, limit * (self._piece_span + 1),
                                         unit="UTF8_CHAR")
        return tf.strings.split(standardized)[:, :limit]

    def _runs(self, words: tf.RaggedTensor, limit: int):
        """Words -> runs of at most `max_word_chars` characters: (strings, continues, row of
        text, too long).

        At most `limit` runs per text are kept (each gives at least one piece). With
        `unknown="word"` a word is one run, its first `max_word_chars` characters, and
        "too long" marks the words that had more (BERT makes them `[UNK]`).
        """
        size = self.max_word_chars
        if self.unknown == "word":
            flat = words.flat_values
            too_long = tf.strings.length(flat, unit="UTF8_CHAR") > size
            flat = tf.strings.substr(flat, 0, size, unit="UTF8_CHAR")
            return flat, tf.zeros_like(too_long), words.value_rowids(), too_long
        # Pieces past the `limit`-th of a text are dropped: cut words before them.
        flat = tf.strings.substr(words.flat_values, 0, limit * self._piece_span,
                                 unit="UTF8_CHAR")
        rows = words.value_rowids()
        chars = tf.strings.unicode_split(flat, "UTF-8")  # [words, (characters)]
        lengths = chars.row_lengths()
        runs = (lengths + size - 1) // size  # >= 1: split never returns an empty word
        run_word = tf.repeat(tf.range(tf.size(flat, out_type=tf.int64)), runs)
        run_index = tf.ragged.range(runs).flat_values
        run_length = tf.minimum(tf.cast(size, tf.int64),
                                tf.gather(lengths, run_word) - run_index * size)
        strings = tf.strings.reduce_join(
            tf.RaggedTensor.from_row_lengths(chars.flat_values, run_length), axis=1)
        run_row = tf.gather(rows, run_word)
        # Keep the first `limit` runs of each text.
        rank = tf.ragged.range(tf.math.bincount(
            tf.cast(run_row, tf.int32), minlength=tf.cast(words.nrows(), tf.int32),
            dtype=tf.int64)).flat_values
        keep = rank < limit
        return (tf.boolean_mask(strings, keep), tf.boolean_mask(run_index > 0, keep),
                tf.boolean_mask(run_row, keep), tf.zeros_like(tf.boolean_mask(keep, keep)))

    def _wordpiece(self, runs: tf.Tensor, continues: tf.Tensor,
                   too_long: tf.Tensor) -> tf.RaggedTensor:
        """Greedy longest-match-first over each run -> ragged `[runs, (pieces)]` int64 ids.

        With `unknown="word"`, a run with a character no piece covers, or `too_long`,
        is one `[UNK]`.

        First, without a loop, the longest piece that starts at every character
        of every run (all candidates at once: one substring and one hash lookup
        each). Then a `tf.while_loop` walks each run from its first character,
        jumping by the length matched (one character where nothing matched:
        its bytes), one piece per step.
        """
        _, starts = tf.strings.unicode_decode_with_offsets(runs, "UTF-8")  # [M, (L)] bytes
        chars = starts.row_lengths()  # [M]
        run_bytes = tf.cast(tf.strings.length(runs), tf.int64)
        # Byte offset of every character boundary, the run's end included: [M, (L + 1)].
        bounds = tf.concat([starts, tf.RaggedTensor.from_tensor(run_bytes[:, tf.newaxis])], 1)
        flat_bounds, bound_row = bounds.flat_values, bounds.row_splits[:-1]
        # One entry per character ("position") of every run.
        position_run = starts.value_rowids()  # [P]
        position_char = tf.ragged.range(chars).flat_values  # [P]
        inside = (position_char > 0) | tf.gather(continues, position_run)
        left = tf.gather(chars, position_run) - position_char
        # Candidates: the pieces of 1 .. min(K, characters left) characters at each position.
        count = tf.minimum(left, self.max_piece_chars)
        candidate_position = tf.repeat(tf.range(tf.size(position_run, out_type=tf.int64)), count)
        candidate_chars = tf.ragged.range(count).flat_values + 1
        # Each position's window of at most K characters, then the candidates within it
        # (copies of a window, not of the whole run).
        position_first = tf.gather(bound_row, position_run) + position_char
        position_begin = tf.gather(flat_bounds, position_first)
        window = tf.strings.substr(
            tf.gather(runs, position_run), position_begin,
            tf.gather(flat_bounds, position_first + count) - position_begin)
        end = tf.gather(flat_bounds, tf.gather(position_first, candidate_position)
                        + candidate_chars) - tf.gather(position_begin, candidate_position)
        candidates = tf.strings.substr(tf.gather(window, candidate_position),
                                       tf.zeros_like(end), end)
        candidates = tf.where(tf.gather(inside, candidate_position),
                              tf.strings.join([CONTINUATION, candidates]), candidates)
        ids = self._table.lookup(candidates)
        matched = tf.where(ids >= 0, candidate_chars, 0)
        best = tf.math.segment_max(matched, candidate_position)  # [P] characters matched
        best_id = tf.math.segment_max(
            tf.where((ids >= 0) & (matched == tf.gather(best, candidate_position)), ids, -1),
            candidate_position)
        step = tf.maximum(best, 1)  # no match: one character, as bytes
        # The walk: the positions where a piece starts, run by run.
        run_first = starts.row_splits[:-1]
        last = tf.maximum(tf.size(position_run, out_type=tf.int64) - 1, 0)

        def body(i, at, out):
            active = at < chars
            here = tf.minimum(run_first + at, last)
            out = out.write(i, tf.where(active, here, -1))
            return i + 1, tf.where(active, at + tf.gather(step, here), at), out

        out = tf.TensorArray(tf.int64, size=0, dynamic_size=True, element_shape=[None])
        out = out.write(0, tf.fill(tf.shape(chars), tf.constant(-1, tf.int64)))
        _, _, out = tf.while_loop(
            lambda i, at, out: tf.reduce_any(at < chars), body,
            (tf.constant(1), tf.zeros_like(chars), out),
            maximum_iterations=self.max_word_chars + 1)
        walked = tf.transpose(out.stack())  # [M, steps]
        walked = tf.ragged.boolean_mask(walked, walked >= 0)  # [M, (pieces)] positions
        at = walked.flat_values
        if self.unknown == "word":
            lengths = walked.row_lengths()
            unmatched = tf.cast(tf.equal(tf.gather(best, at), 0), tf.int32)
            failed = tf.math.unsorted_segment_max(
                unmatched, walked.value_rowids(), tf.cast(walked.nrows(), tf.int32)) > 0
            failed |= too_long
            # A failed run keeps one piece, [UNK]; the others keep their pieces.
            piece_failed = tf.repeat(failed, lengths)
            first = tf.ragged.range(lengths).flat_values == 0
            values = tf.where(piece_failed, tf.cast(self.unk_id, tf.int64),
                              tf.gather(best_id, at))
            return tf.RaggedTensor.from_row_lengths(
                tf.boolean_mask(values, ~piece_failed | first),
                tf.where(failed, tf.ones_like(lengths), lengths))
        # Each visited position: its piece, or its character's bytes (1 to 4 pieces).
        char_first = tf.gather(bound_row, tf.gather(position_run, at)) + tf.gather(
            position_char, at)
        char_begin = tf.gather(flat_bounds, char_first)
        char_bytes = tf.gather(flat_bounds, char_first + 1) - char_begin
        char = tf.strings.substr(tf.gather(runs, tf.gather(position_run, at)), char_begin,
                                 char_bytes)
        raw = tf.cast(tf.io.decode_raw(char, tf.uint8, fixed_length=4), tf.int64)  # [V, 4]
        j = tf.range(4, dtype=tf.int64)[tf.newaxis, :]
        initial = (~tf.gather(inside, at))[:, tf.newaxis] & (j == 0)
        byte_ids = tf.where(initial, self._byte_initial + raw, self._byte_continued + raw)
        fallback = (tf.gather(best, at) == 0)[:, tf.newaxis]
        pieces = tf.where(fallback, byte_ids, tf.gather(best_id, at)[:, tf.newaxis])
        keep = tf.where(fallback, j < char_bytes[:, tf.newaxis], j == 0)
        per_position = tf.ragged.boolean_mask(pieces, keep)  # [V, (1..4)]
        per_run = tf.math.segment_sum(per_position.row_lengths(), walked.value_rowids())
        per_run = tf.concat([per_run, tf.zeros(
            [walked.nrows() - tf.size(per_run, out_type=tf.int64)], tf.int64)], 0)
        return tf.RaggedTensor.from_row_lengths(per_position.flat_values, per_run)

    def tokenize_ragged(self, text) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """`[batch]` strings -> (pieces, ids): ragged `[batch, (pieces)]` string and int64.

        No START/END; at most `max_length` pieces per text (minus 2 with `bos_eos`,
        so `tokenize` can add them).
        """
        text = self._check_text(text)
        limit = self.max_length - (2 if self.bos_eos else 0)
        words = self._words(text, limit)
        runs, continues, run_row, too_long = self._runs(words, limit)
        per_run = self._wordpiece(runs, continues, too_long)
        lengths = tf.math.unsorted_segment_sum(per_run.row_lengths(), run_row,
                                               tf.shape(text, out_type=tf.int64)[0])
        ids = tf.RaggedTensor.from_row_lengths(per_run.flat_values, lengths)[:, :limit]
        pieces = tf.ragged.map_flat_values(tf.gather, self._pieces, ids)
        return pieces, ids

    def tokenize(self, text) -> tuple[tf.Tensor, tf.Tensor]:
        """`[batch]` strings -> (`pieces` `[batch, max_length]` strings, `ids` int32).

        Padding holds "" and id 0. With `bos_eos`, START and END wrap the pieces.
        """
        text = self._check_text(text)
        if text.shape.rank == 1:
            return self._tokenize_batch(text)
        return self._tokenize(text)  # a rank unknown until run time

    def _tokenize(self, text) -> tuple[tf.Tensor, tf.Tensor]:
        pieces, ids = self.tokenize_ragged(text)
        if self.bos_eos:
            rows = ids.nrows()
            ids = tf.concat([tf.fill([rows, 1], tf.cast(self.start_id, tf.int64)), ids,
                             tf.fill([rows, 1], tf.cast(self.end_id, tf.int64))], axis=1)
            pieces = tf.ragged.map_flat_values(tf.gather, self._pieces, ids)
        pieces = pieces.to_tensor(default_value="", shape=[None, self.max_length])
        ids = ids.to_tensor(default_value=0, shape=[None, self.max_length])
        return pieces, tf.cast(ids, tf.int32)

    def lookup_tokens(self, ids) -> tf.Tensor:
        """int ids -> piece strings (padding gives "", ids outside the vocabulary "[UNK]")."""
        ids = tf.cast(ids, tf.int64)
        inside = (ids >= 0) & (ids < self.vocabulary_size)
        pieces = tf.gather(self._pieces, tf.where(inside, ids, self.unk_id))
        return tf.where(ids == 0, tf.constant(""), pieces)

    def detokenize(self, ids) -> tf.Tensor:
        """`[batch, T]` ids (dense or ragged) -> `[batch]` strings; never fails.

        Stops at the first END; drops PAD and START; joins pieces (a space before
        each word-initial piece, none before `##` pieces); reassembles byte pieces
        into UTF-8. Invalid UTF-8 from byte pieces becomes U+FFFD; ids outside the
        vocabulary and other special tokens ([UNK], [MASK], ...) become the word "\ufffd".
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=0)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int64)
        if ids.shape.rank is not None and ids.shape.rank != 2:
            raise ValueError(f"ids must be [batch, length]; got shape {ids.shape}.")
        keep = ids != 0
        if self.end_id >= 0:
            keep &= tf.cumsum(tf.cast(ids == self.end_id, tf.int32), axis=1) == 0
        if self.start_id >= 0:
            keep &= ids != self.start_id
        inside = (ids >= 0) & (ids < self.vocabulary_size)
        safe = tf.where(inside, ids, self.unk_id)
        surface = tf.gather(self._surfaces, safe)
        glue = tf.gather(self._glue, safe) & inside
        piece = tf.where(glue, surface, tf.strings.join([" ", surface]))
        joined = tf.strings.reduce_join(tf.ragged.boolean_mask(piece, keep), axis=1)
        joined = tf.strings.unicode_transcode(joined, "UTF-8", "UTF-8", errors="replace",
                                              replacement_char=0xFFFD)
        return tf.strings.regex_replace(joined, "^ ", "")

    def normalize(self, text) -> tf.Tensor:
        """What `detokenize(tokenize(text))` gives back when nothing is truncated (and, with
        `unknown="word"`, no word became `[UNK]`)."""
        return self._standardize(self._check_text(text))

    # -- files -------------------------------------------------------------------------

    def options(self) -> dict:
        return {"max_length": self.max_length, "bos_eos": self.bos_eos,
                "lowercase": self.lowercase, "unicode_words": self.unicode_words,
                "max_word_chars": self.max_word_chars,
                "standardization": self.standardization, "unknown": self.unknown,
                "bos_token": self.bos_token, "eos_token": self.eos_token}

    def save(self, directory: str) -> None:
        """Writes `vocab.txt` (one piece per line) and `tokenizer.json` (the options)."""
        os.makedirs(directory, exist_ok=True)
        save_vocabulary(self.vocabulary, os.path.join(directory, VOCABULARY_FILE))
        with open(os.path.join(directory, OPTIONS_FILE), "w", encoding="utf-8") as f:
            json.dump(self.options(), f, indent=1)

    @classmethod
    def load(cls, directory: str, **overrides) -> SubwordTokenizer:
        """The tokenizer `save` wrote to `directory` (options in `overrides` replace the saved)."""
        vocabulary = load_vocabulary(os.path.join(directory, VOCABULARY_FILE))
        options_path = os.path.join(directory, OPTIONS_FILE)
        options = {}
        if os.path.exists(options_path):
            with open(options_path, encoding="utf-8") as f:
                options = json.load(f)
        options.update(overrides)
        if "max_length" not in options:
            raise ValueError(f"{options_path} is missing and no max_length was given.")
        return cls(vocabulary, **options)
