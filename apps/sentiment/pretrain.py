"""BERT-style masked-language-model pretraining of the sentiment Transformer encoder.

Devlin et al. (2019), on the encoder of the `transformer` variant
(`apps.sentiment.model.transformer_encoder`: token + learned position
embeddings, `TransformerEncoderBlock`s), over a WordPiece vocabulary
(`apps.common.subword`) learned from the pretraining corpus
(`apps.sentiment.pretraining_corpus`: cached in
`<data_dir>/sentiment_pretraining/corpus.txt`, or any text file with
`--config=corpus=PATH`).

Masking (`mask_pieces`), per sequence: of its pieces other than the reserved
tokens (`[PAD]`, `[UNK]`, `[START]`, `[END]`, `[MASK]`), `round(15%)` are
chosen at random (at least one, at most `max_predictions`); of the chosen, 80%
become `[MASK]`, 10% a random piece, 10% stay. The loss is the cross-entropy
of the chosen positions only (their mean over the batch): the model gathers
the encoder's output at those positions and predicts the original piece
through a dense + layer-norm head and an output layer (not tied to the
embedding).

    # Build the corpus once (about a minute plus the fetches), then pretrain:
    python -m apps.sentiment.pretrain
    # Smaller or longer: any PretrainConfig field, e.g.
    python -m apps.sentiment.pretrain --config=epochs=10 --config=corpus=/path/lines.txt
    # Then fine-tune from it:
    python -m apps.sentiment.train --variant=transformer --init_from=artifacts/sentiment_pretrained

Budget (the defaults): 24 epochs of 250 steps = 6,000 steps of 64 sequences of
up to 64 pieces (384,000 sequences: a little under one pass over the 441,534
sentences of the default corpus), 15% of pieces predicted (at most 10 a
sequence), an 8,000-piece vocabulary (learned from 200,000 lines drawn at random in
about 10 s), a 2-layer encoder of width 128 (4 heads, feed-forward 256), AdamW
at 5e-4 with 500 warm-up steps and linear decay. `STEP_SECONDS` = 0.4 s a step
on this project's 2 shared AMD EPYC cores (load average 4-6 from other jobs),
measured with

    python -m apps.sentiment.pretrain --model_dir=/tmp/pt_time/run \
        --config=out=/tmp/pt_time/out --config=epochs=3 --config=steps_per_epoch=20

reading Keras' per-step time of epochs 2 and 3 (357 and 429 ms; epoch 1, with
tracing, 596 ms): 6,000 steps x 0.4 s = about 40 minutes, plus under a minute
for the corpus (once), the vocabulary and the artefact. On an idle machine
expect less: two full runs of the defaults on 2 AMD EPYC cores (load average about
2, the run alone) took 834 s and 859 s (0.14 s a step, about 14 minutes). `--config=epochs=N`
scales it linearly (the checkpoint every
epoch makes stopping early cheap: the last finished epoch is kept).

Output (`--config=out=`, default `artifacts/sentiment_pretrained/`), written
into a temporary directory beside it and renamed into place when complete:

- `vocab.txt`, `tokenizer.json`: the `SubwordTokenizer` (`SubwordTokenizer.load`);
- `encoder.weights.h5`: the encoder's weights (`build_encoder(config)` reads them);
- `mlm.weights.h5`: the whole MLM model (encoder and head);
- `pretrain.json`: the `ModelConfig` (`"model"`), the corpus' sizes and
  metadata, the steps, batch, seconds and the loss history.

Resuming: the run directory (`--model_dir`, default `runs/sentiment_pretrain/`)
keeps the vocabulary and a checkpoint every epoch (`CrashSafeBackupAndRestore`,
as the apps' training): run the same command again after a kill and it goes on
from the last finished epoch with the same vocabulary (a resumed epoch draws a
fresh shuffle of the corpus). A run directory holding another configuration is
an error rather than a silent mix.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, logging
from keras import ops

from apps.common import config as common_config
from apps.common import data as common_data
from apps.common import subword, training
from apps.sentiment import model as sentiment_model
from apps.sentiment import pretraining_corpus
from keras_attention import _validation

APP = "sentiment_pretrain"
DEFAULT_OUT = os.path.join("artifacts", "sentiment_pretrained")
CONFIG_FILE = "pretrain.json"
ENCODER_WEIGHTS, MLM_WEIGHTS = "encoder.weights.h5", "mlm.weights.h5"
#: The fields of `ModelConfig` that shape the encoder's weights: a fine-tuning run must
#: use the checkpoint's values.
ENCODER_FIELDS = ("vocab_size", "max_length", "embedding_dim", "num_layers", "num_heads",
                  "intermediate_dim")
#: Seconds per step of the default configuration measured on 2 shared cores (see the
#: module docstring for how).
STEP_SECONDS = 0.4


def default_encoder() -> sentiment_model.ModelConfig:
    return sentiment_model.ModelConfig(
        variant="transformer", vocab_size=8000, max_length=64, embedding_dim=128,
        num_layers=2, num_heads=4, intermediate_dim=256, embedding_dropout=0.1,
        transformer_dropout=0.1, learning_rate=5e-4)


@dataclasses.dataclass(frozen=True)
class PretrainConfig(common_config.CommonTrainConfig):
    """One pretraining run; `main` fills it from the command line (`--config=FIELD=VALUE`)."""

    dataset: str = "pretraining_corpus"
    corpus: str | None = None  # one text a line; None: pretraining_corpus.prepare()
    archive: str | None = None  # the VADER archive, when the corpus is built and pip cannot
    out: str = DEFAULT_OUT
    epochs: int = 24
    steps_per_epoch: int = 250  # a checkpoint every epoch
    batch_size: int = 64
    mask_rate: float = 0.15
    max_predictions: int | None = None  # per sequence; None: ceil(mask_rate * max_length)
    vocabulary_texts: int = 200_000  # corpus lines (drawn at random) the WordPiece trainer reads
    warmup_steps: int = 500
    verbose: int | str = 2
    model: sentiment_model.ModelConfig = dataclasses.field(default_factory=default_encoder)

    def __post_init__(self):
        super().__post_init__()
        _validation.positive_int("steps_per_epoch", self.steps_per_epoch)
        _validation.positive_int("vocabulary_texts", self.vocabulary_texts)
        _validation.non_negative_int("warmup_steps", self.warmup_steps)
        if not 0.0 < float(self.mask_rate) < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1). Received: mask_rate={self.mask_rate!r}")
        if self.max_predictions is not None:
            _validation.positive_int("max_predictions", self.max_predictions)
        if not isinstance(self.model, sentiment_model.ModelConfig):
            raise ValueError(f"model={self.model!r} is not a sentiment ModelConfig.")
        if self.model.variant != "transformer":
            raise ValueError("model.variant must be 'transformer' (the encoder pretrained); "
                             f"got {self.model.variant!r}.")
        if not self.out:
            raise ValueError("out must name the artefact directory.")

    @property
    def predictions(self) -> int:
        if self.max_predictions is not None:
            return min(self.max_predictions, self.model.max_length)
        return max(1, math.ceil(self.mask_rate * self.model.max_length))


# ----------------------------------------------------------------------------- masking
def mask_pieces(ids, seed, *, vocab_size: int, mask_id: int, first_piece: int,
                rate: float = 0.15, max_predictions: int):
    """BERT's masking of a batch of piece ids `[batch, T]` (0 = padding).

    Of each row's pieces with id >= `first_piece` (the reserved tokens are never
    chosen), `round(rate * n)` are chosen (at least 1 when n > 0, at most
    `max_predictions`), uniformly at random; a chosen piece becomes `mask_id`
    with probability 0.8, a random piece (uniform over `[first_piece, vocab_size)`)
    with 0.1, and stays with 0.1.

    Args:
        seed: int32 `[2]`, a stateless seed (the same seed gives the same masks).

    Returns:
        `(inputs [batch, T], positions [batch, P], labels [batch, P], weights [batch, P])`
        with `P = max_predictions`: the chosen positions (padded with 0), the
        original pieces there (0 at padding) and 1.0 / 0.0 whether a slot is used.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    shape = tf.shape(ids)
    length = shape[1]
    eligible = ids >= first_piece
    count = tf.reduce_sum(tf.cast(eligible, tf.int32), axis=1)
    chosen_count = tf.cast(tf.round(rate * tf.cast(count, tf.float32)), tf.int32)
    chosen_count = tf.minimum(tf.maximum(chosen_count, tf.minimum(count, 1)), max_predictions)
    scores = tf.random.stateless_uniform(shape, seeds[0])
    scores = tf.where(eligible, scores, -1.0)
    k = tf.minimum(max_predictions, length)
    _, positions = tf.math.top_k(scores, k=k)  # [batch, k], eligible ones first
    slot = tf.range(k)[tf.newaxis, :]
    used = slot < chosen_count[:, tf.newaxis]
    positions = tf.where(used, positions, 0)
    # Up to max_predictions slots even when T is shorter.
    pad = max_predictions - k
    positions = tf.pad(positions, [[0, 0], [0, pad]])
    used = tf.pad(used, [[0, 0], [0, pad]])
    labels = tf.where(used, tf.gather(ids, positions, batch_dims=1), 0)
    chosen = tf.reduce_any(
        tf.cast(tf.one_hot(positions, length, dtype=tf.int32), tf.bool) & used[..., tf.newaxis],
        axis=1)  # [batch, T]
    action = tf.random.stateless_uniform(shape, seeds[1])
    random_ids = tf.random.stateless_uniform(shape, seeds[2], minval=first_piece,
                                             maxval=vocab_size, dtype=tf.int32)
    inputs = tf.where(chosen & (action < 0.8), tf.cast(mask_id, tf.int32),
                      tf.where(chosen & (action < 0.9), random_ids, ids))
    return inputs, positions, labels, tf.cast(used, tf.float32)


