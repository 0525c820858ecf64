"""The keyword spotter's front end: waveform -> normalized log-mel spectrogram, and the
training-time augmentations on the spectrogram (frequency warp, SpecAugment).

Layers only; `model.py` puts them in front of every variant (inside the model, so
serving needs nothing but the waveform). The waveform-level augmentation (speed
perturbation) is in the input pipeline (`pipeline.py`, `audio.perturb_speed`).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

_PACKAGE = "keyword_spotting"  # The registered names (keyword_spotting>LogMelSpectrogram, ...).


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogMelSpectrogram(keras.layers.Layer):
    """`(batch, samples)` waveform -> `(batch, frames, num_mel_bins)` natural-log mel power.

    Uses `keras.layers.MelSpectrogram` for the STFT and mel filters, without its
    decibel scaling (whose `top_db` floor is taken over the whole batch, which
    would make one clip's features depend on the others in its batch).
    """

    def __init__(self, sample_rate=16000, fft_length=512, frame_length=480, frame_step=320,
                 num_mel_bins=40, min_freq=20.0, max_freq=7600.0, floor=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = sample_rate
        self.fft_length = fft_length
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq
        self.floor = floor

    def build(self, input_shape):
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.fft_length, sequence_stride=self.frame_step,
            sequence_length=self.frame_length, sampling_rate=self.sample_rate,
            num_mel_bins=self.num_mel_bins, min_freq=self.min_freq, max_freq=self.max_freq,
            power_to_db=False, name="mel",
        )

    def call(self, waveform):
        power = self.mel(ops.cast(waveform, "float32"))  # (batch, mel, frames)
        return ops.transpose(ops.log(power + self.floor), (0, 2, 1))

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + input_shape[1] // self.frame_step
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, fft_length=self.fft_length,
                      frame_length=self.frame_length, frame_step=self.frame_step,
                      num_mel_bins=self.num_mel_bins, min_freq=self.min_freq,
                      max_freq=self.max_freq, floor=self.floor)
        return config


def cepstral_smoothing_matrix(bins: int, keep: int):
    """`(bins, bins)` NumPy matrix `P` with `x @ P` = `x`'s log-mel spectrum rebuilt from its
    first `keep` cepstral coefficients (orthonormal DCT-II over the mel axis, truncated,
    inverted): the spectral envelope without its fine structure."""
    n = np.arange(bins)
    dct = np.sqrt(2.0 / bins) * np.cos(np.pi / bins * (n[None, :] + 0.5) * n[:, None])
    dct[0] /= np.sqrt(2.0)  # Orthonormal: dct @ dct.T = I.
    kept = dct[:keep]
    return (kept.T @ kept).astype("float32")  # Symmetric, so x @ P = P x per frame.


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CepstralSmoothing(keras.layers.Layer):
    """Keeps the spectral envelope of a `(batch, frames, bins)` log-mel spectrogram: each
    frame's first `keep` cepstral coefficients (DCT-II over the mel bins), transformed
    back to the mel axis, so the output has the input's shape.

    What MFCCs do, without leaving the mel axis (frequency warp and SpecAugment still
    apply): the envelope (the formants: what was said) stays, the fine structure
    (harmonics of the voice's pitch, the excitation a synthesizer imitates) goes.
    """

    def __init__(self, keep=20, **kwargs):
        super().__init__(**kwargs)
        self.keep = keep

    def build(self, input_shape):
        bins = input_shape[-1]
        if not 0 < self.keep <= bins:
            raise ValueError(f"`keep` must be in [1, {bins}] (the mel bins). "
                             f"Received: keep={self.keep!r}")
        self.projection = ops.convert_to_tensor(cepstral_smoothing_matrix(bins, self.keep))

    def call(self, x):
        return ops.matmul(x, ops.cast(self.projection, x.dtype))

    def get_config(self):
        return {**super().get_config(), "keep": self.keep}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UtteranceNormalization(keras.layers.Layer):
    """Zero mean, unit variance over each utterance's whole spectrogram.

    `(x - mean) / sqrt(var + epsilon)` with the statistics of each example over
    frames and mel bins: the input level (gain) does not matter, and a silent
    clip (a constant spectrogram) gives zeros.

    With `per_bin=True` the mean is taken per mel bin over the clip's frames
    (cepstral mean normalization in the log-mel domain): a fixed channel, a
    microphone's or a telephone line's frequency response, adds a constant to
    each bin of a log spectrum, and the subtraction removes it; the variance
    stays one number over the whole clip, so the bins keep their relative scale.
    """

    def __init__(self, epsilon=1e-3, per_bin=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.per_bin = bool(per_bin)

    def call(self, x):
        mean = ops.mean(x, axis=1 if self.per_bin else (1, 2), keepdims=True)
        centered = x - mean
        var = ops.mean(ops.square(centered), axis=(1, 2), keepdims=True)
        return centered / ops.sqrt(var + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "per_bin": self.per_bin}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpecAugment(keras.layers.Layer):
    """SpecAugment's masks (Park et al. 2019): zero random bands of mel bins and of frames.

    Each of `freq_masks` masks covers `f ~ U{0..freq_width}` consecutive mel bins
    at a random start, each of `time_masks` covers `t ~ U{0..time_width}` frames;
    masked values become 0 (the mean after normalization). Identity outside training.
    """

    def __init__(self, freq_masks=2, freq_width=6, time_masks=2, time_width=5, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.freq_masks = freq_masks
        self.freq_width = freq_width
        self.time_masks = time_masks
        self.time_width = time_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _bands(self, batch, size, count, width):
        positions = ops.arange(size)[None, :]
        masked = ops.zeros((batch, size), dtype="bool")
        for _ in range(count):
            w = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (width + 1))
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                              * (ops.cast(size, "float32") - w + 1.0))
            pos = ops.cast(positions, "float32")
            masked = ops.logical_or(masked, ops.logical_and(pos >= start, pos < start + w))
        return masked

    def call(self, x, training=None):
        if not training:
            return x
        shape = ops.shape(x)
        batch, frames, bins = shape[0], shape[1], shape[2]
        freq = self._bands(batch, bins, self.freq_masks, self.freq_width)
        time = self._bands(batch, frames, self.time_masks, self.time_width)
        masked = ops.logical_or(freq[:, None, :], time[:, :, None])
        return ops.where(masked, ops.zeros_like(x), x)

    def get_config(self):
        config = super().get_config()
        config.update(freq_masks=self.freq_masks, freq_width=self.freq_width,
                      time_masks=self.time_masks, time_width=self.time_width, seed=self.seed)
        return config


def _resample_axis(x, source, axis: int):
    """`x` `(batch, frames, bins)` read at fractional positions along `axis` (1: frames, 2:
    bins): `source` `(batch, size of axis)` per example, clipped to the axis (edges repeat),
    linearly interpolated between the two neighbours."""
    shape = ops.shape(x)
    size = shape[axis]
    source = ops.clip(source, 0.0, ops.cast(size - 1, "float32"))
    low = ops.floor(source)
    expand = 2 if axis == 1 else 1  # Where the other (unmoved) axis goes.
    frac = ops.expand_dims(source - low, expand)
    low = ops.cast(low, "int32")
    high = ops.minimum(low + 1, size - 1)

    def read(index):
        index = ops.broadcast_to(ops.expand_dims(index, expand), shape)
        return ops.take_along_axis(x, index, axis=axis)

    return read(low) * (1.0 - frac) + read(high) * frac


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrequencyWarp(keras.layers.Layer):
    """Vocal tract length perturbation (Jaitly & Hinton 2013) on a `(batch, frames, bins)`
    spectrogram: each example's frequency axis is stretched by its own random factor
    `alpha ~ U(1 - max_warp, 1 + max_warp)` (bin k takes the value at k / alpha, linearly
    interpolated), as a longer or shorter vocal tract would shift the formants. Identity
    outside training.
    """

    def __init__(self, max_warp=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_warp = max_warp
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.max_warp:
            return x
        batch, bins = ops.shape(x)[0], ops.shape(x)[2]
        alpha = 1.0 + keras.random.uniform((batch, 1), -self.max_warp, self.max_warp,
                                           seed=self.seed_generator)
        source = ops.cast(ops.arange(bins), "float32")[None, :] / alpha
        return _resample_axis(x, source, axis=2)

    def get_config(self):
        return {**super().get_config(), "max_warp": self.max_warp, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TimeStretch(keras.layers.Layer):
    """Speaking-rate perturbation on a `(batch, frames, bins)` spectrogram: each example's
    time axis is stretched by its own factor `beta`, log-uniform in
    `[1 / (1 + max_stretch), 1 + max_stretch]` (beta > 1: a slower, longer word), around
    the clip's energy centroid (so the word stays in the clip), by linear interpolation
    between frames; frames past the edges repeat the edge frame. Unlike speed
    perturbation (resampling the waveform), pitch and formants do not move: only the
    duration does, as between a careful isolated word and a quick one. Identity outside
    training.
    """

    def __init__(self, max_stretch=0.4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_stretch = max_stretch
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or not self.max_stretch:
            return x
        batch, frames = ops.shape(x)[0], ops.shape(x)[1]
        bound = float(np.log1p(self.max_stretch))
        beta = ops.exp(keras.random.uniform((batch, 1), -bound, bound, seed=self.seed_generator))
        energy = ops.exp(ops.mean(x, axis=2))  # (batch, frames): loud frames weigh most.
        t = ops.cast(ops.arange(frames), "float32")[None, :]
        center = ops.sum(energy * t, axis=1, keepdims=True) / ops.sum(energy, axis=1,
                                                                       keepdims=True)
        return _resample_axis(x, center + (t - center) / beta, axis=1)

    def get_config(self):
        return {**super().get_config(), "max_stretch": self.max_stretch, "seed": self.seed}
