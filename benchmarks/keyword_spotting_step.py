"""Training-step time of keyword-spotting model configurations, A/B in one process.

    python -m benchmarks.keyword_spotting_step      # LSTMs looped vs unrolled
    python -m benchmarks.keyword_spotting_step --kws_step_arms="rnn_unroll=true,rnn_units=96"

Each arm (`field=value;field=value` over `ModelConfig` fields, on top of the
default's) trains on the same random batch of the default job's shape (64
one-second clips at 16 kHz, 22 classes) with the app's optimizer and schedule,
through the whole model: the front end with its training-time augmentation,
the body and the classifier. The arms take turns, `--kws_step_count` steps a
turn for `--kws_step_rounds` rounds after one warm-up turn each, so a change of
machine load hits every arm alike; the median seconds per step is reported
with the CPU model. The input pipeline (reading, speed perturbation, channel
augmentation) is not in it. Only relative times within one run mean anything.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from absl import app, flags

from benchmarks import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("kws_step_arms", "rnn_unroll=false,rnn_unroll=true",
                    "Comma-separated arms; each `field=value;field=value` of ModelConfig.")
flags.DEFINE_integer("kws_step_count", 20, "Steps per turn.")
flags.DEFINE_integer("kws_step_rounds", 4, "Timed turns per arm.")
flags.DEFINE_integer("kws_step_batch_size", 64, "Clips per step.")
flags.DEFINE_string("kws_step_output", "benchmarks/results/keyword_spotting_step.json",
                    "Where to write.")


def time_arms(arms: dict, *, steps: int, rounds: int, batch_size: int,
              seed: int = 0) -> dict:
    """`{name: {"seconds_per_step": median, "turns": [...], "params": n}}` for each arm."""
    import numpy as np
    import tensorflow as tf

    from apps.keyword_spotting import model as kws_model

    models = {}
    for name, fields in arms.items():
        config = dataclasses.replace(kws_model.ModelConfig(seed=seed), **fields)
        spotter = kws_model.build_model(config)
        models[name] = kws_model.compile_model(spotter.classifier, steps=10_000)
    rng = np.random.default_rng(seed)
    clips = tf.constant(rng.uniform(-0.3, 0.3, (batch_size, 16000)).astype("float32"))
    labels = tf.constant(rng.integers(0, 22, batch_size).astype("int32"))

    def turn(name):
        start = time.perf_counter()
        for _ in range(steps):
            models[name].train_on_batch(clips, labels)
        return (time.perf_counter() - start) / steps

    for name in arms:  # warm-up: tracing and the first steps
        turn(name)
    turns = {name: [] for name in arms}
    for r in range(rounds):
        order = list(arms)[r % len(arms):] + list(arms)[:r % len(arms)]
        for name in order:
            turns[name].append(turn(name))
    return {name: {"seconds_per_step": statistics.median(turns[name]), "turns": turns[name],
                   "params": models[name].count_params()} for name in arms}


def main(argv):
    del argv
    arms = {text: _common.parse_arm(text) for text in FLAGS.kws_step_arms.split(",")}
    results = time_arms(arms, steps=FLAGS.kws_step_count, rounds=FLAGS.kws_step_rounds,
                        batch_size=FLAGS.kws_step_batch_size)
    meta = {"steps": FLAGS.kws_step_count, "rounds": FLAGS.kws_step_rounds,
            "batch_size": FLAGS.kws_step_batch_size}
    _common.write_step_results("keyword_spotting_step", results, meta, FLAGS.kws_step_output)


if __name__ == "__main__":
    app.run(main)
