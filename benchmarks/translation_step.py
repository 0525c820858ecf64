"""Training-step (or decoding) time of translation model configurations, A/B in one process.

    python -m benchmarks.translation_step                 # the old step, the loss change, tied
    python -m benchmarks.translation_step --step_arms=copy=false,copy=true --step_rounds=5
    # Batch-1 beam-4 decoding: untied, tied with the kernel transposed each step, tied as exported
    python -m benchmarks.translation_step --step_decode --step_source_length=32 \
        --step_arms="tie_embeddings=false,kernel_per_step=true,tie_embeddings=true" \
        --step_output=benchmarks/results/translation_decode.json

Each configuration (`name=value;name=value` over `ModelConfig` fields, on top of
the default's: bahdanau, 8,000-piece joint vocabulary, copy) gets the same
random batches of the default job's shape (64 pairs, 14 source and 16 target
pieces: the UI strings' means). The configurations take turns, `--step_count` steps a
turn for `--step_rounds` rounds after one warm-up turn each, so a change of machine
load hits every arm alike; the median seconds per step is reported with the
CPU model. Only relative times within one run mean anything.

`--step_decode` times instead what a batch-1 request of the export runs: the
encoder and a beam-4 search (`beam_search`, length penalty 0.6) over one source
of `--step_source_length` random pieces, inside one `tf.function`, with the step
of `model.decoding_step()` as the export uses it; the arm field
`kernel_per_step=true` decodes with `model.step` instead, whose tied logits
transpose the embedding at every step. The random weights never pick the end
token, so every arm runs the full `max_target_length` steps (reported).
"""

import dataclasses
import statistics
import time

from absl import app, flags

from benchmarks import _common

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "step_arms", "tie_embeddings=false;loss_log_softmax=true,tie_embeddings=false,"
    "tie_embeddings=true",
    "Comma-separated arms; each `field=value;field=value` of ModelConfig, or "
    "`loss_log_softmax=true`: the loss applies its log_softmax to the copying model's "
    "log-probabilities (as it did before it skipped it), or `gather_loss=true`: the loss "
    "picks log p(label) with take_along_axis and the accuracy uses argmax (as they did "
    "before apps.common.losses compared with the vocabulary's ids and the row's maximum).")
flags.DEFINE_integer("step_count", 20, "Steps (decodes with --step_decode) per turn.")
flags.DEFINE_integer("step_rounds", 4, "Timed turns per arm.")
flags.DEFINE_integer("step_batch_size", 64, "Pairs per step.")
flags.DEFINE_integer("step_source_length", 14, "Source pieces per pair.")
flags.DEFINE_integer("step_target_length", 16, "Target pieces per pair (START/END included).")
flags.DEFINE_bool("step_decode", False, "Time batch-1 beam-4 decoding, not training steps.")
flags.DEFINE_string("step_output", "benchmarks/results/translation_step.json", "Where to write.")


def time_arms(arms: dict, *, steps: int, rounds: int, batch_size: int, source_length: int,
              target_length: int, seed: int = 0, base: dict | None = None,
              decode: bool = False) -> dict:
    """`{name: {"seconds_per_step": median, "turns": [...], "params": n}}` for each arm.

    Each arm's fields go on top of `ModelConfig(copy=True, **base)`. With
    `decode`, a "step" is one batch-1 decode (see the module's docstring) and
    each arm also reports `decoded_steps`.
    """
    import numpy as np
    import tensorflow as tf

    from apps.common import losses
    from apps.translation import model as translation_model

    rng = np.random.default_rng(seed)
    models, decoders = {}, {}
    for name, fields in arms.items():
        fields = dict(fields)
        generic_loss = fields.pop("loss_log_softmax", False)
        gather_loss = fields.pop("gather_loss", False)
        per_step_kernel = fields.pop("kernel_per_step", False)
        config = dataclasses.replace(
            translation_model.ModelConfig(copy=True, **(base or {})), **fields)
        vocab = config.target_vocab_size
        model = translation_model.compile_model(translation_model.build_model(config), config,
                                                decay_steps=10_000)
        if generic_loss:  # the loss's own log_softmax even on log-probabilities (as before)
            model.compile(optimizer=model.optimizer,
                          loss=losses.masked_cross_entropy(config.label_smoothing),
                          metrics=[losses.masked_accuracy])
        if gather_loss:
            model.compile(optimizer=model.optimizer,
                          loss=_gather_loss(config.label_smoothing, bool(config.copy)),
                          metrics=[_argmax_accuracy])
        models[name] = (model, vocab)
        decoders[name] = _decoder(model, per_step_kernel)
    data = {}
    for name, (_, vocab) in models.items():
        source = rng.integers(4, vocab, (batch_size, source_length)).astype("int32")
        target = rng.integers(4, vocab, (batch_size, target_length)).astype("int32")
        data[name] = (tf.constant(source), tf.constant(target[:, :-1]),
                      tf.constant(target[:, 1:]))

    def turn(name):
        model, _ = models[name]
        source, target_in, target_out = data[name]
        batch = ((source, target_in), target_out)
        start = time.perf_counter()
        for _ in range(steps):
            if decode:
                decoders[name](source[:1]).numpy()
            else:
                model.train_on_batch(*batch)
        return (time.perf_counter() - start) / steps

    for name in arms:  # warm-up: tracing and the first steps
        turn(name)
    turns = {name: [] for name in arms}
    for _ in range(rounds):
        for name in arms:
            turns[name].append(turn(name))
    results = {name: {"seconds_per_step": statistics.median(turns[name]), "turns": turns[name],
                      "params": models[name][0].count_params()} for name in arms}
    if decode:
        for name in arms:
            results[name]["decoded_steps"] = int(
                np.count_nonzero(decoders[name](data[name][0][:1]).numpy()))
    return results


