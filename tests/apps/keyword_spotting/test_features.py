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
