"""The keyword spotter as a SavedModel: WAV bytes or waveforms in, label and attention out.

Signatures (batch first):

- `serving_default(audio_wav: string [batch])`: WAV file bytes, 16-bit PCM, any
  sample rate and channel count. Channels are averaged; the audio is resampled
  to 16 kHz in the graph (band-limited, by FFT); only the first 30 s are read.
- `waveform(waveform: float32 [batch, samples])`: mono audio at 16 kHz in
  [-1, 1], 16000 samples per clip expected.

Clips shorter than 1 s are padded with silence on both sides; longer clips are
cut to their loudest second (energy in 10 ms steps). Non-finite samples count
as 0. Silence (all zeros) is a valid clip. Both return:

- `label`: string [batch], the most probable class;
- `probabilities`: float32 [batch, classes], in the order of `class_names`;
- `attention_weights`: float32 [batch, frames], the attention over time
  (50 frames of 20 ms for a 1 s clip).

Bytes that are not a WAV file, a WAV file whose samples are not 16-bit PCM, a
non-positive sample rate, or a truncated WAV file whose header is not the
canonical 44-byte one give an InvalidArgumentError that names `audio_wav[i]`
and says what was expected. A truncated canonical WAV (a stream cut short)
decodes the samples that arrived.

The module also carries `class_names` (a string variable) for clients.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common.export import save_module, warmup_wav
from apps.keyword_spotting.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_to_clip, resample

MAX_SECONDS = 30
_BYTE = [bytes([i]) for i in range(256)]


def _le_uint(raw: tf.Tensor) -> tf.Tensor:
    """Little-endian unsigned integer of a 2- or 4-byte string, as int64."""
    b = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
    shifts = tf.range(tf.shape(b)[0], dtype=tf.int64) * 8
    return tf.reduce_sum(tf.bitwise.left_shift(b, shifts))


def _u32_bytes(value: tf.Tensor) -> tf.Tensor:
    """int64 -> its 4 little-endian bytes as a string."""
    table = tf.constant(_BYTE)
    parts = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(value, tf.constant([0, 8, 16, 24], tf.int64)), 255
    )
    return tf.strings.reduce_join(tf.gather(table, parts))


def _repair_truncated(wav: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """A canonical WAV cut short gets its sizes rewritten to the bytes that arrived."""
    padded = tf.strings.join([wav, tf.constant(b"\0" * 48)])
    length = tf.cast(tf.strings.length(wav), tf.int64)
    is_wav = tf.logical_and(
        tf.logical_and(length >= 12, tf.strings.substr(padded, 0, 4) == "RIFF"),
        tf.strings.substr(padded, 8, 4) == "WAVE",
    )
    check_wav = tf.debugging.Assert(is_wav, [tf.strings.format(
        "audio_wav[{}] is not a WAV file ({} bytes without a RIFF/WAVE header): send the bytes "
        "of a 16-bit PCM WAV file, or float samples at 16 kHz to the `waveform` signature.",
        [index, length])])
    # The checks run in this order, before anything reads the bytes (decode_wav's own
    # errors do not say which clip is wrong).
    with tf.control_dependencies([check_wav]):
        announced = _le_uint(tf.strings.substr(padded, 4, 4)) + 8
    canonical = tf.logical_and(
        tf.logical_and(length >= 44, tf.strings.substr(padded, 12, 4) == "fmt "),
        tf.strings.substr(padded, 36, 4) == "data",
    )
    truncated = announced > length
    message = tf.strings.format(
        "audio_wav[{}] is truncated: its header announces {} bytes but {} arrived; send the "
        "whole WAV file.", [index, announced, length])
    check_size = tf.debugging.Assert(tf.logical_or(tf.logical_not(truncated), canonical),
                                     [message])
    with tf.control_dependencies([check_wav, check_size]):
        wav = tf.identity(wav)

    def repair():
        block = tf.maximum(_le_uint(tf.strings.substr(padded, 32, 2)), 1)
        data = (length - 44) // block * block
        return tf.strings.join([
            "RIFF", _u32_bytes(36 + data), tf.strings.substr(wav, 8, 32), _u32_bytes(data),
            tf.strings.substr(wav, tf.constant(44, tf.int64), data),
        ])

    return tf.cond(tf.logical_and(truncated, canonical), repair, lambda: wav)


def decode_wav(wav: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """One WAV file's bytes -> float32 mono at 16 kHz, at most MAX_SECONDS long."""
    audio, rate = tf.audio.decode_wav(_repair_truncated(wav, index))
    check_rate = tf.debugging.Assert(rate > 0, [tf.strings.format(
        "audio_wav[{}] has sample rate {}; expected a positive rate.", [index, rate])])
    with tf.control_dependencies([check_rate]):
        mono = tf.reduce_mean(audio, axis=1)
    mono = mono[: MAX_SECONDS * tf.maximum(rate, 1)]
    return resample(mono, rate)


class KeywordSpottingModule(tf.Module):
    """The explainer model (probabilities and attention) with WAV decoding around it.

    Args:
        explainer: Keras model `waveform (batch, 16000) -> {"probabilities",
            "attention_weights"}` (`model.KeywordSpotter.explainer`).
        class_names: the class of each probability.
    """

    def __init__(self, explainer, class_names, name=None):
        super().__init__(name=name)
        self.model = explainer
        self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string,
                                       name="class_names")

    def _predict(self, waveforms: tf.Tensor) -> dict:
        count = tf.shape(waveforms)[0]
        # An empty batch runs one silent clip (the STFT's padding needs one), then drops it.
        waveforms = tf.cond(count > 0, lambda: waveforms, lambda: tf.zeros([1, CLIP_SAMPLES]))
        outputs = self.model(waveforms, training=False)
        probabilities = tf.cast(outputs["probabilities"], tf.float32)[:count]
        best = tf.argmax(probabilities, axis=-1)
        return {
            "label": tf.gather(self.class_names, best),
            "probabilities": probabilities,
            "attention_weights": tf.cast(outputs["attention_weights"], tf.float32)[:count],
        }

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve_waveform(self, waveform):
        waveform = tf.where(tf.math.is_finite(waveform), waveform, tf.zeros_like(waveform))
        waveform = waveform[:, : MAX_SECONDS * SAMPLE_RATE]
        return self._predict(fit_to_clip(waveform))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="audio_wav")])
    def serve_wav(self, audio_wav):
        def one(args):
            wav, index = args
            audio = decode_wav(wav, index)
            audio = tf.where(tf.math.is_finite(audio), audio, tf.zeros_like(audio))
            return fit_to_clip(audio[None, :])[0]

        indices = tf.range(tf.shape(audio_wav)[0])
        waveforms = tf.map_fn(
            one, (audio_wav, indices), fn_output_signature=tf.TensorSpec([CLIP_SAMPLES], tf.float32)
        )
        return self._predict(waveforms)


def export(explainer, class_names, base: str, version: int | None = None) -> str:
    """Writes `<base>/<version>/` atomically; returns the version directory."""
    module = KeywordSpottingModule(explainer, class_names)
    signatures = {
        "serving_default": module.serve_wav.get_concrete_function(),
        "waveform": module.serve_waveform.get_concrete_function(),
    }
    warmup = [
        ("serving_default", {"audio_wav": np.array(
            [warmup_wav(), warmup_wav(8000, 8000, seed=1)], dtype=object)}),
        ("waveform", {"waveform": np.zeros((1, CLIP_SAMPLES), np.float32)}),
    ]
    return save_module(module, signatures, base, version, warmup=warmup)
