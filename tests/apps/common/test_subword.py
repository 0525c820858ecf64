"""The WordPiece subword tokenizer: the library's pieces, computed in the graph with core ops.

The corpus, offline: English sentences from the docstrings of Python's standard
library, sentences drawn from the VADER lexicons that the `vaderSentiment`
package installs (7,500 English words and emoticons, 3,500 emoji with their
names) and inline sentences in a dozen scripts. Half the docstring sentences
and a fifth of the lexicon words are kept out of training, so unseen words occur.
"""

import importlib
import inspect
import json
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tokenizers import Tokenizer, models, pre_tokenizers

from apps.common import export, subword
from tests.apps.serving_checks import replay_warmup, run_isolated

SCRIPTS = [
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein; Straße, Größe.",
    "¿Dónde está la biblioteca? ¡Allí, señor!",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "الخط العربي فن جميل",
    "हिन्दी भाषा भारत में बोली जाती है।",
    "我能吞下玻璃而不伤身体。",
    "いろはにほへと ちりぬるを、カタカナもあります。",
    "다람쥐 헌 쳇바퀴에 타고파",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "עברית נכתבת מימין לשמאל",
    "Zürich, Kraków, Ærøskøbing, İstanbul, Þórshöfn",
    "combining: e\u0301te\u0301, n\u0303o, a\u0308\u0304",
    "emoji 👩‍👩‍👧 family, flags 🇫🇷🇩🇪, skin 👍🏽, keycap 1️⃣",
    "math ∀x∈ℝ: x² ≥ 0 … and “quotes” — dashes",
    "zero\u200bwidth joiner\u200d and bidi \u202emarks",
]


