"""Training-step time of keyword-spotting model configurations, A/B in one process.

    python -m benchmarks.keyword_spotting_step      # LSTMs looped vs unrolled
    python -m benchmarks.keyword_spotting_step --kws_step_arms="rnn_unroll=true,rnn_units=96"
    python -m benchmarks.keyword_spotting_step --kws_step_augment   # the input pipeline's parts
    python -m benchmarks.keyword_spotting_step --kws_step_epochs=8   # its epochs, autotune on/off
    python -m benchmarks.keyword_spotting_step --kws_step_epochs=12 --kws_step_epochs_model_steps=72

Each arm (`field=value;field=value` over `ModelConfig` fields, on top of the
default's) trains on the same random batch of the default job's shape (64
one-second clips at 16 kHz, 22 classes) with the app's optimizer and schedule,
through the whole model: the front end with its training-time augmentation,
the body and the classifier. The arms take turns, `--kws_step_count` steps a
turn for `--kws_step_rounds` rounds after one warm-up turn each, so a change of
machine load hits every arm alike; the median seconds per step is reported
with the CPU model. The input pipeline (reading, speed perturbation, channel
augmentation) is not in it. Only relative times within one run mean anything.

`--kws_step_augment` times instead what the input pipeline adds per training
batch of random clips, in turns the same way: the speed perturbation
(`audio.perturb_speed`), the channel augmentation at the default probability
(`channel.augment_batch`), and each channel stage applied to every clip.

`--kws_step_epochs=N` times whole epochs of the training input pipeline alone (the
default corpus' training split, speed perturbation and channel augmentation as the
default job has them, no model), with tf.data's autotuner off (the default) and on
(`pipeline.make_dataset`'s `autotune`), one epoch of each in turn, N each; every epoch's
seconds are kept (`turns`), since what differs is how often an epoch is slow.
`--kws_step_epochs_model_steps=S` makes each epoch train `attention_rnn` on S batches
instead, the pipeline and the model sharing the cores as in the app.
"""

from __future__ import annotations

import dataclasses

from absl import app, flags

from benchmarks import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("kws_step_arms", "rnn_unroll=false,rnn_unroll=true",
                    "Comma-separated arms; each `field=value;field=value` of ModelConfig.")
flags.DEFINE_integer("kws_step_count", 20, "Steps per turn.")
flags.DEFINE_integer("kws_step_rounds", 4, "Timed turns per arm.")
flags.DEFINE_integer("kws_step_batch_size", 64, "Clips per step.")
flags.DEFINE_bool("kws_step_augment", False,
                  "Time the input pipeline's augmentations, not training steps.")
flags.DEFINE_integer("kws_step_epochs", 0,
                     "Time this many epochs of the training input pipeline per autotune "
                     "setting, not training steps (0: off).")
flags.DEFINE_integer("kws_step_epochs_model_steps", 0,
                     "With --kws_step_epochs: each epoch trains attention_rnn on this many "
                     "batches of the pipeline (0: the pipeline alone).")
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
    return _turns({name: (lambda m=model: m.train_on_batch(clips, labels))
                   for name, model in models.items()}, steps, rounds,
                  {name: {"params": model.count_params()} for name, model in models.items()})


def _turns(fns: dict, steps: int, rounds: int, extra: dict | None = None) -> dict:
    """`_common.time_interleaved` over turns of `steps` calls of each fn (one warm-up turn
    each): `{name: {"seconds_per_step", "turns", **extra[name]}}`."""
    def turn(fn):
        return lambda: [fn() for _ in range(steps)]

    timed = _common.time_interleaved({name: turn(fn) for name, fn in fns.items()},
                                     repeats=rounds, warmup=1)
    return {name: {"seconds_per_step": timed[name]["median_s"] / steps,
                   "turns": [t / steps for t in timed[name]["times_s"]],
                   **(extra or {}).get(name, {})} for name in fns}


def augmentations(batch_size: int, seed: int = 0) -> dict:
    """`{name: fn}`: each of the input pipeline's augmentations of one random batch, as a
    `tf.function` returning its result (see the module's docstring)."""
    import numpy as np
    import tensorflow as tf

    from apps.keyword_spotting import audio, channel, pipeline

    rng = np.random.default_rng(seed)
    clips = tf.constant(rng.uniform(-0.3, 0.3, (batch_size, 16000)).astype("float32"))
    seeds = tf.constant(rng.integers(0, 2**31, (batch_size, 2)), tf.int64)
    low, high = pipeline.SPEED_PERTURBATION
    parts = {
        "speed perturbation": lambda: audio.perturb_speed(  # A new speed each call.
            clips, low, high, tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)),
        "channel augmentation (p=0.5)": lambda: channel.augment_batch(clips, seeds, 0.5),
        "room reverberation (every clip)": lambda: channel._reverberate(clips, seeds),
        "microphone EQ (every clip)": lambda: channel._microphone_eq(clips, seeds),
        "level and clipping (every clip)": lambda: channel._level_and_clip(clips, seeds),
        "telephone line (every clip)": lambda: channel._telephone(clips, seeds),
    }
    return {name: tf.function(fn) for name, fn in parts.items()}


