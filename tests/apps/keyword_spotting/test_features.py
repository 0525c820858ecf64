"""The front end: log-mel spectrogram, per-utterance normalization, and the augmentations."""

from __future__ import annotations

import keras
import numpy as np

from apps.keyword_spotting import features
from tests.apps.keyword_spotting.conftest import clips


def test_front_end_is_per_utterance_and_gain_invariant():
    log_mel = features.LogMelSpectrogram()
    norm = features.UtteranceNormalization()
    x = clips(3)
    together = norm(log_mel(np.concatenate([x[:1], 50 * x[1:]])))
    alone = norm(log_mel(x[:1]))
    np.testing.assert_allclose(together[:1], alone, atol=1e-4)  # Batch-mates don't matter.
    quieter = norm(log_mel(0.25 * x[:1]))
    np.testing.assert_allclose(quieter, alone, atol=2e-2)  # Nor does the gain (above the floor).
    assert tuple(alone.shape) == (1, 51, 40)
    silent = norm(log_mel(np.zeros((1, 16000), "float32")))
    assert np.all(np.isfinite(silent)) and np.allclose(silent, 0.0, atol=1e-3)


def test_bin_mean_normalization_removes_a_fixed_channel():
    log_mel = np.asarray(features.LogMelSpectrogram()(clips(2)))
    colour = np.linspace(-3.0, 2.0, log_mel.shape[-1], dtype="float32")  # An EQ, in log units.
    coloured = log_mel + colour
    per_bin = features.UtteranceNormalization(per_bin=True)
    np.testing.assert_allclose(per_bin(coloured), per_bin(log_mel), atol=1e-4)
    whole = features.UtteranceNormalization()
    assert np.abs(np.asarray(whole(coloured)) - np.asarray(whole(log_mel))).max() > 0.1
    out = np.asarray(per_bin(log_mel))
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-4)  # Each bin centred.
    np.testing.assert_allclose((out ** 2).mean(axis=(1, 2)), 1.0, atol=1e-2)
    restored = features.UtteranceNormalization.from_config(per_bin.get_config())
    np.testing.assert_allclose(restored(log_mel), out, atol=1e-6)


def test_spec_augment_masks_only_in_training():
    layer = features.SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=5, seed=1)
    x = keras.ops.ones((8, 51, 40))
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = np.asarray(layer(x, training=True))
    assert np.all((y == 0) | (y == 1))
    zero_bins = (y == 0).all(axis=1).sum(axis=-1)  # Masked mel bins per example.
    zero_frames = (y == 0).all(axis=2).sum(axis=-1)
    assert zero_bins.max() <= 12 and zero_frames.max() <= 10
    assert zero_bins.sum() + zero_frames.sum() > 0


def test_frequency_warp_stretches_the_frequency_axis_only_in_training():
    layer = features.FrequencyWarp(max_warp=0.2, seed=3)
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


def test_cepstral_smoothing_keeps_the_envelope_and_drops_the_fine_structure():
    from scipy.fft import dct, idct

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 64)).astype("float32")
    layer = features.CepstralSmoothing(keep=20)
    y = np.asarray(layer(x))
    # The oracle: orthonormal DCT-II over the mel axis, coefficients from 20 on zeroed, inverse.
    c = dct(x, type=2, norm="ortho", axis=-1)
    c[..., 20:] = 0.0
    np.testing.assert_allclose(y, idct(c, type=2, norm="ortho", axis=-1), atol=1e-4)
    np.testing.assert_allclose(np.asarray(features.CepstralSmoothing(keep=64)(x)), x, atol=1e-5)
    # A smooth envelope survives; a fast ripple across the bins (pitch harmonics) goes.
    bins = np.arange(64)
    envelope = np.exp(-((bins - 20) / 12.0) ** 2).astype("float32")
    ripple = 0.5 * np.cos(np.pi * 50 * (bins + 0.5) / 64).astype("float32")
    out = np.asarray(layer((envelope + ripple)[None, None, :]))[0, 0]
    assert np.abs(out - envelope).max() < 0.01
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert restored.keep == 20
    np.testing.assert_allclose(np.asarray(restored(x)), y, atol=1e-6)


def test_cepstral_keep_is_checked():
    import pytest

    from apps.keyword_spotting.model import ModelConfig

    with pytest.raises(ValueError, match="cepstral_keep"):
        ModelConfig(cepstral_keep=65)
    with pytest.raises(ValueError, match="keep"):
        features.CepstralSmoothing(keep=0)(np.zeros((1, 2, 8), "float32"))


def test_time_stretch_changes_the_words_duration_around_it_only_in_training():
    x = np.full((64, 50, 8), -2.0, "float32")
    x[:, 12:22] = 2.0  # A 10-frame "word" off the clip's center.
    layer = features.TimeStretch(max_stretch=0.5, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # Inference: identity.
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape
    loud = y[:, :, 0] > 0
    durations = loud.sum(axis=1)
    assert durations.min() >= 6 and durations.max() <= 15  # 10 frames x [1/1.5, 1.5].
    assert durations.min() < 9 and durations.max() > 11  # Both ways, per example.
    # Stretched around the word: it stays where it was, whatever its length.
    centers = (loud * np.arange(50)).sum(axis=1) / durations
    assert np.abs(centers - 16.5).max() <= 1.0
    np.testing.assert_allclose(y[:, :, 0], y[:, :, 5])  # Every bin moves alike.
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert restored.max_stretch == 0.5
