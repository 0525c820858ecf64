"""The three variants: build, train a step, explain; the ModelConfig checks."""

from __future__ import annotations

import numpy as np
import pytest

from apps.sentiment import model
from tests.apps.sentiment.fixtures import TINY, tiny_model
from tests.layer_checks import one_training_step_changes_weights


@pytest.mark.parametrize(
    "variant, extra",
    # han reads (batch, S, W) ids: tests/apps/sentiment/test_hierarchical.py; bert needs
    # a checkpoint: tests/apps/sentiment/test_bert_variant.py.
    [(v, {}) for v in model.VARIANTS if v not in ("han", "bert")]
    + [("bilstm_attention", {"attention_hops": 3, "attention_penalty": 0.1})],
)
def test_variant_builds_trains_and_explains(variant, extra):
    config = tiny_model(variant=variant, **extra)
    classifier, explainer = model.build_model(config)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, config.vocab_size, size=(6, config.max_length)).astype("int32")
    lengths = np.array([16, 9, 3, 1, 12, 0])
    ids[np.arange(16)[None, :] >= lengths[:, None]] = 0
    labels = np.array([0, 1, 0, 1, 1, 0])
    one_training_step_changes_weights(classifier, ids, labels,
                                      loss="sparse_categorical_crossentropy")
    out = explainer(ids, training=False)
    probs = np.asarray(out["probabilities"])
    weights = np.asarray(out["attention_weights"])
    assert probs.shape == (6, 2) and weights.shape == (6, config.max_length)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, classifier(ids, training=False), atol=1e-6)  # shared
    assert np.all(weights[ids == 0] == 0)
    np.testing.assert_allclose(weights.sum(-1), (lengths > 0).astype(float), atol=1e-5)
    if variant == "mean_pooling":
        np.testing.assert_allclose(weights[1, :9], 1 / 9, atol=1e-6)
    else:
        assert not np.allclose(weights[0], 1 / 16)  # learned, not uniform


def test_build_model_names_its_two_models():
    models = model.build_model(tiny_model())
    assert models.classifier.name == "sentiment_bilstm_attention"
    assert models.explainer.name == "sentiment_bilstm_attention_explainer"
    assert models.classifier.count_params() == models.explainer.count_params()


def test_compile_model_uses_the_learning_rate():
    config = tiny_model(learning_rate=0.003)
    classifier = model.compile_model(model.build_model(config).classifier, config)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(0.003)
    assert classifier.loss == "sparse_categorical_crossentropy"


def test_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="variant='cnn'.*bilstm_attention"):
        model.ModelConfig(variant="cnn")


@pytest.mark.parametrize("field, value", [
    ("attention_hops", 0), ("lstm_units", 2.5), ("dropout", 1.0), ("attention_dropout", -0.1),
    ("learning_rate", 0.0), ("attention_penalty", -1.0), ("learning_rate", True),
])
def test_bad_model_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        model.ModelConfig(**{field: value})


def test_model_config_is_frozen():
    config = model.ModelConfig(**TINY)
    with pytest.raises(AttributeError):
        config.lstm_units = 3