def time_augmentations(*, steps: int, rounds: int, batch_size: int) -> dict:
    """`{name: {"seconds_per_step": median, "turns": [...]}}` per augmentation."""
    fns = augmentations(batch_size)
    return _turns({name: (lambda f=fn: f().numpy()) for name, fn in fns.items()}, steps, rounds)


def time_pipeline_epochs(splits, *, epochs: int, batch_size: int, seed: int = 42,
                         model_steps: int = 0) -> dict:
    """`{"autotune off" | "autotune on": {"seconds_per_step": median seconds an epoch,
    "turns": every epoch's seconds, "batches": per epoch}}`: whole epochs of `splits`'
    training pipeline, the two settings in turn. `model_steps` > 0: each epoch instead
    trains the default `attention_rnn` (one model per setting) on the first `model_steps`
    batches (`fit`, one epoch a call: a new iterator, as at an epoch's start), so the
    pipeline shares the cores with the training step as in the app."""
    import time

    import numpy as np

    from apps.keyword_spotting import model as kws_model
    from apps.keyword_spotting import pipeline, train

    config = train.TrainConfig()
    datasets = {f"autotune {'on' if on else 'off'}": pipeline.make_dataset(
        splits, "train", batch_size, training=True, seed=seed,
        speed_perturbation=config.speed_perturbation, channel_augment=config.channel_augment,
        autotune=on) for on in (False, True)}
    if model_steps:
        models = {}
        for name in datasets:
            spotter = kws_model.build_model(kws_model.ModelConfig(
                seed=seed, num_classes=len(splits.class_names)))
            models[name] = kws_model.compile_model(spotter.classifier,
                                                   steps=epochs * model_steps)
        datasets = {name: d.take(model_steps) for name, d in datasets.items()}

    def epoch(name) -> int:
        if model_steps:
            models[name].fit(datasets[name], epochs=1, verbose=0)
            return model_steps
        return sum(1 for _ in datasets[name])

    times = {name: [] for name in datasets}
    batches = {}
    for _ in range(epochs):
        for name in datasets:
            start = time.perf_counter()
            batches[name] = epoch(name)
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds_per_step": float(np.median(t)), "turns": t,
                   "every_epoch": ", ".join(f"{x:.1f}" for x in t),
                   "batches": batches[name]} for name, t in times.items()}


def main(argv):
    del argv
    sizes = dict(steps=FLAGS.kws_step_count, rounds=FLAGS.kws_step_rounds,
                 batch_size=FLAGS.kws_step_batch_size)
    epochs = FLAGS.kws_step_epochs
    if epochs < 0 or FLAGS.kws_step_epochs_model_steps < 0:
        raise app.UsageError("--kws_step_epochs and --kws_step_epochs_model_steps must be "
                             f">= 0. Received: {epochs}, {FLAGS.kws_step_epochs_model_steps}")
    if epochs:
        from apps.keyword_spotting import pipeline, train

        splits = pipeline.load_splits(train.TrainConfig().dataset, None, train.DEFAULT_CORPUS)
        results = time_pipeline_epochs(splits, epochs=epochs, batch_size=sizes["batch_size"],
                                       model_steps=FLAGS.kws_step_epochs_model_steps)
    elif FLAGS.kws_step_augment:
        results = time_augmentations(**sizes)
    else:
        arms = {text: _common.parse_arm(text) for text in FLAGS.kws_step_arms.split(",")}
        results = time_arms(arms, **sizes)
    meta = {**sizes, "augment": FLAGS.kws_step_augment, "pipeline_epochs": epochs,
            "model_steps": FLAGS.kws_step_epochs_model_steps}
    output = FLAGS.kws_step_output
    if output == FLAGS["kws_step_output"].default and (epochs or FLAGS.kws_step_augment):
        output = output.replace("_step.json", (
            ("_pipeline_model.json" if FLAGS.kws_step_epochs_model_steps else "_pipeline.json")
            if epochs else "_augment.json"))
    unit, scale = ("s / epoch", 1.0) if epochs else (
        ("ms / batch", 1000.0) if FLAGS.kws_step_augment else ("s / step", 1.0))
    _common.write_step_results("keyword_spotting_step", results, meta, output, unit=unit,
                               scale=scale, extra_columns={"every epoch (s)": "every_epoch",
                                                           "batches": "batches"}
                               if epochs else None)


if __name__ == "__main__":
    app.run(main)
