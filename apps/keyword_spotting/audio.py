"""Audio in TensorFlow ops, shared by the input pipeline and the SavedModel."""

from __future__ import annotations

import tensorflow as tf

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
_HOP = 160  # Step of the loudest-second search (10 ms).
_SPEED_STEP = 32  # perturb_speed's lengths are multiples of this (samples).


def resample(audio: tf.Tensor, rate: tf.Tensor, target: int = SAMPLE_RATE) -> tf.Tensor:
    """Band-limited (FFT) resampling along the last axis from `rate` Hz to `target` Hz.

    `audio` is `(samples,)` or `(batch, samples)` float32; the spectrum is cut (or
    zero-extended) at the new Nyquist frequency, so downsampling does not alias.
    """
    n = tf.shape(audio)[-1]
    rate = tf.cast(rate, tf.int32)
    m = tf.cast(tf.round(tf.cast(n, tf.float64) * target / tf.cast(rate, tf.float64)), tf.int32)
    skip = tf.logical_or(tf.equal(rate, target), tf.logical_or(n < 2, m < 2))
    return tf.cond(skip, lambda: audio, lambda: resample_to_length(audio, m))


def resample_to_length(audio: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
    """`audio` `(..., n)` band-limited (FFT) resampled to `m` samples along the last axis."""
    n = tf.shape(audio)[-1]
    spectrum = tf.signal.rfft(audio, fft_length=[n])
    bins = m // 2 + 1
    spectrum = spectrum[..., :bins]
    extra = bins - tf.shape(spectrum)[-1]
    spectrum = tf.concat(
        [spectrum, tf.zeros(tf.concat([tf.shape(spectrum)[:-1], [extra]], 0), tf.complex64)],
        axis=-1,
    )
    scale = tf.cast(m, tf.float32) / tf.cast(n, tf.float32)
    return tf.signal.irfft(spectrum, fft_length=[m]) * scale


def fit_to_clip(waveforms: tf.Tensor, samples: int = CLIP_SAMPLES) -> tf.Tensor:
    """`[batch, L]` -> `[batch, samples]`: centered zero padding, or the loudest window."""
    length = tf.shape(waveforms)[1]

    def loudest():
        energy = tf.cumsum(tf.square(tf.cast(waveforms, tf.float64)), axis=1)
        energy = tf.pad(energy, [[0, 0], [1, 0]])
        starts = tf.range(0, length - samples + 1, _HOP)
        sums = tf.gather(energy, starts + samples, axis=1) - tf.gather(energy, starts, axis=1)
        best = tf.gather(starts, tf.argmax(sums, axis=1, output_type=tf.int32))
        indices = best[:, None] + tf.range(samples)[None, :]
        return tf.gather(waveforms, indices, batch_dims=1)

    def pad():
        extra = samples - length
        return tf.pad(waveforms, [[0, 0], [extra // 2, extra - extra // 2]])

    fitted = tf.cond(length > samples, loudest, pad)
    return tf.ensure_shape(fitted, [None, samples])


def perturb_speed(waveforms: tf.Tensor, low: float, high: float, seed) -> tf.Tensor:
    """Plays a batch `(batch, samples)` of clips at one random speed in [low, high] (pitch,
    formants and tempo together, as a shorter or longer vocal tract would) and fits the
    clips back to 1 s (`fit_to_clip`). One speed per batch keeps it to a few batched ops.
    `seed`: a stateless seed (two integers), so the speed follows it and nothing else.

    Reference: Ko et al., "Audio augmentation for speech recognition", Interspeech 2015.
    """
    return play_at_speed(
        waveforms, tf.random.stateless_uniform([], tf.cast(seed, tf.int64), low, high))


def play_at_speed(waveforms: tf.Tensor, factor) -> tf.Tensor:
    """A batch `(batch, samples)` played `factor` times as fast (band-limited resampling to
    `samples / factor`), fitted back to one clip (`fit_to_clip`: centred padding, or the
    loudest window)."""
    factor = tf.cast(factor, tf.float32)
    # The new length, a multiple of _SPEED_STEP samples (0.2% of a second: finer than any
    # speed step that matters), so that the inverse FFT never has a length with a large prime
    # factor (e.g. 14,957 samples), which is several times slower than a smooth one (15,040).
    n = tf.shape(waveforms)[-1]
    steps = tf.round(tf.cast(n, tf.float32) / (factor * _SPEED_STEP))
    m = tf.maximum(tf.cast(steps, tf.int32), 1) * _SPEED_STEP
    return fit_to_clip(tf.cond(tf.equal(m, n), lambda: waveforms,
                               lambda: resample_to_length(waveforms, m)))
