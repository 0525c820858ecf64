"""Keyword-spotting models: every variant builds and trains; the front end is per utterance."""

from __future__ import annotations

import re

import numpy as np
import pytest

from apps.keyword_spotting import model
from keras_attention.layers import DotProductAttention, TransformerEncoderBlock
from tests.apps.keyword_spotting.conftest import clips
from tests.layer_checks import one_training_step_changes_weights

SMALL = dict(num_classes=5, rnn_units=8, conv_filters=2, kwt_dim=16, kwt_depth=1, kwt_heads=2,
             kwt_mlp_dim=16, cnn_filters=(4, 8, 8))


@pytest.mark.parametrize("variant", model.VARIANTS)
def test_variant_builds_trains_and_explains(variant):
    spotter = model.build_model(model.ModelConfig(variant=variant, **SMALL))
    x, y = clips(4), np.array([0, 1, 2, 3])
    one_training_step_changes_weights(spotter.classifier, x, y,
                                      loss="sparse_categorical_crossentropy")
    out = spotter.explainer(x, training=False)
    frames = spotter.config.attention_steps  # Frames; the speech embedding's windows.
    assert frames == (6 if variant == "speech_embedding" else 51)
    assert tuple(out["probabilities"].shape) == (4, 5)
    assert tuple(out["attention_weights"].shape) == (4, frames)
    np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(out["attention_weights"], -1), 1.0, atol=1e-5)
    assert np.all(np.asarray(out["attention_weights"]) >= 0)
    # The classifier and the explainer share their weights.
    np.testing.assert_allclose(spotter.classifier(x), out["probabilities"], atol=1e-6)


def test_variants_use_the_library_attention():
    rnn = model.build_model(model.ModelConfig(variant="attention_rnn", **SMALL)).classifier
    assert isinstance(rnn.get_layer("attention"), DotProductAttention)
    kwt = model.build_model(model.ModelConfig(variant="kwt", **SMALL)).classifier
    assert isinstance(kwt.get_layer("encoder0"), TransformerEncoderBlock)
    cnn = model.build_model(model.ModelConfig(variant="cnn", **SMALL)).classifier
    assert not any(isinstance(layer, (DotProductAttention, TransformerEncoderBlock))
                   for layer in cnn.layers)


def test_attention_rnn_weights_follow_the_sound():
    """Weights are a softmax over frames: changing the audio changes where they go."""
    spotter = model.build_model(model.ModelConfig(variant="attention_rnn", **SMALL))
    x = np.zeros((2, 16000), "float32")
    x[0, 1000:4000] = clips(1)[0, :3000]
    x[1, 12000:15000] = clips(1)[0, :3000]
    w = np.asarray(spotter.explainer(x, training=False)["attention_weights"])
    assert not np.allclose(w[0], w[1])


def test_unrolled_lstms_compute_what_the_looped_ones_do():
    looped = model.build_model(model.ModelConfig(rnn_unroll=False, **SMALL)).explainer
    unrolled = model.build_model(model.ModelConfig(rnn_unroll=True, **SMALL)).explainer
    assert looped.get_layer("bilstm1").forward_layer.unroll is False
    assert unrolled.get_layer("bilstm1").forward_layer.unroll is True
    unrolled.set_weights(looped.get_weights())
    x = clips(3)
    a, b = looped(x, training=False), unrolled(x, training=False)
    for key in ("probabilities", "attention_weights"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-5)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant='lstm'"):
        model.build_model(model.ModelConfig(variant="lstm"))


@pytest.mark.parametrize("field, value, message", [
    ("rnn_units", 0, "rnn_units=0"),
    ("dropout", 1.0, "dropout=1.0"),
    ("frequency_warp", -0.1, "frequency_warp=-0.1"),
    ("kwt_heads", 3, "kwt_heads=3"),  # 64 is not divisible by 3.
    ("frame_length", 1024, "frame_length=1024"),
    ("max_freq", 9000.0, "max_freq=9000.0"),
    ("cnn_filters", (), "cnn_filters=()"),
    ("cnn_filters", (8, 0), "cnn_filters=0"),
    ("seed", -1, "seed=-1"),
])
def test_bad_model_config_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model.ModelConfig(**{field: value})


def _fit_keeping_the_last_step(classifier, x, y) -> tuple[list, list]:
    """Fits 2 epochs; returns the weights after the last step (before `fit` ends) and the
    weights `fit` leaves."""
    import keras

    class KeepLastStep(keras.callbacks.Callback):
        weights: list = []

        def on_train_batch_end(self, batch, logs=None):
            self.weights = [np.asarray(w) for w in self.model.trainable_weights]

    keep = KeepLastStep()
    classifier.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[keep])
    return keep.weights, [np.asarray(w) for w in classifier.trainable_weights]


def test_compile_model_with_ema_ends_fit_on_the_average_weights():
    """`ema_momentum`: fit ends with the optimizer's moving average written into the model,
    not the last step's weights (they differ after a few steps at a high learning rate);
    without it, on the last step's."""
    x, y = clips(8, seed=2), np.arange(8) % 5
    for momentum in (0.0, 0.9):
        spotter = model.build_model(model.ModelConfig(variant="cnn", seed=3, **SMALL))
        model.compile_model(spotter.classifier, 1e-2, ema_momentum=momentum)
        optimizer = spotter.classifier.optimizer
        assert optimizer.use_ema == (momentum > 0)
        last_step, final = _fit_keeping_the_last_step(spotter.classifier, x, y)
        changed = [not np.array_equal(a, b) for a, b in zip(final, last_step, strict=True)]
        assert any(changed) == (momentum > 0), changed
        if momentum:
            averages = optimizer._model_variables_moving_average
            for weight, average in zip(final, averages, strict=True):
                np.testing.assert_array_equal(weight, np.asarray(average))


def test_compile_model_schedules_the_learning_rate():
    spotter = model.build_model(model.ModelConfig(variant="cnn", **SMALL))
    assert model.compile_model(spotter.classifier, 1e-3, steps=100) is spotter.classifier
    schedule = spotter.classifier.optimizer.learning_rate
    assert spotter.classifier.loss is not None and float(schedule) == pytest.approx(1e-4)
