"""Keyword-spotting models: every variant builds and trains; the front end is per utterance."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from apps.keyword_spotting import model
from keras_attention.layers import DotProductAttention, TransformerEncoderBlock
from tests.layer_checks import one_training_step_changes_weights

SMALL = dict(num_classes=5, rnn_units=8, conv_filters=2, kwt_dim=16, kwt_depth=1, kwt_heads=2,
             kwt_mlp_dim=16, cnn_filters=(4, 8, 8))


def _clips(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * rng.uniform(200, 2000, (batch, 1)) * t)
    return (0.3 * tone + 0.01 * rng.standard_normal((batch, 16000))).astype("float32")


@pytest.mark.parametrize("variant", model.VARIANTS)
def test_variant_builds_trains_and_explains(variant):
    spotter = model.build(model.ModelConfig(variant=variant, **SMALL))
    x, y = _clips(4), np.array([0, 1, 2, 3])
    one_training_step_changes_weights(spotter.classifier, x, y,
                                      loss="sparse_categorical_crossentropy")
    out = spotter.explainer(x, training=False)
    frames = spotter.config.frames
    assert frames == 51
    assert tuple(out["probabilities"].shape) == (4, 5)
    assert tuple(out["attention_weights"].shape) == (4, frames)
    np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(out["attention_weights"], -1), 1.0, atol=1e-5)
    assert np.all(np.asarray(out["attention_weights"]) >= 0)
    # The classifier and the explainer share their weights.
    np.testing.assert_allclose(spotter.classifier(x), out["probabilities"], atol=1e-6)


def test_variants_use_the_library_attention():
    rnn = model.build(model.ModelConfig(variant="attention_rnn", **SMALL)).classifier
    assert isinstance(rnn.get_layer("attention"), DotProductAttention)
    kwt = model.build(model.ModelConfig(variant="kwt", **SMALL)).classifier
    assert isinstance(kwt.get_layer("encoder0"), TransformerEncoderBlock)
    cnn = model.build(model.ModelConfig(variant="cnn", **SMALL)).classifier
    assert not any(isinstance(layer, (DotProductAttention, TransformerEncoderBlock))
                   for layer in cnn.layers)


def test_attention_rnn_weights_follow_the_sound():
    """Weights are a softmax over frames: changing the audio changes where they go."""
    spotter = model.build(model.ModelConfig(variant="attention_rnn", **SMALL))
    x = np.zeros((2, 16000), "float32")
    x[0, 1000:4000] = _clips(1)[0, :3000]
    x[1, 12000:15000] = _clips(1)[0, :3000]
    w = np.asarray(spotter.explainer(x, training=False)["attention_weights"])
    assert not np.allclose(w[0], w[1])


def test_front_end_is_per_utterance_and_gain_invariant():
    log_mel = model.LogMelSpectrogram()
    norm = model.UtteranceNormalization()
    x = _clips(3)
    together = norm(log_mel(np.concatenate([x[:1], 50 * x[1:]])))
    alone = norm(log_mel(x[:1]))
    np.testing.assert_allclose(together[:1], alone, atol=1e-4)  # Batch-mates don't matter.
    quieter = norm(log_mel(0.25 * x[:1]))
    np.testing.assert_allclose(quieter, alone, atol=2e-2)  # Nor does the gain (above the floor).
    assert tuple(alone.shape) == (1, 51, 40)
    silent = norm(log_mel(np.zeros((1, 16000), "float32")))
    assert np.all(np.isfinite(silent)) and np.allclose(silent, 0.0, atol=1e-3)


def test_spec_augment_masks_only_in_training():
    layer = model.SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=5, seed=1)
    x = keras.ops.ones((8, 51, 40))
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = np.asarray(layer(x, training=True))
    assert np.all((y == 0) | (y == 1))
    zero_bins = (y == 0).all(axis=1).sum(axis=-1)  # Masked mel bins per example.
    zero_frames = (y == 0).all(axis=2).sum(axis=-1)
    assert zero_bins.max() <= 12 and zero_frames.max() <= 10
    assert zero_bins.sum() + zero_frames.sum() > 0


def test_frequency_warp_stretches_the_frequency_axis_only_in_training():
    layer = model.FrequencyWarp(max_warp=0.2, seed=3)
    ramp = np.tile(np.arange(40, dtype="float32"), (6, 51, 1))  # Value = bin index.
    np.testing.assert_array_equal(layer(ramp, training=False), ramp)
    y = np.asarray(layer(ramp, training=True))
    alpha = 39.0 / np.maximum(y[:, 0, 39], 1e-6)  # Bin 39 reads bin 39 / alpha (< 40).
    stretched = alpha > 1.0
    expected = np.minimum(np.arange(40)[None, :] / alpha[:, None], 39.0)
    assert stretched.any()
    np.testing.assert_allclose(y[stretched, 0, :], expected[stretched], atol=1e-4)
    assert np.all(y[:, :1, :] == y[:, 1:2, :])  # Same warp for every frame of a clip.
    assert np.all(np.abs(alpha - 1.0) <= 0.2 + 1e-5) and not np.allclose(y, ramp)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant='lstm'"):
        model.build(model.ModelConfig(variant="lstm"))