def _gather_loss(label_smoothing: float, log_probabilities: bool):
    """The token loss as it was written before: `take_along_axis` picks log p(label)."""
    from keras import ops

    def masked_cross_entropy(y_true, y_pred):
        log_probs = ops.cast(y_pred, "float32")
        if not log_probabilities:
            log_probs = ops.log_softmax(log_probs, axis=-1)
        labels = ops.cast(y_true, "int32")
        picked = ops.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        per_token = -(1.0 - label_smoothing) * picked - label_smoothing * ops.mean(log_probs, -1)
        mask = ops.cast(ops.not_equal(labels, 0), "float32")
        return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)

    return masked_cross_entropy


def _argmax_accuracy(y_true, y_pred):
    """The token accuracy as it was written before, with `ops.argmax`."""
    from keras import ops

    labels = ops.cast(y_true, "int32")
    hits = ops.equal(labels, ops.cast(ops.argmax(y_pred, axis=-1), "int32"))
    mask = ops.cast(ops.not_equal(labels, 0), "float32")
    return ops.sum(ops.cast(hits, "float32") * mask) / ops.maximum(ops.sum(mask), 1.0)


def _decoder(model, per_step_kernel: bool):
    """`source (1, T) -> sequence (1, max_target_length)`: encoder + beam-4 search, as exported."""
    import tensorflow as tf

    from apps.common import subword
    from keras_attention.decoding import beam_search

    # Random weights and no tokenizer: the ids the apps' vocabularies reserve for START and END.
    start, end = (subword.RESERVED.index(token) for token in (subword.START, subword.END))

    @tf.function
    def decode(source):
        state = model.initial_state(model.encode(source, training=False))
        step = model.step if per_step_kernel else model.decoding_step()
        result = beam_search(step, state, tf.fill([tf.shape(source)[0]], start), end,
                             model.config.max_target_length, beam_width=4, length_penalty=0.6)
        return result.sequences

    return decode


def main(argv):
    del argv
    arms = {text: _common.parse_arm(text) for text in FLAGS.step_arms.split(",")}
    results = time_arms(arms, steps=FLAGS.step_count, rounds=FLAGS.step_rounds,
                        batch_size=FLAGS.step_batch_size,
                        source_length=FLAGS.step_source_length,
                        target_length=FLAGS.step_target_length, decode=FLAGS.step_decode)
    meta = {"steps": FLAGS.step_count, "rounds": FLAGS.step_rounds,
            "batch_size": FLAGS.step_batch_size, "source_length": FLAGS.step_source_length,
            "target_length": FLAGS.step_target_length, "decode": FLAGS.step_decode}
    extra = {"decoded steps": "decoded_steps"} if FLAGS.step_decode else {}
    _common.write_step_results("translation_step", results, meta, FLAGS.step_output,
                               unit="ms / decode" if FLAGS.step_decode else "s / step",
                               scale=1000.0 if FLAGS.step_decode else 1.0, extra_columns=extra)


if __name__ == "__main__":
    app.run(main)
