"""The VADER lexicon's features: parsing, the vocabulary, and the frozen table in the model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.common import text as common_text
from apps.sentiment import lexicon, model, train
from tests.apps.sentiment.fixtures import tiny_model
from tests.layer_checks import one_training_step_changes_weights


def test_parse_lexicon_reads_means_and_names_a_bad_line():
    lines = ["good\t1.9\t0.9\t[2, 2]\r\n", "\n", "bad\t-2.5\t0.5\t[-3, -2]\n"]
    assert lexicon.parse_lexicon(lines) == {"good": 1.9, "bad": -2.5}
    with pytest.raises(ValueError, match="line 2 .*'oops'"):
        lexicon.parse_lexicon(["good\t1.9", "oops"])


def test_vader_features_cover_ratings_negations_and_boosters():
    features = lexicon.vader_features()
    assert len(features) > 7000
    good, hate = features["good"], features["hate"]
    assert good[0] > 0.3 and good[1] == 1.0 and hate[0] < -0.3 and hate[1] == 1.0
    assert features["not"] == (0.0, 0.0, 1.0, 0.0, 0.0)
    assert features["but"] == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert features["isn't"][2] == 1.0 and features["isn\u2019t"][2] == 1.0
    assert features["very"][3] == 1.0 and features["slightly"][3] == -1.0
    assert all(-1.0 <= f[0] <= 1.0 for f in features.values())
    # Only what the word tokenizer keeps as one token: ':)' is split in two.
    assert ":)" not in features
    words = sorted(features)[:500]
    split = common_text.split_words(np.array(words, dtype=object)).to_list()
    assert all(len(tokens) == 1 for tokens in split)


def test_extend_vocabulary_keeps_ids_and_appends_what_is_missing():
    vocabulary = ["[PAD]", "[UNK]", "the", "good"]
    assert lexicon.extend_vocabulary(vocabulary, {"good", "zest", "awful"}) == (
        vocabulary + ["awful", "zest"])
    assert lexicon.extend_vocabulary(vocabulary, ()) == vocabulary


def test_feature_matrix_rows_follow_the_vocabulary():
    table = {"good": (0.5, 1.0, 0.0, 0.0, 0.0), "not": (0.0, 0.0, 1.0, 0.0, 0.0)}
    matrix = lexicon.feature_matrix(["[PAD]", "[UNK]", "not", "film", "good"], table)
    assert matrix.shape == (5, len(lexicon.FEATURES)) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[[0, 1, 3]], 0.0)
    np.testing.assert_array_equal(matrix[2], table["not"])
    np.testing.assert_array_equal(matrix[4], table["good"])


def _score_oracle(rows):
    """The rules of `LexiconScore`, one sentence (a list of feature rows) at a time."""
    total, contrast_at = 0.0, [i for i, r in enumerate(rows) if r[4]]
    for i, (valence, _, _, _, _) in enumerate(rows):
        v = valence * 4
        if i > 0 and rows[i - 1][3]:
            v += np.sign(v) * 0.293 * rows[i - 1][3]
        if any(rows[j][2] for j in range(max(0, i - 3), i)):
            v *= -0.74
        if contrast_at:
            v *= 1.5 if i > contrast_at[0] else 0.5
        total += v
    return total / np.sqrt(total * total + 15)


def _rows(words, features):
    return [features.get(w, (0.0,) * len(lexicon.FEATURES)) for w in words]


@pytest.mark.parametrize("sentence", [
    "the food was good", "the food was not good", "not really very good at all",
    "very good", "slightly good", "good but terrible", "terrible , but good and fun",
    "i never said it was bad", "a table and a chair", "",
])
def test_lexicon_score_follows_the_rules(sentence):
    features = lexicon.vader_features()
    words = sentence.split()
    rows = _rows(words, features) + [(0.0,) * len(lexicon.FEATURES)] * (12 - len(words))
    mask = np.arange(12)[None, :] < len(words)
    got = np.asarray(lexicon.LexiconScore()(np.array([rows], np.float32), mask))
    assert got.shape == (1, 1)
    np.testing.assert_allclose(got[0, 0], _score_oracle(rows[:len(words)]), atol=1e-5)


def test_lexicon_score_signs_and_padding():
    features = lexicon.vader_features()
    score = lexicon.LexiconScore()

    def of(text, pad=0):
        words = text.split()
        rows = _rows(words, features) + [features["good"]] * pad  # padding is masked out
        mask = np.arange(len(rows))[None, :] < len(words)
        return float(np.asarray(score(np.array([rows], np.float32), mask))[0, 0])

    assert of("good") > 0 > of("not good") and of("very good") > of("good") > of("slightly good")
    assert of("bad but good") > 0 > of("good but bad")
    assert of("a table") == 0.0 and of("good", pad=5) == pytest.approx(of("good"))


def test_prior_softmax_adds_the_lexicon_margin():
    logits = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
    score = np.array([[0.5], [-0.2]], np.float32)
    layer = lexicon.PriorSoftmax(2.0)
    got = np.asarray(layer(logits, score))
    margin = 2.0 * np.arctanh(score[:, 0])
    expected_positive = 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0] + margin)))
    np.testing.assert_allclose(got[:, 1], expected_positive, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
    # |score| -> 1 stays finite; inference-only leaves training's softmax alone.
    assert np.all(np.isfinite(np.asarray(layer(logits, np.ones((2, 1), np.float32)))))
    only_inference = lexicon.PriorSoftmax(2.0, in_training=False)
    np.testing.assert_allclose(np.asarray(only_inference(logits, score, training=True)),
                               np.asarray(keras.ops.softmax(logits)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(only_inference(logits, score)), got, atol=1e-6)
    clone = lexicon.PriorSoftmax.from_config(only_inference.get_config())
    assert (clone.weight, clone.in_training) == (2.0, False)


def test_prior_softmax_trains_with_one_weight_and_serves_with_another():
    logits = np.array([[0.5, -0.5], [-1.0, 1.0]], np.float32)
    score = np.array([[0.6], [-0.3]], np.float32)
    layer = lexicon.PriorSoftmax(4.0, inference_weight=16.0)
    np.testing.assert_allclose(np.asarray(layer(logits, score, training=True)),
                               np.asarray(lexicon.PriorSoftmax(4.0)(logits, score)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(logits, score)),
                               np.asarray(lexicon.PriorSoftmax(16.0)(logits, score)), atol=1e-6)
    assert layer.served_weight == 16.0 and lexicon.PriorSoftmax(4.0).served_weight == 4.0
    clone = lexicon.PriorSoftmax.from_config(layer.get_config())
    assert (clone.weight, clone.inference_weight) == (4.0, 16.0)
    with pytest.raises(ValueError, match="lexicon_prior_inference"):
        model.ModelConfig(lexicon="vader", lexicon_prior_inference=-1.0)


def test_reweighed_margin_is_the_margin_of_the_prior_at_another_weight():
    from apps.sentiment import evaluation

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (64, 2)).astype(np.float32)
    score = rng.uniform(-0.99, 0.99, (64, 1)).astype(np.float32)
    trained = np.asarray(lexicon.PriorSoftmax(4.0)(logits, score))
    for weight in (0.0, 1.0, 4.0, 9.0):
        expected = np.asarray(lexicon.PriorSoftmax(weight)(logits, score))
        margin = evaluation.reweighed_margin(trained, score[:, 0], 4.0, weight)
        np.testing.assert_allclose(margin, np.log(expected[:, 1] / expected[:, 0]), atol=1e-3)
    # A saturated output keeps its side; no inf or nan.
    saturated = evaluation.reweighed_margin(np.array([[0.0, 1.0], [1.0, 0.0]]),
                                            np.array([0.2, -0.2]), 4.0, 0.0)
    assert saturated[0] > 0 > saturated[1] and np.all(np.isfinite(saturated))


def test_sentiment_domains_prior_table_averages_weights_over_seeds():
    from benchmarks import sentiment_domains

    def row(seed, accuracy):
        return {"run": "without_nyt", "seed": seed, "trained_on": "movies+tweets+amazon",
                "scores": {"nyt": {"accuracy": accuracy["4"], "examples": 10, "split": "all",
                                   "lexicon_accuracy": 0.7,
                                   "accuracy_by_prior_weight": accuracy}}}

    rows = [row(1, {"0": 0.6, "4": 0.7, "8": 0.8}), row(2, {"0": 0.62, "4": 0.72, "8": 0.7})]
    text = sentiment_domains.prior_table(rows)
    assert "| nyt held out | 0.6100 | 0.7100 | 0.7500 | 0.7000 |" in text
    assert "| **mean held out** | 0.6100 | 0.7100 | 0.7500 | 0.7000 |" in text
    assert "mean of the test splits" not in text
    assert sentiment_domains.prior_table([{"scores": {"nyt": {"split": "all"}}}]) == ""


@pytest.mark.parametrize("variant, prior", [("bilstm_attention", 0.0), ("mean_pooling", 0.0),
                                            ("transformer", 0.0), ("bilstm_attention", 4.0)])
def test_the_lexicon_table_is_frozen_and_read(variant, prior):
    config = tiny_model(variant=variant, lexicon="vader", lexicon_prior=prior)
    rng = np.random.default_rng(0)
    matrix = rng.uniform(-1, 1, (config.vocab_size, len(lexicon.FEATURES))).astype("float32")
    classifier, explainer = model.build_model(config, lexicon_matrix=matrix)
    table = classifier.get_layer("lexicon_features")
    assert not table.trainable
    np.testing.assert_array_equal(table.get_weights()[0], matrix)
    ids = rng.integers(2, config.vocab_size, size=(4, config.max_length)).astype("int32")
    one_training_step_changes_weights(classifier, ids, np.array([0, 1, 0, 1]),
                                      loss="sparse_categorical_crossentropy")
    np.testing.assert_array_equal(table.get_weights()[0], matrix)  # not trained
    # The features reach the output: other features, other probabilities.
    after = np.asarray(classifier(ids, training=False))
    assert after.shape == (4, 2)
    table.set_weights([-matrix])
    assert not np.allclose(np.asarray(classifier(ids, training=False)), after, atol=1e-6)
    out = explainer(ids)
    assert ("lexicon_score" in out) == (prior > 0)
    if prior:
        score = np.asarray(out["lexicon_score"])
        assert score.shape == (4,) and np.all(np.abs(score) < 1)


def test_the_lexicon_is_refused_where_it_cannot_work():
    with pytest.raises(ValueError, match="lexicon='vader' is not available for variant='han'"):
        model.ModelConfig(variant="han", lexicon="vader")
    with pytest.raises(ValueError, match="lexicon='wordnet'"):
        model.ModelConfig(lexicon="wordnet")
    with pytest.raises(ValueError, match="lexicon_prior=-1"):
        model.ModelConfig(lexicon="vader", lexicon_prior=-1.0)
    with pytest.raises(ValueError, match="needs vocabulary=word"):
        train.TrainConfig(vocabulary="subword", model=tiny_model(variant="transformer",
                                                                 lexicon="vader"))


def test_a_model_with_the_lexicon_prior_round_trips(tmp_path):
    config = tiny_model(lexicon="vader", lexicon_prior=4.0, lexicon_prior_training=False)
    rng = np.random.default_rng(1)
    matrix = rng.uniform(-1, 1, (config.vocab_size, len(lexicon.FEATURES))).astype("float32")
    classifier, _ = model.build_model(config, lexicon_matrix=matrix)
    ids = rng.integers(2, config.vocab_size, size=(3, config.max_length)).astype("int32")
    path = str(tmp_path / "m.keras")
    classifier.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(ids)), np.asarray(classifier(ids)), atol=1e-6)
    assert loaded.get_layer("probabilities").in_training is False


def test_auto_picks_the_lexicon_for_words_only():
    resolve = model.resolve_lexicon
    assert model.ModelConfig().lexicon == "auto"
    assert resolve(tiny_model(), subword=False).lexicon == "vader"
    assert resolve(tiny_model(), subword=True).lexicon == "none"
    assert resolve(tiny_model(variant="han"), subword=False).lexicon == "none"
    assert resolve(tiny_model(lexicon="none"), subword=False).lexicon == "none"
    # Long documents: off with auto (its prior held flat models at the lexicon's own
    # accuracy on polarity_reviews), on when asked.
    assert resolve(tiny_model(), subword=False, documents=True).lexicon == "none"
    assert resolve(tiny_model(lexicon="vader"), subword=False,
                   documents=True).lexicon == "vader"
    with pytest.raises(ValueError, match="which is off with long documents"):
        resolve(tiny_model(emoticons=True), subword=False, documents=True)
    # auto is not on by itself: build_model reads only "vader".
    classifier, _ = model.build_model(tiny_model())
    assert "lexicon_features" not in [layer.name for layer in classifier.layers]
    # Subwords with the default are fine; only an explicit vader is refused.
    assert train.TrainConfig(vocabulary="subword",
                             model=tiny_model(variant="transformer")).subword


def test_emoticons_are_the_lexicon_s_entries_the_tokenizer_would_split():
    emoticons = set(lexicon.vader_emoticons())
    assert {":)", ":-(", "<3", ":d", ";)", "\\o/"} <= emoticons
    # Words, hyphenated words and multi-word entries are not emoticons.
    assert not {"good", "cover-up", "short-sightedness", "can't stand"} & emoticons
    assert all(e == e.lower() and " " not in e for e in emoticons)
    split = common_text.split_words(np.array(sorted(emoticons), dtype=object)).to_list()
    assert all(len(tokens) > 1 for tokens in split)  # each is split without keep_whole
    plain, with_emoticons = lexicon.vader_features(), lexicon.vader_features(emoticons=True)
    assert set(with_emoticons) - set(plain) == emoticons
    assert with_emoticons[":)"][:2] == (2.0 / 4, 1.0) and with_emoticons[":("][0] < 0
    assert all(with_emoticons[w] == f for w, f in plain.items())


def test_emoticons_follow_the_lexicon():
    resolve = model.resolve_lexicon
    assert resolve(tiny_model(), subword=False).emoticons is True
    assert resolve(tiny_model(lexicon="none"), subword=False).emoticons is False
    assert resolve(tiny_model(emoticons=False), subword=False).emoticons is False
    assert resolve(tiny_model(variant="transformer"), subword=True).emoticons is False
    with pytest.raises(ValueError, match="emoticons=True .* needs the lexicon, which is off "
                                         "with vocabulary=subword"):
        resolve(tiny_model(variant="transformer", emoticons=True), subword=True)
    with pytest.raises(ValueError, match="emoticons=True .* needs lexicon=vader"):
        model.ModelConfig(lexicon="none", emoticons=True)
    with pytest.raises(ValueError, match="emoticons"):
        model.ModelConfig(emoticons="yes")


def test_score_texts_rates_raw_text_as_the_model_s_score_does():
    scores = lexicon.score_texts(["The food was good", b"not good at all", "a chair", "",
                                  "it is :)", "it is :("])
    assert scores.shape == (6,) and scores.dtype == np.float32
    assert scores[0] > 0 > scores[1] and scores[2] == scores[3] == 0.0
    assert scores[4] == scores[5] == 0.0  # ":)" is split in two without emoticons
    with_emoticons = lexicon.score_texts(["it is :)", "it is :(", "good"], emoticons=True)
    assert with_emoticons[0] > 0 > with_emoticons[1]
    np.testing.assert_allclose(with_emoticons[2], scores[0], atol=1e-6)  # both: "good" alone
    assert lexicon.score_texts([]).shape == (0,)