def make_dataset(texts, tokenizer, config: PretrainConfig, repeat: bool = True):
    """Batches `({"ids", "positions"}, labels, weights)` of masked corpus lines, shuffled
    (seeded), masks drawn with stateless seeds from (`config.seed`, batch number)."""
    first_piece = len(subword.RESERVED)
    mask_id = tokenizer.vocabulary.index(subword.MASK)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
    ds = ds.shuffle(min(len(texts), 100_000), seed=config.seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(config.batch_size, drop_remainder=True)
    ds = ds.map(lambda text: tokenizer.tokenize(text)[1], num_parallel_calls=tf.data.AUTOTUNE)
    # Rows without a single piece teach nothing: keep the batch shape, they weigh 0.
    ds = ds.enumerate()

    def masked(step, ids):
        seed = tf.stack([tf.cast(config.seed, tf.int64), step])
        inputs, positions, labels, weights = mask_pieces(
            ids, seed, vocab_size=tokenizer.vocabulary_size, mask_id=mask_id,
            first_piece=first_piece, rate=config.mask_rate,
            max_predictions=config.predictions)
        return {"ids": inputs, "positions": positions}, labels, weights

    return ds.map(masked, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- models
@keras.saving.register_keras_serializable(package="sentiment")
class GatherPositions(keras.layers.Layer):
    """`(sequence [batch, T, dim], positions [batch, P])` -> `[batch, P, dim]`."""

    def call(self, sequence, positions):
        index = ops.expand_dims(ops.cast(positions, "int32"), -1)
        index = ops.broadcast_to(index, (ops.shape(positions)[0], ops.shape(positions)[1],
                                         ops.shape(sequence)[-1]))
        return ops.take_along_axis(sequence, index, axis=1)

    def compute_output_spec(self, sequence, positions):
        return keras.KerasTensor((sequence.shape[0], positions.shape[1], sequence.shape[-1]),
                                 dtype=sequence.dtype)


def build_encoder(config: sentiment_model.ModelConfig) -> keras.Model:
    """ids `[batch, T]` -> the encoder's output `[batch, T, dim]`, with the layers (and
    names) of the `transformer` variant's encoder."""
    ids = keras.Input(shape=(config.max_length,), dtype="int32", name="ids")
    mask = sentiment_model.PaddingMask(name="padding_mask")(ids)
    embed = keras.layers.Embedding(config.vocab_size, config.embedding_dim,
                                   name="token_embedding")(ids)
    hidden = sentiment_model.transformer_encoder(embed, mask, config)
    return keras.Model(ids, hidden, name="sentiment_encoder")


def build_mlm_model(config: sentiment_model.ModelConfig, predictions: int):
    """`(mlm, encoder)`: `{"ids", "positions"}` -> logits `[batch, P, vocab]`, and the
    encoder model whose layers it shares."""
    encoder = build_encoder(config)
    ids = keras.Input(shape=(config.max_length,), dtype="int32", name="ids")
    positions = keras.Input(shape=(predictions,), dtype="int32", name="positions")
    hidden = encoder(ids)
    picked = GatherPositions(name="gather_positions")(hidden, positions)
    h = keras.layers.Dense(config.embedding_dim, activation="gelu", name="mlm_dense")(picked)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="mlm_norm")(h)
    logits = keras.layers.Dense(config.vocab_size, dtype="float32", name="mlm_logits")(h)
    mlm = keras.Model({"ids": ids, "positions": positions}, logits, name="sentiment_mlm")
    return mlm, encoder


def compile_mlm(mlm: keras.Model, config: PretrainConfig, total_steps: int) -> keras.Model:
    """AdamW with linear warm-up then linear decay; the loss is the mean cross-entropy over
    the chosen positions (`mean_with_sample_weight`)."""
    peak = config.model.learning_rate
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    decay = keras.optimizers.schedules.PolynomialDecay(
        peak, max(total_steps - warmup, 1), end_learning_rate=peak * 0.05)
    schedule = _WarmUp(peak, warmup, decay) if warmup else decay
    mlm.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="masked_accuracy")],
    )
    return mlm


