"""The in-graph tokenizer: defined results for every input a client can send."""

import re

import numpy as np
import pytest
import tensorflow as tf

from apps.common import text


@pytest.fixture(scope="module")
def tokenizer():
    vocab = text.build_vocabulary(
        ["The film is great.", "A bad, bad film!"], 32,
        reserved=(text.PAD, text.UNK, text.START, text.END),
    )
    return text.Tokenizer(vocab, max_length=6, bos_eos=True)


def test_vocabulary_ranks_by_frequency():
    vocab = text.build_vocabulary(["b a a", "c a b"], 10)
    assert vocab == [text.PAD, text.UNK, "a", "b", "c"]


def test_tokenize_pads_truncates_and_maps_unknowns(tokenizer):
    tokens, ids = tokenizer.tokenize(tf.constant(["The film is GREAT.", "zebra", "", "a " * 50]))
    tokens, ids = tokens.numpy(), ids.numpy()
    assert ids.shape == (4, 6) and ids.dtype == np.int32
    assert [t.decode() for t in tokens[0]] == ["[START]", "the", "film", "is", "great", "[END]"]
    assert ids[1, 1] == 1 and tokens[1, 1] == b"zebra"  # unknown id, original token kept
    assert ids[2].tolist() == [tokenizer.start_id, tokenizer.end_id, 0, 0, 0, 0]
    assert ids[3, -1] == tokenizer.end_id  # truncated, END kept


def test_bad_bytes_and_empty_batch(tokenizer):
    tokens, ids = tokenizer.tokenize(tf.constant([b"\xff\xfe film \xc3"]))
    assert ids.shape == (1, 6)
    assert "film" in [t.decode() for t in tokens.numpy()[0]]
    _, ids = tokenizer.tokenize(tf.constant([], tf.string))
    assert ids.shape == (0, 6)


def test_detokenize_stops_at_end(tokenizer):
    _, ids = tokenizer.tokenize(tf.constant(["the film ."]))  # START the film . END PAD
    ids = tf.concat([ids[:, :-1], [[tokenizer.vocabulary.index("bad")]]], axis=1)
    assert tokenizer.detokenize(ids).numpy()[0] == b"the film."


def test_save_load(tmp_path, tokenizer):
    path = str(tmp_path / "vocab.json")
    tokenizer.save(path)
    again = text.Tokenizer.load(path)
    assert again.vocabulary == tokenizer.vocabulary and again.max_length == 6


def test_rejects_bad_vocabulary():
    with pytest.raises(ValueError, match="must start with"):
        text.Tokenizer(["a", "b"], 4)
    with pytest.raises(ValueError, match="max_length"):
        text.Tokenizer([text.PAD, text.UNK], 0)


def test_standardize_leaves_single_spaces():
    out = text.standardize(tf.constant(["  A, b!  (c)\u00a0\u3000d. ", ""])).numpy()
    assert out.tolist() == [b"a , b ! ( c ) d .", b""]


def test_no_unicode_normalization_as_documented():
    """The docstring says no NFKC (no stock TF op; exported vocabularies depend on it)."""
    words = text.split_words(
        tf.constant(["wait… ﬁne Ｆｕｌｌ cafe\u0301 café"]), unicode_words=True).to_list()[0]
    assert [w.decode() for w in words] == [
        "wait", "…", "ﬁne", "ｆｕｌｌ", "cafe\u0301", "café"]
    assert "NFKC" in text.standardize.__doc__ and "No Unicode normalization" in (
        text.standardize.__doc__)


def test_keep_whole_keeps_exactly_its_words_and_splits_the_rest_as_before():
    pattern = text.whole_tokens_pattern([":)", ":-(", "<3", "a.b"])
    texts = ["Loved it :) but :-( <3", "no :)x or x:) here", ":)", "", "  ", "a.b a.bc",
             "It's 'quoted' , done .", "fenêtre ... !?", "\u00e9t\u00e9 :-(\u00a0<3"]
    kept = text.split_words(tf.constant(texts), keep_whole=pattern).to_list()
    assert [t.decode() for t in kept[0]] == ["loved", "it", ":)", "but", ":-(", "<3"]
    assert [t.decode() for t in kept[1]] == ["no", ":", ")", "x", "or", "x", ":", ")", "here"]
    assert [t.decode() for t in kept[5]] == ["a.b", "a", ".", "bc"]
    # (The sentiment splitting's `\w` is ASCII: "été" comes out in three, as without.)
    assert [t.decode() for t in kept[8]] == ["\u00e9", "t", "\u00e9", ":-(", "<3"]
    plain = text.split_words(tf.constant(texts)).to_list()
    # Texts without any of the words come out exactly as without keep_whole.
    for i in (3, 4, 6, 7):
        assert kept[i] == plain[i], texts[i]
    # Any text none of whose words is kept comes out exactly as without keep_whole (the
    # punctuation is spaced out word by word then, not on the whole text).
    rng = np.random.default_rng(0)
    alphabet = list("ab .,:;()<3-'’!?\t") + ["é", "\u00a0", ":)", ":-(", " a.b "]
    samples = ["".join(rng.choice(alphabet, size=rng.integers(0, 20))) for _ in range(400)]
    kept = text.split_words(tf.constant(samples), keep_whole=pattern).to_list()
    plain = text.split_words(tf.constant(samples)).to_list()
    compared = 0
    for sample, k, p in zip(samples, kept, plain, strict=True):
        if not any(re.fullmatch(pattern, w) for w in sample.lower().split()):
            assert k == p, sample
            compared += 1
    assert compared > 100


def test_whole_tokens_pattern_refuses_empty_or_spaced_words():
    with pytest.raises(ValueError, match="non-empty and without spaces"):
        text.whole_tokens_pattern([":)", ""])
    with pytest.raises(ValueError, match="non-empty and without spaces"):
        text.whole_tokens_pattern(["can't stand"])


def test_tokenizer_keeps_whole_words_and_saves_them(tmp_path):
    tok = text.Tokenizer([text.PAD, text.UNK, "good", ":)"], max_length=4,
                         keep_whole=[":)", "<3"])
    tokens, ids = tok.tokenize(tf.constant(["good :) <3"]))
    assert [t.decode() for t in tokens.numpy()[0]] == ["good", ":)", "<3", ""]
    assert ids.numpy().tolist() == [[2, 3, 1, 0]]
    path = str(tmp_path / "v.json")
    tok.save(path)
    assert text.Tokenizer.load(path).keep_whole == (":)", "<3")
    # A tokenizer saved before keep_whole existed loads with none.
    old = tmp_path / "old.json"
    old.write_text('{"vocabulary": ["[PAD]", "[UNK]"], "max_length": 3, "bos_eos": false, '
                   '"lowercase": true}')
    assert text.Tokenizer.load(str(old)).keep_whole == ()


def test_token_ids_of_a_split_in_chunks_equal_one_call(tokenizer):
    texts = ["The film is great.", "zebra", "", "a " * 50, "A bad film"]
    whole = tokenizer.tokenize(tf.constant(texts))[1].numpy()
    np.testing.assert_array_equal(text.token_ids(tokenizer, texts, chunk_size=2).numpy(), whole)
    assert text.token_ids(tokenizer, []).shape == (0, 6)