def _lexicon_words():
    import vaderSentiment

    folder = os.path.dirname(vaderSentiment.__file__)
    words = []
    with open(os.path.join(folder, "vader_lexicon.txt"), encoding="utf-8") as f:
        words += [line.split("\t")[0] for line in f if line.strip()]
    with open(os.path.join(folder, "emoji_utf8_lexicon.txt"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                words.append(parts[0])
                words += parts[1].split()
    return words


def _docstring_sentences():
    texts = []
    for name in ("argparse", "collections", "json", "pathlib", "subprocess", "threading",
                 "unittest", "logging", "email", "http.client", "asyncio", "decimal",
                 "datetime", "random", "re", "typing", "zipfile", "tarfile", "shutil"):
        module = importlib.import_module(name)
        for obj in [module] + [v for _, v in inspect.getmembers(module)]:
            doc = inspect.getdoc(obj) if callable(obj) or obj is module else None
            if doc:
                texts.append(doc)
    sentences = set()
    for doc in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
            if 4 <= len(sentence.split()) <= 60:
                sentences.add(sentence)
    return sorted(sentences)


def _sentences(words, count, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        picked = [rng.choice(words) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.5:
            picked[0] = picked[0].capitalize()
        if rng.random() < 0.3:
            picked.insert(rng.randrange(len(picked) + 1), rng.choice(SCRIPTS))
        out.append(" ".join(picked) + rng.choice([".", "!", "?", "", "...", " :)"]))
    return out


@pytest.fixture(scope="module")
def corpus():
    words = sorted(set(_lexicon_words()))
    rng = random.Random(0)
    rng.shuffle(words)
    held_out = words[: len(words) // 5]
    seen = words[len(words) // 5 :]
    english = _docstring_sentences()
    rng.shuffle(english)
    half = len(english) // 2
    train = english[:half] + _sentences(seen, 2000, seed=1) + SCRIPTS * 3
    test = (english[half:][:2000] + _sentences(seen, 1000, seed=2)
            + _sentences(held_out, 1000, seed=3) + SCRIPTS)
    return {"train": train, "test": test, "held_out": held_out}


@pytest.fixture(scope="module")
def vocabulary(corpus):
    return subword.train_vocabulary(corpus["train"], 3000)


@pytest.fixture(scope="module")
def tokenizer(vocabulary):
    return subword.SubwordTokenizer(vocabulary, max_length=256)


def _strings(tensor):
    return [s.decode("utf-8") for s in tensor.numpy()]


def _rows(ragged):
    return [[p.decode("utf-8") for p in row] for row in ragged.to_list()]


def _by_word(pieces):
    words = []
    for piece in pieces:
        if piece.startswith(subword.CONTINUATION) and words:
            words[-1].append(piece)
        else:
            words.append([piece])
    return words


def _is_byte(piece):
    return subword._bare(piece).startswith("<0x")


def test_vocabulary_layout(vocabulary):
    assert len(vocabulary) == 3000 and len(set(vocabulary)) == 3000
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[START]", "[END]", "[MASK]"]
    assert vocabulary[5:517] == subword.byte_pieces()
    assert vocabulary[5] == "<0x00>" and vocabulary[5 + 256 + 0xF0] == "##<0xF0>"
    learned = vocabulary[517:]
    assert "the" in learned and "##s" in learned
    assert learned == sorted(learned)
    singles = {p for p in learned if len(subword._bare(p)) == 1}
    assert all(subword._bare(p) in singles and "##" + subword._bare(p) in singles
               for p in singles), "each known character in both forms"


def test_the_same_text_gives_the_same_ids_in_another_process():
    """The trainer breaks ties in hash order, which changes per process: ids must not."""
    here = subword.train_vocabulary(_docstring_sentences(), 700)
    code = ("import json\nfrom apps.common import subword\n"
            "from tests.apps.common.test_subword import _docstring_sentences\n"
            "print(json.dumps(subword.train_vocabulary(_docstring_sentences(), 700)))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == here


def _compare_with_library(path, tokenizer, texts):
    """(words, words with the library's pieces, words the library calls [UNK]); asserts
    that every covered word has the library's pieces and every other one bytes."""
    library = Tokenizer(models.WordPiece.from_file(path, unk_token="[UNK]",
                                                   max_input_chars_per_word=100))
    library.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    standardized = list(subword.standardize_texts(texts, tokenizer.lowercase,
                                                  tokenizer.unicode_words))
    expected = [e.tokens for e in library.encode_batch(standardized)]
    run = tf.function(tokenizer.tokenize_ragged)
    got = []
    for i in range(0, len(texts), 500):
        got += _rows(run(tf.constant(texts[i : i + 500]))[0])
    assert "[UNK]" not in {p for row in got for p in row}
    words = same = fallback = 0
    for want, have, line in zip(expected, got, standardized, strict=True):
        have_words = _by_word(have)
        assert len(have_words) == len(line.split()), line
        for word, want_pieces, have_pieces in zip(
                line.split(), _by_word(want), have_words, strict=True):
            words += 1
            if want_pieces == ["[UNK]"]:
                fallback += 1
                assert any(_is_byte(p) for p in have_pieces), (word, have_pieces)
            else:
                assert have_pieces == want_pieces, (word, want_pieces, have_pieces)
                same += 1
    return words, same, fallback


def test_matches_the_tokenizers_library(tmp_path, corpus, vocabulary, tokenizer):
    """Every word the library covers gets the library's pieces; the others, bytes."""
    path = str(tmp_path / "vocab.txt")
    subword.save_vocabulary(vocabulary, path)
    words, same, fallback = _compare_with_library(path, tokenizer, corpus["test"])
    # About 4% of these words hold an emoji or letter past `limit_alphabet`: bytes.
    assert words > 40_000 and same / words > 0.9, (words, same, fallback)
    assert fallback > 20  # the comparison covered byte fallback too


def test_matches_the_library_with_the_sentiment_settings(tmp_path, corpus):
    """ASCII word splitting (sentiment's `unicode_words=False`), case kept."""
    options = {"lowercase": False, "unicode_words": False}
    vocabulary = subword.train_vocabulary(corpus["train"][:1000], 1500, **options)
    path = str(tmp_path / "vocab.txt")
    subword.save_vocabulary(vocabulary, path)
    tokenizer = subword.SubwordTokenizer(vocabulary, 256, **options)
    words, same, _ = _compare_with_library(path, tokenizer, corpus["test"][:1000])
    assert words > 10_000 and same / words > 0.9


def test_round_trips_any_unicode_in_the_graph(corpus, tokenizer):
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in rng.integers(0x20, 0x2FFFF, 4000)
                if not 0xD800 <= c < 0xE000]
    random_text = ["".join(rng.choice(alphabet, rng.integers(1, 40))) for _ in range(200)]
    texts = SCRIPTS + corpus["test"][:800] + random_text + [
        "", "   ", "\x00nul\x01", "a\u0301\u0302\u0303", "🏳️‍🌈" * 3, "Ǆǅǆ ΣΑΣ İi",
    ]
    run = tf.function(lambda t: tokenizer.detokenize(tokenizer.tokenize_ragged(t)[1]))
    back = _strings(run(tf.constant(texts)))
    want = _strings(tokenizer.normalize(tf.constant(texts)))
    assert back == want
    assert want[SCRIPTS.index("我能吞下玻璃而不伤身体。")] == "我能吞下玻璃而不伤身体 。"
    assert want[-1] == "ǆǆǆ σας i̇i"  # lower-cased, final sigma, dotted capital I


def test_non_utf8_bytes_round_trip_as_replacement_chars(tokenizer):
    raw = tf.constant([b"caf\xe9 \xff\xfe ok", b"\xf0\x9f\x98"])
    pieces, ids = tokenizer.tokenize_ragged(raw)
    # U+FFFD is a symbol: standardize makes each one a word of its own.
    assert _strings(tokenizer.detokenize(ids)) == ["caf \ufffd \ufffd \ufffd ok", "\ufffd"]
    assert "[UNK]" not in sum(_rows(pieces), [])


def test_unseen_word_comes_out_as_pieces(corpus, vocabulary, tokenizer):
    known = set(vocabulary)
    unseen = [w for w in corpus["held_out"] if w.isalpha() and w.isascii() and len(w) > 7
              and w.lower() not in known]
    assert len(unseen) > 50
    pieces, ids = tokenizer.tokenize_ragged(tf.constant(unseen))
    for word, row in zip(unseen, _rows(pieces), strict=True):
        assert len(row) > 1 and "[UNK]" not in row, (word, row)
        assert not any(_is_byte(p) for p in row), (word, row)  # known letters: no bytes
        assert row[0] == word.lower()[: len(row[0])] and row[1].startswith("##")
    assert _strings(tokenizer.detokenize(ids)) == [w.lower() for w in unseen]


def test_unknown_character_falls_back_to_its_bytes(tokenizer):
    rare = "\U0002000B"  # a CJK ideograph (a letter, so part of the word), 4 UTF-8 bytes
    assert rare not in tokenizer.vocabulary
    pieces, ids = tokenizer.tokenize_ragged(tf.constant([f"the{rare} {rare}"]))
    assert _rows(pieces)[0] == ["the", "##<0xF0>", "##<0xA0>", "##<0x80>", "##<0x8B>",
                                "<0xF0>", "##<0xA0>", "##<0x80>", "##<0x8B>"]
    assert _strings(tokenizer.detokenize(ids)) == [f"the{rare} {rare}"]
    # A symbol (emoji) is a word of its own after standardize.
    pieces, _ = tokenizer.tokenize_ragged(tf.constant(["the\U0001F9A9"]))
    assert _rows(pieces)[0] == ["the", "<0xF0>", "##<0x9F>", "##<0xA6>", "##<0xA9>"]


def test_long_words_are_cut_into_runs_without_loss(vocabulary):
    tokenizer = subword.SubwordTokenizer(vocabulary, max_length=400, max_word_chars=10)
    word = "abcdefghij" * 3 + "xyz"
    pieces, ids = tokenizer.tokenize_ragged(tf.constant([word + " end"]))
    row = _rows(pieces)[0]
    first, second = _by_word(row)
    assert "".join(subword._bare(p) for p in second) == "end"
    assert all(p.startswith("##") for p in first[1:])
    assert _strings(tokenizer.detokenize(ids)) == [word + " end"]
    # A run is matched on its own: no piece spans the 10-character cut.
    assert sum(len(subword._bare(p)) for p in row[: _cut(row, 10)]) == 10


def _cut(row, chars):
    total = 0
    for i, piece in enumerate(row):
        total += len(subword._bare(piece))
        if total >= chars:
            return i + 1
    return len(row)


def test_max_length_truncates_never_fails(vocabulary):
    tokenizer = subword.SubwordTokenizer(vocabulary, max_length=16, bos_eos=True)
    texts = tf.constant([
        "word " * 5000,
        "\U0001F9A9" * 300_000,  # 1.2 MB in one word: clipped to 1 MiB, then 14 pieces
        "x" * (3 << 20),
        "",
        "short one",
    ])
    pieces, ids = tokenizer.tokenize(texts)
    ids = ids.numpy()
    assert ids.shape == (5, 16) and ids.dtype == np.int32
    assert (ids[:3] != 0).all()
    assert (ids[:, 0] == tokenizer.start_id).all()
    assert ids[0, -1] == tokenizer.end_id and ids[3, :2].tolist() == [2, 3]
    assert pieces.numpy()[1, 1:4].tolist() == [b"<0xF0>", b"##<0x9F>", b"##<0xA6>"]
    assert _strings(tokenizer.detokenize(ids))[4] == "short one"
    _, ragged = tokenizer.tokenize_ragged(tf.constant(["a " * 100]))
    assert ragged.row_lengths().numpy().tolist() == [14]  # room left for START and END


def test_empty_batch(tokenizer):
    pieces, ids = tokenizer.tokenize(tf.constant([], tf.string))
    assert ids.shape == (0, 256) and pieces.shape == (0, 256)
    assert tokenizer.detokenize(tf.zeros([0, 5], tf.int32)).shape == (0,)


def test_detokenize_defines_every_id_sequence(vocabulary, tokenizer):
    index = {p: i for i, p in enumerate(vocabulary)}
    a, e_acute = index["a"], [index["##<0xC3>"], index["##<0xA9>"]]
    cases = [
        ("a\ufffd", [a, index["##<0xF0>"]]),  # a lone lead byte
        ("\ufffd a", [index["<0xF0>"], index["##<0x9F>"], a]),  # a cut 4-byte sequence
        ("aé", [a] + e_acute),
        ("\ufffd", [index["##<0xA9>"]]),  # a continuation byte alone
        ("a \ufffd \ufffd \ufffd", [a, 1, 999_999, -7]),  # [UNK], out of range
        ("a a", [index["[START]"], a, a, index["[END]"], a]),  # stops at END
        ("\ufffd", [index["[MASK]"], 0, 0]),
        ("", [0, 0, 0]),
    ]
    for want, ids in cases:
        got = _strings(tokenizer.detokenize(tf.constant([ids])))[0]
        assert got == want, (ids, got, want)
    rng = np.random.default_rng(1)
    noise = rng.integers(-5, len(vocabulary) + 5, size=(64, 40))
    out = tokenizer.detokenize(tf.constant(noise)).numpy()
    assert len(out) == 64
    assert all(isinstance(s.decode("utf-8"), str) for s in out)  # valid UTF-8, strict decode
    ragged = tf.ragged.constant([[a], [a, a, a]])
    assert _strings(tokenizer.detokenize(ragged)) == ["a", "a a a"]


def test_save_load_plain_text(tmp_path, vocabulary, tokenizer):
    tokenizer.save(str(tmp_path / "tok"))
    lines = (tmp_path / "tok" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == vocabulary and lines[-1] == ""
    again = subword.SubwordTokenizer.load(str(tmp_path / "tok"))
    assert again.vocabulary == vocabulary and again.options() == tokenizer.options()
    texts = tf.constant(SCRIPTS)
    assert (again.tokenize(texts)[1].numpy() == tokenizer.tokenize(texts)[1].numpy()).all()
    shorter = subword.SubwordTokenizer.load(str(tmp_path / "tok"), max_length=8)
    assert shorter.max_length == 8


def test_rejects_bad_vocabularies_and_inputs(tmp_path, vocabulary):
    with pytest.raises(ValueError, match="must start with"):
        subword.SubwordTokenizer(["a"] + vocabulary, 8)
    with pytest.raises(ValueError, match="512 byte pieces"):
        subword.SubwordTokenizer([p for p in vocabulary if p != "##<0x41>"], 8)
    with pytest.raises(ValueError, match=r"vocabulary\[600\] = 'a b'"):
        subword.SubwordTokenizer(vocabulary[:600] + ["a b"], 8)
    with pytest.raises(ValueError, match="duplicate"):
        subword.SubwordTokenizer(vocabulary + ["the"], 8)
    with pytest.raises(ValueError, match="max_length"):
        subword.SubwordTokenizer(vocabulary, 2, bos_eos=True)
    with pytest.raises(ValueError, match="1-D batch"):
        subword.SubwordTokenizer(vocabulary, 8).tokenize(tf.constant("a scalar"))
    with pytest.raises(ValueError, match="no room"):
        subword.train_vocabulary(["a b"], 400)
    with pytest.raises(TypeError, match="must hold strings"):
        subword.train_vocabulary(["a", 3], 1000)
    bad = tmp_path / "bad.txt"
    bad.write_text("[PAD]\n[UNK]\n\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        subword.load_vocabulary(str(bad))


def test_case_kept_when_asked(corpus):
    vocabulary = subword.train_vocabulary(corpus["train"][:500], 1200, lowercase=False)
    tokenizer = subword.SubwordTokenizer(vocabulary, 64, lowercase=False)
    assert any(p[:1].isupper() for p in vocabulary[517:])
    _, ids = tokenizer.tokenize_ragged(tf.constant(["Zürich ÆRØ Ok"]))
    assert _strings(tokenizer.detokenize(ids)) == ["Zürich ÆRØ Ok"]


class _SubwordServing(export.ServingModule):
    """text -> ids, pieces, detok: the tokenizer as an app's SavedModel holds it."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text_in):
        text_in = self.check_batch(text_in, "text")
        pieces, ids = self.tokenizer.tokenize(text_in)
        return {"ids": ids, "pieces": pieces, "detok": self.tokenizer.detokenize(ids),
                "standardized": self.tokenizer.normalize(text_in)}

    def signatures(self):
        return {"serving_default": self.serve}

    def warmup_requests(self):
        texts = SCRIPTS + ["", "an unseenword", "caf\xe9".encode("latin-1"), "🦩" * 20]
        return [("serving_default", {"text": np.array(
            [t if isinstance(t, bytes) else t.encode() for t in texts], dtype=object)})]


_ISOLATED = """
loaded = tf.saved_model.load(ARGS["path"])
serve = loaded.signatures["serving_default"]
texts = [bytes.fromhex(h) for h in ARGS["texts"]]
out = serve(text=tf.constant(texts))
empty = serve(text=tf.constant([], tf.string))
RESULT = {
    "detok": [s.decode("utf-8") for s in out["detok"].numpy()],
    "standardized": [s.decode("utf-8") for s in out["standardized"].numpy()],
    "ids": out["ids"].numpy().tolist(),
    "empty": list(empty["ids"].shape),
    "has_project": any(m.split(".")[0] in ("apps", "keras_attention") for m in sys.modules),
}
"""


def test_saved_model_runs_without_the_project(tmp_path, vocabulary):
    """The export answers TF2, a TF1 Session, saved_model_cli and the C loader TF Serving
    links (so no custom op is needed), in processes that cannot import the project."""
    tokenizer = subword.SubwordTokenizer(vocabulary, max_length=128)
    module = _SubwordServing(tokenizer)
    path = export.export(module, str(tmp_path / "subword"))
    assert replay_warmup(path) == [["serving_default", ["detok", "ids", "pieces",
                                                        "standardized"]]]
    texts = [t.encode() for t in SCRIPTS] + [b"\xff bad bytes", b"", "Ünseen wörds 🦩".encode()]
    result = run_isolated(_ISOLATED, path=path, texts=[t.hex() for t in texts])
    assert not result["has_project"]
    assert result["detok"] == result["standardized"]
    assert result["detok"][-1] == "ünseen wörds 🦩" and result["detok"][-3] == "\ufffd bad bytes"
    _, ids = tokenizer.tokenize(tf.constant(texts))
    assert result["ids"] == ids.numpy().tolist()
    assert result["empty"] == [0, 128]


def test_runs_in_a_tf_data_pipeline(tokenizer):
    """MLM pretraining tokenizes its corpus in `Dataset.map` with the same object."""
    texts = SCRIPTS[:6]
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(4).map(
        lambda t: tokenizer.tokenize(t)[1])
    batches = [b.numpy() for b in dataset]
    assert [b.shape for b in batches] == [(4, 256), (2, 256)]
    eager = tokenizer.tokenize(tf.constant(texts))[1].numpy()
    assert (np.concatenate(batches) == eager).all()


def test_a_batch_is_traced_once_and_tokenized_as_without_tracing(corpus, vocabulary):
    """`tokenize` calls one graph traced once per tokenizer (the apps' pipelines, evaluation
    and export share it); its ids are those of the same code run op by op."""
    tokenizer = subword.SubwordTokenizer(vocabulary, max_length=64, bos_eos=False)
    texts = tf.constant(SCRIPTS + corpus["test"][:300] + ["", "\xff"])
    for _ in range(3):
        tf.data.Dataset.from_tensor_slices(texts).batch(8).map(
            lambda t: tokenizer.tokenize(t)[1])
    traced = tokenizer.tokenize(texts)
    assert tokenizer._tokenize_batch.experimental_get_tracing_count() == 1
    for got, want in zip(traced, tokenizer._tokenize(texts), strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_bytes_only_vocabulary_still_round_trips():
    tokenizer = subword.SubwordTokenizer(list(subword.RESERVED) + subword.byte_pieces(), 64)
    pieces, ids = tokenizer.tokenize_ragged(tf.constant(["ab é"]))
    assert _rows(pieces)[0] == ["<0x61>", "##<0x62>", "<0xC3>", "##<0xA9>"]
    assert _strings(tokenizer.detokenize(ids)) == ["ab é"]