@keras.saving.register_keras_serializable(package="sentiment")
class _WarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup` steps, then `after(step - warmup)`."""

    def __init__(self, peak, warmup, after):
        self.peak, self.warmup, self.after = peak, warmup, after

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / float(self.warmup)
        return ops.where(step < self.warmup, warm, self.after(step - self.warmup))

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup,
                "after": keras.optimizers.schedules.serialize(self.after)}


# ----------------------------------------------------------------------------- checkpoint
def read_checkpoint(path: str) -> dict:
    """The artefact at `path`: `{"config": ModelConfig, "tokenizer": SubwordTokenizer,
    "encoder_weights": file, "meta": pretrain.json}`.

    Raises:
        FileNotFoundError: naming `path` and the file missing.
        ValueError: naming `path` when its files disagree (vocabulary size).
    """
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(
            f"init_from={path!r} is not a directory; expected a pretrained checkpoint "
            f"(vocab.txt, tokenizer.json, {ENCODER_WEIGHTS}, {CONFIG_FILE}) as written by "
            "`python -m apps.sentiment.pretrain`.")
    for name in (subword.VOCABULARY_FILE, subword.OPTIONS_FILE, ENCODER_WEIGHTS, CONFIG_FILE):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"init_from={path!r} has no {name}: not a complete "
                                    "checkpoint of `python -m apps.sentiment.pretrain`.")
    with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
        meta = json.load(f)
    try:
        config = sentiment_model.ModelConfig(**meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"init_from={path!r}: {CONFIG_FILE} has no valid \"model\" "
                         f"configuration ({err}).") from err
    tokenizer = subword.SubwordTokenizer.load(path)
    if tokenizer.vocabulary_size != config.vocab_size:
        raise ValueError(
            f"init_from={path!r}: vocab.txt has {tokenizer.vocabulary_size} pieces but the "
            f"encoder was trained with vocab_size={config.vocab_size}; the checkpoint is "
            "mixed up: pretrain again.")
    if tokenizer.max_length != config.max_length:
        tokenizer = subword.SubwordTokenizer.load(path, max_length=config.max_length)
    return {"config": config, "tokenizer": tokenizer,
            "encoder_weights": os.path.join(path, ENCODER_WEIGHTS), "meta": meta}


def fine_tuning_config(model_config: sentiment_model.ModelConfig, checkpoint: dict,
                       path: str) -> sentiment_model.ModelConfig:
    """`model_config` with the encoder's shape fields (`ENCODER_FIELDS`) taken from the
    checkpoint. A field other than `vocab_size` set to neither the default nor the
    checkpoint's value is a ValueError naming `path`, the field and both values."""
    if model_config.variant != "transformer":
        raise ValueError(f"init_from={path!r} holds a Transformer encoder: it needs "
                         f"--variant=transformer, not {model_config.variant!r}.")
    default = sentiment_model.ModelConfig()
    pretrained = checkpoint["config"]
    # The vocabulary is the checkpoint's: model.vocab_size (an upper bound when a vocabulary
    # is learned) does not apply.
    changes = {"vocab_size": pretrained.vocab_size}
    for name in ENCODER_FIELDS[1:]:
        mine, theirs = getattr(model_config, name), getattr(pretrained, name)
        if mine != theirs and mine != getattr(default, name):
            raise ValueError(
                f"init_from={path!r}: model.{name}={mine} does not match the pretrained "
                f"encoder's {name}={theirs}; leave model.{name} unset (it is taken from "
                "the checkpoint) or pretrain with it.")
        changes[name] = theirs
    return dataclasses.replace(model_config, **changes)


def load_encoder(model: keras.Model, checkpoint: dict, path: str) -> list[str]:
    """Copies the pretrained encoder's weights into `model`'s layers of the same names;
    returns those names. A shape mismatch is a ValueError naming `path`."""
    config = checkpoint["config"]
    encoder = build_encoder(config)
    try:
        encoder.load_weights(checkpoint["encoder_weights"])
    except (ValueError, OSError) as err:
        raise ValueError(f"init_from={path!r}: {ENCODER_WEIGHTS} does not fit an encoder "
                         f"of {CONFIG_FILE}'s configuration ({err}).") from err
    names = sentiment_model.encoder_layer_names(config)
    for name in names:
        source = encoder.get_layer(name).get_weights()
        try:
            target = model.get_layer(name)
        except ValueError as err:
            raise ValueError(f"init_from={path!r}: the model has no layer {name!r} to load "
                             "the pretrained encoder into.") from err
        shapes = [w.shape for w in target.get_weights()]
        if shapes != [w.shape for w in source]:
            raise ValueError(f"init_from={path!r}: layer {name!r} has weights of shapes "
                             f"{shapes}, the checkpoint {[w.shape for w in source]}.")
        target.set_weights(source)
    return names


def _write_artifact(out: str, tokenizer, mlm, encoder, meta: dict) -> str:
    """Writes the artefact into `<out>.tmp-<pid>` and renames it onto `out` (an older
    artefact there is moved aside first, then deleted)."""
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tokenizer.save(tmp)
    encoder.save_weights(os.path.join(tmp, ENCODER_WEIGHTS))
    mlm.save_weights(os.path.join(tmp, MLM_WEIGHTS))
    with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    old = f"{out}.old-{os.getpid()}"
    if os.path.exists(out):
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- run
def vocabulary_sample(texts, n: int, seed: int) -> list:
    """`n` of `texts` drawn uniformly without replacement (seeded), in corpus order; all
    of them when there are no more than `n`.

    The corpus is stored source by source (VADER, Debian's descriptions, man pages,
    Brown, ...): its first lines would give a vocabulary of package descriptions, in
    which everyday words ("went", "food", "milk", "terrible") are split into pieces.
    """
    texts = list(texts)
    if len(texts) <= n:
        return texts
    keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=n, replace=False))
    return [texts[i] for i in keep]


def _run_vocabulary(config: PretrainConfig, texts, run_dir: str):
    """The run's tokenizer: the one in `run_dir/tokenizer` (a resumed run), else trained on
    the corpus and kept there. A run directory of another configuration is an error."""
    state = {"model": dataclasses.asdict(config.model), "corpus": config.corpus,
             "batch_size": config.batch_size, "steps_per_epoch": config.steps_per_epoch,
             "mask_rate": config.mask_rate, "seed": config.seed,
             "vocabulary_texts": config.vocabulary_texts, "vocabulary_sample": "uniform"}
    state_path = os.path.join(run_dir, "run_config.json")
    directory = os.path.join(run_dir, "tokenizer")
    if os.path.isfile(state_path):
        with open(state_path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved != json.loads(json.dumps(state)):
            raise ValueError(
                f"model_dir={run_dir!r} holds a pretraining run of another configuration "
                f"({state_path}); delete it or pass another --model_dir.")
        if os.path.isfile(os.path.join(directory, subword.VOCABULARY_FILE)):
            return subword.SubwordTokenizer.load(directory)
    vocabulary = subword.train_vocabulary(
        vocabulary_sample(texts, config.vocabulary_texts, config.seed), config.model.vocab_size)
    tokenizer = subword.SubwordTokenizer(vocabulary, config.model.max_length)
    tmp = f"{directory}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)
    training._write_json(state_path, state)
    return tokenizer


def run(config: PretrainConfig) -> dict:
    """Pretrains and writes the artefact; returns its `pretrain.json` contents (plus "out")."""
    training.set_seed(config.seed)
    run_dir = training.run_dir(config.model_dir, APP)
    if config.corpus:
        corpus_path = config.corpus
        corpus_meta = {"file": os.path.abspath(corpus_path)}
    else:
        corpus_path, corpus_meta = pretraining_corpus.prepare(
            common_data.data_dir(config.data_dir), config.archive)
    texts = pretraining_corpus.read_corpus(corpus_path)
    epochs, steps = config.epochs, config.steps_per_epoch
    if config.quick:
        texts, epochs, steps = texts[:2000], 1, min(steps, 20)
    corpus_meta = {**corpus_meta, "sentences_read": len(texts),
                   "words_read": int(sum(len(t.split()) for t in texts))}
    tokenizer = _run_vocabulary(config, texts, run_dir)
    mc = dataclasses.replace(config.model, vocab_size=tokenizer.vocabulary_size)
    logging.info("Pretraining on %d lines, %d pieces, %d x %d steps of %d", len(texts),
                 tokenizer.vocabulary_size, epochs, steps, config.batch_size)
    dataset = make_dataset(texts, tokenizer, config)
    mlm, encoder = build_mlm_model(mc, config.predictions)
    compile_mlm(mlm, config, epochs * steps)
    history, seconds = training.timed_fit(
        mlm, dataset, epochs=epochs, model_dir=run_dir, steps_per_epoch=steps,
        verbose=config.verbose, shuffle=False)  # the tf.data pipeline shuffles, seeded
    meta = {
        "model": dataclasses.asdict(mc),
        "corpus": corpus_meta,
        "epochs": epochs, "steps_per_epoch": steps, "steps": epochs * steps,
        "batch_size": config.batch_size, "mask_rate": config.mask_rate,
        "max_predictions": config.predictions, "seed": config.seed,
        "seconds": seconds, "seconds_per_step": seconds / max(epochs * steps, 1),
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = _write_artifact(config.out, tokenizer, mlm, encoder, meta)
    logging.info("Pretrained encoder written to %s", out)
    return {**meta, "out": out}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    result = run(common_config.from_flags(PretrainConfig))
    history = result["history"]
    print(f"pretrained -> {result['out']}: {result['steps']} steps in {result['seconds']:.0f} s, "
          f"loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}", flush=True)


if __name__ == "__main__":
    app.run(main)
