"""The keyword spotter as a SavedModel: WAV bytes or waveforms in, label and attention out.

Signatures (batch first):

- `serving_default(audio_wav: string [batch])`: WAV file bytes: PCM of 8 to 32
  bits, 32/64-bit float, A-law or mu-law, plain or WAVE_FORMAT_EXTENSIBLE, any
  channel count, 1,000 to 384,000 Hz (`apps.keyword_spotting.wav` lists every
  rule). Channels are averaged; the audio is resampled to 16 kHz in the graph
  (band-limited, by FFT); only the first 30 s are read.
- `waveform(waveform: float32 [batch, samples])`: mono audio at 16 kHz in
  [-1, 1], 16000 samples per clip expected.

Clips shorter than 1 s are padded with silence on both sides; longer clips are
cut to their loudest second (energy in 10 ms steps). Non-finite samples count
as 0, and samples are clipped to [-1, 1] (1e38 is full scale, never NaN).
Silence (all zeros) is a valid clip. At most 256 clips per request. With
`test_speeds` other than 1 (opt-in, e.g. 0.9, 1, 1.1; `ensemble.SpeedEnsemble`)
each clip is also played at those speeds and the probabilities averaged. Both
return:

- `label`: string [batch], the most probable class;
- `probabilities`: float32 [batch, classes], in the order of `class_names`
  (averaged over the speeds, if several);
- `attention_weights`: float32 [batch, frames], the attention over time
  (50 frames of 20 ms for a 1 s clip), of the clip as it is (speed 1).

- `stream(audio_wav: string [batch])`: spotting in a longer recording, the
  classic scanning detector. The same WAV files, of which the first 10 s are
  read (silence pads a shorter one); a one-second window slides over them every
  half second (19 windows), each answered as `waveform` would answer it. At most
  16 recordings per request. Returns `labels` [batch, 19], `probabilities`
  [batch, 19, classes], `attention_weights` [batch, 19, frames],
  `window_start_seconds` [batch, 19] (0, 0.5, ..., 9) and
  `window_in_recording` bool [batch, 19] (False for windows that start after
  the recording ended: they hold only padding).

Bytes that are not a WAV file, an unsupported sample format (ADPCM, MP3, ...),
a sample rate out of range, a malformed header, or more than 256 clips give an
InvalidArgumentError that names `audio_wav[i]` (or `audio_wav`, `waveform`)
and says what was expected. A truncated WAV (a stream cut short) decodes the
whole frames that arrived.

The module also carries `class_names` (a string variable) and `test_speeds` (a
float32 variable) for clients.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from apps.common import export as common_export
from apps.common.export import warmup_wav
from apps.keyword_spotting.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_to_clip
from apps.keyword_spotting.ensemble import SpeedEnsemble, check_speeds
from apps.keyword_spotting.wav import MAX_SECONDS, decode_wav

#: The longest recording `stream` reads (longer ones are cut), its window hop, and
#: the most recordings per request (each is STREAM_WINDOWS model calls).
STREAM_SECONDS = 10
STREAM_HOP = SAMPLE_RATE // 2
STREAM_WINDOWS = 1 + (STREAM_SECONDS * SAMPLE_RATE - CLIP_SAMPLES) // STREAM_HOP
STREAM_MAX_BATCH = 16


class KeywordSpottingModule(common_export.ServingModule):
    """The explainer model (probabilities and attention) with WAV decoding around it.

    Args:
        explainer: Keras model `waveform (batch, 16000) -> {"probabilities",
            "attention_weights"}` (`model.KeywordSpotter.explainer`).
        class_names: the class of each probability.
        speeds: the speeds whose probabilities are averaged (`ensemble.SpeedEnsemble`).
    """

    def __init__(self, explainer, class_names, speeds=(1.0,), name=None):
        super().__init__(name=name)
        self.model = explainer
        self._speeds = check_speeds(speeds)
        self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string,
                                       name="class_names")
        self.test_speeds = tf.Variable(self._speeds, trainable=False, dtype=tf.float32,
                                       name="test_speeds")

    def _predict(self, waveforms: tf.Tensor, input_name: str) -> dict:
        count = tf.shape(waveforms)[0]
        # An empty batch runs one silent clip (the STFT's padding needs one), then drops it.
        waveforms = tf.cond(count > 0, lambda: waveforms, lambda: tf.zeros([1, CLIP_SAMPLES]))
        outputs = SpeedEnsemble(self.model, self._speeds)(waveforms)
        probabilities = tf.cast(outputs["probabilities"], tf.float32)[:count]
        probabilities = self.check_finite(probabilities, input_name)
        best = tf.argmax(probabilities, axis=-1)
        return {
            "label": tf.gather(self.class_names, best),
            "probabilities": probabilities,
            "attention_weights": tf.cast(outputs["attention_weights"], tf.float32)[:count],
        }

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve_waveform(self, waveform):
        waveform = self.check_batch(waveform, "waveform")
        waveform = tf.where(tf.math.is_finite(waveform), waveform, tf.zeros_like(waveform))
        waveform = tf.clip_by_value(waveform[:, : MAX_SECONDS * SAMPLE_RATE], -1.0, 1.0)
        return self._predict(fit_to_clip(waveform), "waveform")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="audio_wav")])
    def serve_wav(self, audio_wav):
        audio_wav = self.check_batch(audio_wav, "audio_wav")

        def one(args):
            wav, index = args
            return fit_to_clip(decode_wav(wav, index)[None, :])[0]

        indices = tf.range(tf.shape(audio_wav)[0])
        waveforms = tf.map_fn(
            one, (audio_wav, indices), fn_output_signature=tf.TensorSpec([CLIP_SAMPLES], tf.float32)
        )
        return self._predict(waveforms, "audio_wav")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="audio_wav")])
    def serve_stream(self, audio_wav):
        """Spots keywords in recordings of up to 10 s: one-second windows every half second."""
        audio_wav = self.check_batch(audio_wav, "audio_wav", STREAM_MAX_BATCH)
        total = STREAM_SECONDS * SAMPLE_RATE

        def one(args):
            wav, index = args
            audio = decode_wav(wav, index, max_seconds=STREAM_SECONDS)[:total]
            length = tf.shape(audio)[0]
            return tf.pad(audio, [[0, total - length]]), length

        indices = tf.range(tf.shape(audio_wav)[0])
        audio, lengths = tf.map_fn(
            one, (audio_wav, indices),
            fn_output_signature=(tf.TensorSpec([total], tf.float32), tf.TensorSpec([], tf.int32)),
        )
        windows = tf.signal.frame(audio, CLIP_SAMPLES, STREAM_HOP, axis=1)  # [B, W, 16000]
        batch = tf.shape(windows)[0]
        out = self._predict(tf.reshape(windows, [-1, CLIP_SAMPLES]), "audio_wav")
        starts = tf.range(STREAM_WINDOWS) * STREAM_HOP
        return {
            "labels": tf.reshape(out["label"], [batch, STREAM_WINDOWS]),
            "probabilities": tf.reshape(out["probabilities"], [batch, STREAM_WINDOWS, -1]),
            "attention_weights": tf.reshape(out["attention_weights"],
                                            [batch, STREAM_WINDOWS, -1]),
            "window_start_seconds": tf.tile(
                tf.cast(starts, tf.float32)[None] / SAMPLE_RATE, [batch, 1]),
            # A window that starts after the recording ended holds only padding.
            "window_in_recording": starts[None, :] < lengths[:, None],
        }

    def signatures(self):
        return {
            "serving_default": self.serve_wav.get_concrete_function(),
            "waveform": self.serve_waveform.get_concrete_function(),
            "stream": self.serve_stream.get_concrete_function(),
        }

    def warmup_requests(self):
        return [
            ("serving_default", {"audio_wav": np.array(
                [warmup_wav(), warmup_wav(8000, 8000, seed=1)], dtype=object)}),
            ("waveform", {"waveform": np.zeros((1, CLIP_SAMPLES), np.float32)}),
            ("stream", {"audio_wav": np.array([warmup_wav(3 * SAMPLE_RATE)], dtype=object)}),
        ]


def export(explainer, class_names, base: str, version: int | None = None,
           speeds=(1.0,)) -> str:
    """Writes `<base>/<version>/` atomically; returns the version directory."""
    return common_export.export(KeywordSpottingModule(explainer, class_names, speeds), base,
                                version)
