"""Scores and attention pictures."""

from __future__ import annotations

import os

import keras
import numpy as np

from apps.sentiment import evaluation, model, pipeline
from tests.apps.sentiment.fixtures import tiny_model


def test_attention_plots_shade_by_weight(tmp_path):
    tokens = np.array([[b"a", b"fine", b"film", b""], [b"", b"", b"", b""]])
    weights = np.array([[0.2, 0.7, 0.1, 0.0], [0, 0, 0, 0]])
    probs = np.array([[0.1, 0.9], [0.6, 0.4]])
    path = evaluation.attention_html(str(tmp_path / "a.html"), tokens, weights, [1, 0], probs)
    page = open(path, encoding="utf-8").read()
    assert 'title="0.700" style="background:rgba(220,60,30,1.000)">fine' in page
    assert 'title="0.100" style="background:rgba(220,60,30,0.143)">film' in page
    png = evaluation.attention_png(str(tmp_path / "a.png"), tokens, weights, [1, 0], probs)
    assert os.path.getsize(png) > 1000


def _parts():
    texts = [b"a b c d e f g", b"short", b"one two three four five six seven eight", b"x y"]
    split = pipeline.Split(np.array(texts, dtype=object), np.array([1, 0, 1, 0], np.int32))
    tokenizer = pipeline.make_tokenizer(split, 50, 40)
    return split, tokenizer


def test_pick_examples_prefers_readable_lengths():
    split, tokenizer = _parts()
    picked = evaluation.pick_examples(split, tokenizer, 3)
    # The two sentences of 6..30 tokens first, then the first of the rest.
    assert list(picked.texts) == [split.texts[0], split.texts[2], split.texts[1]]
    assert list(picked.labels) == [1, 1, 0]
    assert len(evaluation.pick_examples(split, tokenizer, 0)) == 0


def test_evaluate_and_pictures_of_a_model(tmp_path):
    split, tokenizer = _parts()
    models = model.build_model(tiny_model(max_length=40,
                                          vocab_size=tokenizer.vocabulary_size))
    scores = evaluation.evaluate(models.classifier, split, tokenizer, batch_size=3)
    assert scores["examples"] == 4 and 0.0 <= scores["accuracy"] <= 1.0
    assert scores["positive_share"] == 0.5
    assert evaluation.evaluate(models.classifier, split.head(0), tokenizer, 3)["examples"] == 0
    paths = evaluation.attention_pictures(models.explainer, split.head(2), tokenizer,
                                          str(tmp_path), "t")
    assert sorted(paths) == ["attention_html", "attention_png"]
    assert all(os.path.isfile(p) for p in paths.values())
    assert evaluation.attention_pictures(models.explainer, split.head(0), tokenizer,
                                         str(tmp_path / "none"), "t") == {}


def test_a_model_without_the_prior_is_combined_with_the_package_lexicon():
    """bert has no in-graph prior: `prior_weights` weighs VADER's compound beside it."""
    split = pipeline.Split(np.array([b"a wonderful, moving film", b"dull, awful and boring",
                                     b"great acting", b"a terrible mess"], dtype=object),
                           np.array([1, 0, 1, 0], np.int32))
    tokenizer = pipeline.make_tokenizer(split, 20, 4)
    ids = keras.Input((4,), dtype="int32")
    # Always "positive" at log-odds log(0.6/0.4): right on half the sentences.
    constant = keras.layers.Lambda(
        lambda x: keras.ops.zeros_like(keras.ops.cast(x[:, :2], "float32"))
        + keras.ops.array([[0.4, 0.6]]))(ids)
    always_positive = keras.Model(ids, {"probabilities": constant})
    scores = evaluation.evaluate(always_positive, split, tokenizer, 4, prior_weights=(0.0, 5.0))
    assert scores["accuracy"] == 0.5
    assert scores["accuracy_by_prior_weight"] == {"0": 0.5, "5": 1.0}  # VADER gets all four
