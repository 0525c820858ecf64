"""Test-time augmentation: one model's answers averaged over the clip played at several speeds.

Training plays every batch at a random speed in [0.9, 1.1]
(`audio.perturb_speed`), so the model has heard each word faster and slower;
`SpeedEnsemble` asks it about the same clip at `speeds` (`SPEEDS`: 0.9, 1 and
1.1; `audio.play_at_speed`, pitch, formants and tempo together, as a shorter or
longer vocal tract would) and averages the probabilities. Opt-in
(`--config=test_speeds=0.9,1,1.1`): on six trained models it lifted the unseen
synthetic voices by 0.2 to 1.5 points but not the real digits (README). The attention
weights are those of the clip as it is (speed 1), so they still say when in
the clip the word was heard. One model call on all the copies at once; it costs
`len(speeds)` times the model's work (about twice the serving time for three speeds).
"""

from __future__ import annotations

import tensorflow as tf

from apps.keyword_spotting import audio

SPEEDS = (0.9, 1.0, 1.1)


def check_speeds(speeds) -> tuple[float, ...]:
    """`speeds` as a tuple of floats; ValueError unless they are positive, distinct and hold 1."""
    speeds = tuple(float(s) for s in speeds)
    if (not speeds or 1.0 not in speeds or len(set(speeds)) != len(speeds)
            or any(not s > 0 for s in speeds)):
        raise ValueError("`test_speeds` must be distinct positive speeds that include 1.0 (the "
                         f"clip as it is). Received: test_speeds={speeds!r}")
    return speeds


class SpeedEnsemble:
    """Calls like `explainer` (`waveform (batch, samples) -> {"probabilities",
    "attention_weights"}`), with the probabilities averaged over `speeds`."""

    def __init__(self, explainer, speeds=SPEEDS):
        self.explainer = explainer
        self.speeds = check_speeds(speeds)

    def __call__(self, waveform, training=False):
        del training  # Inference only.
        waveform = tf.convert_to_tensor(waveform, tf.float32)
        if self.speeds == (1.0,):
            return self.explainer(waveform, training=False)
        others = [s for s in self.speeds if s != 1.0]
        batch = tf.shape(waveform)[0]
        copies = tf.concat([waveform] + [audio.play_at_speed(waveform, s) for s in others], 0)
        outputs = self.explainer(copies, training=False)
        probabilities = tf.cast(outputs["probabilities"], tf.float32)
        probabilities = tf.reduce_mean(
            tf.reshape(probabilities, [len(self.speeds), batch, -1]), axis=0)
        return {"probabilities": probabilities,
                "attention_weights": outputs["attention_weights"][:batch]}
