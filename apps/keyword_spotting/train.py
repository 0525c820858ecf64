"""Train a keyword spotter that shows when it heard the word; evaluate on unseen voices; export.

Usage:
    python -m apps.keyword_spotting.train                    # attention_rnn on the synthetic corpus
    python -m apps.keyword_spotting.train --variant=kwt      # keyword transformer
    python -m apps.keyword_spotting.train --variant=cnn      # no attention, the baseline
    python -m apps.keyword_spotting.train --quick            # small corpus, a run of seconds
    python -m apps.keyword_spotting.train --dataset=speech_commands   # online, through tfds
    python -m apps.keyword_spotting.train --epochs=30 --batch_size=64 \\
        --model_dir=runs/keyword_spotting --export_dir=saved_models/keyword_spotting
    python -m apps.keyword_spotting.train --config=model.rnn_units=128 \\
        --config=learning_rate=1e-3 --config=sample_clips=16
    python -m apps.keyword_spotting.train --variant=kwt --config=model.kwt_depth=6
    python -m apps.keyword_spotting.train --config=model.time_stretch=0.5   # speaking rate
    python -m apps.keyword_spotting.train --config=corpus=wide_unknown      # 374 unknown words
    python -m apps.keyword_spotting.train --config=corpus=default   # without the neural voice
    python -m apps.keyword_spotting.train --variant=speech_embedding   # pretrained embedding
    python -m apps.keyword_spotting.train --config=embedding_ensemble=false  # one model alone

Every field of `TrainConfig` (and of `model.ModelConfig`, as `model.<field>`)
is set with `--config=KEY=VALUE` (see apps/README.md).

The first run builds the `synthetic_speech_commands` corpus (espeak-ng, flite,
MBROLA and Piper voices; about 6 minutes on two cores; cached under --data_dir).
Training shows Keras' progress bars; the run directory gets TensorBoard logs,
`metrics.json` (test accuracy on voices never heard in training, per class and
per speaker, and how much of the attention falls on the spoken word),
`confusion_matrix.png` and, per sample
clip, `attention/<n>_<label>.png` (waveform, spectrogram and the attention over
time beneath them). The SavedModel goes to `<export_dir>/<version>/` with the
signatures `serving_default` (WAV bytes) and `waveform` (float samples).

By default (`embedding_ensemble`) a second model joins the variant: the
`speech_embedding` variant (a head on a speech embedding pretrained on real
speech, `speech_embedding.py`), trained after it on the same corpus; the export
answers with the weighted product of the two models' probabilities (the
embedding's exponent `embedding_exponent`, 0.5 by default) and the variant's
attention. The speech embedding is fixed, so `fit_embedding_head` computes its
features once for `embedding_passes` passes over the training clips (the first
with speed perturbation only, the others through the simulated channels too)
and trains only the head on them: `model.ModelConfig.embedding_heads` heads (two by
default, `embedding_epochs` each), one after the other, their mean answering.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

from absl import app, logging

from apps.common import config as common_config
from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training
from apps.keyword_spotting import builder, ensemble
from apps.keyword_spotting.model import ModelConfig
from apps.keyword_spotting.pipeline import DATASETS
from keras_attention import _validation

APP = "keyword_spotting"
# The corpus the app trains on by default: the builder's `default` voices, with 25% of the
# training words spoken by Piper's neural voice of a real speaker (warped 0.85-1.3). Over
# seeds 42 and 1 (benchmarks/results/keyword_spotting_real.md): the real IVR digits 20/20
# (the builder's default corpus: 17/20), mean probability of the right digit 0.92-0.93;
# unseen synthetic voices 91.1% (92.0%).
DEFAULT_CORPUS = "neural_voice_wide_warp"
QUICK_EPOCHS = 3  # --quick without --epochs.


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything one run needs; `main` fills it from the command line, tests build it directly.

    Attributes:
        dataset: one of `pipeline.DATASETS`.
        data_dir: tfds cache root (None: the default cache).
        model_dir: run directory (plots, metrics, logs, backups).
        export_dir: SavedModel base path; None skips the export.
        epochs, batch_size, learning_rate, seed: training (peak learning rate of a cosine
            schedule with warmup).
        ema_momentum: the variant's weights at the end are an exponential moving average
            over its steps with this momentum (0: off, the default).
        strategy: `apps.common.strategy` name.
        quick: the small corpus (and, from the command line, QUICK_EPOCHS epochs).
        corpus: the synthetic corpus' builder config: a name (`builder.CONFIG_NAMES`) or,
            from Python, a `builder.SpeechCommandsConfig`; None: `quick` with `quick`, else
            `DEFAULT_CORPUS`.
        speed_perturbation: `(low, high)` speeds of the training batches; empty: off.
        channel_augment: probability of each real-world channel augmentation (room,
            microphone, level and clipping, telephone line; `channel.augment_channel`) of
            every training clip (default 0.5); 0: off.
        data_autotune: let tf.data's autotuner size the input pipeline
            (`pipeline.make_dataset`'s `autotune`); off by default.
        model: the `ModelConfig` (`num_classes` is set from the dataset; `seed` None: `seed`).
        test_speeds: the speeds at which the test clips and the export's inputs are also
            played, the probabilities averaged (`ensemble.SpeedEnsemble`; must hold 1.0,
            whose attention is returned); `(1.0,)`, the default: the clip alone;
            `ensemble.SPEEDS`: 0.9, 1 and 1.1.
        embedding_ensemble: join a `speech_embedding` model to the variant (the product of
            their probabilities; see the module docstring). Ignored when the variant is
            `speech_embedding`.
        embedding_passes: passes over the training clips whose speech-embedding features
            the head trains on (the first without the channel augmentation).
        embedding_epochs: epochs of each head (`model.ModelConfig.embedding_heads`) over
            those features.
        embedding_learning_rate: the head's peak learning rate.
        embedding_exponent: the speech-embedding model's exponent in the product of the two
            models' probabilities (`model.ProductOfExperts`; the variant's is 1): 1 counts
            both alike, 0.5 (the default) the embedding's log-probabilities half as much.
        sample_clips: test clips drawn with their attention (0: none).
        plots: write the confusion matrix and attention plots.
        backup: resume from `model_dir/backup` after an interruption.
    """

    dataset: Literal["synthetic_speech_commands", "speech_commands"] = (
        "synthetic_speech_commands")
    model_dir: str = os.path.join("runs", APP)
    export_dir: str | None = os.path.join("saved_models", APP)
    epochs: int = 12
    batch_size: int = 64
    # 3e-3 (2e-3 before session 33): over seeds 42, 1 and 2, validation 95.7% against 94.8%,
    # unseen voices 95.3% against 94.9%, PocketSphinx 50/72 against 44
    # (benchmarks/results/keyword_spotting_members_lr3.md against _heads2.md).
    learning_rate: float = 3e-3
    ema_momentum: float = 0.0
    corpus: str | builder.SpeechCommandsConfig | None = None
    speed_perturbation: tuple[float, ...] = (0.9, 1.1)
    # 0.5: on the same corpus and seed, 92.3% on unseen voices against 92.1% without it, and
    # 89.1% against 53.5% through a telephone line (benchmarks/keyword_spotting_real.py).
    channel_augment: float = 0.5
    # Off: on two cores tf.data's autotuner made whole epochs slower at random (training
    # epochs of 40-42 s against 23-25 s; pipeline.make_dataset's docstring; README).
    data_autotune: bool = False
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    # (0.9, 1, 1.1) on six trained models: +0.2 to +1.5 points on unseen synthetic voices, but
    # no gain on the real IVR digits, for about twice the serving time: off by default.
    test_speeds: tuple[float, ...] = (1.0,)
    embedding_ensemble: bool = True
    embedding_passes: int = 2
    embedding_epochs: int = 10  # Each head's (model.ModelConfig.embedding_heads).
    embedding_learning_rate: float = 1e-3
    # 0.5: over seeds 42, 1 and 2 (benchmarks/keyword_spotting_members.py), unseen synthetic
    # voices 94.8% against 94.3% for 1 (both alike), validation 94.7% against 93.7%, the real
    # IVR digits 29/30 against 28/30; at no serving cost.
    embedding_exponent: float = 0.5
    sample_clips: int = 8
    plots: bool = True
    backup: bool = True

    def __post_init__(self):
        super().__post_init__()
        _validation.one_of("dataset", self.dataset, DATASETS)
        _validation.one_of("strategy", self.strategy, ("default", "mirrored", "multi_worker",
                                                       "tpu"))
        _validation.positive_int("epochs", self.epochs)
        _validation.positive_int("batch_size", self.batch_size)
        _validation.positive_float("learning_rate", self.learning_rate)
        _validation.rate("ema_momentum", self.ema_momentum)
        _validation.non_negative_int("seed", self.seed)
        _validation.non_negative_int("sample_clips", self.sample_clips)
        _validation.boolean("data_autotune", self.data_autotune)
        _validation.boolean("embedding_ensemble", self.embedding_ensemble)
        _validation.positive_int("embedding_passes", self.embedding_passes)
        _validation.positive_int("embedding_epochs", self.embedding_epochs)
        _validation.positive_float("embedding_learning_rate", self.embedding_learning_rate)
        _validation.positive_float("embedding_exponent", self.embedding_exponent)
        if isinstance(self.corpus, str):
            _validation.one_of("corpus", self.corpus, builder.CONFIG_NAMES)
        speeds = self.speed_perturbation
        if speeds and not (len(speeds) == 2 and 0 < speeds[0] <= speeds[1]):
            raise ValueError("`speed_perturbation` must be empty or two speeds 0 < low <= high. "
                             f"Received: speed_perturbation={speeds!r}")
        if (isinstance(self.channel_augment, bool)
                or not isinstance(self.channel_augment, (int, float))
                or not 0.0 <= self.channel_augment <= 1.0):
            raise ValueError("`channel_augment` must be a probability in [0, 1]. "
                             f"Received: channel_augment={self.channel_augment!r}")
        object.__setattr__(self, "test_speeds", ensemble.check_speeds(self.test_speeds))
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"`model` must be a ModelConfig. Received: model={self.model!r}")

    @property
    def corpus_config(self):
        """The builder config to prepare: `corpus`, or `quick`/`DEFAULT_CORPUS` by `quick`."""
        return self.corpus or ("quick" if self.quick else DEFAULT_CORPUS)


def run(config: TrainConfig) -> common_metrics.RunResult:
    """Trains, evaluates on the test split (unseen voices), plots, exports; writes and returns
    the `RunResult` (headline: test accuracy)."""
    import keras

    from apps.keyword_spotting import evaluation, pipeline
    from apps.keyword_spotting.model import build_model, compile_model, product_of_experts

    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    os.makedirs(config.model_dir, exist_ok=True)
    splits = pipeline.load_splits(config.dataset, config.data_dir, config.corpus_config)
    train = pipeline.make_dataset(splits, "train", config.batch_size, training=True,
                                  seed=config.seed, speed_perturbation=config.speed_perturbation,
                                  channel_augment=config.channel_augment,
                                  autotune=config.data_autotune)
    validation = pipeline.make_dataset(splits, "validation", config.batch_size,
                                       autotune=config.data_autotune)
    steps_per_epoch = max(1, -(-splits.sizes["train"] // config.batch_size))
    model_config = dataclasses.replace(
        config.model, num_classes=len(splits.class_names),
        seed=config.seed if config.model.seed is None else config.model.seed)
    with strategy.scope():
        spotter = build_model(model_config, cache_dir=config.data_dir)
        if spotter.head is None:
            compile_model(spotter.classifier, config.learning_rate,
                          steps=config.epochs * steps_per_epoch,
                          ema_momentum=config.ema_momentum)
    logging.info("%s: %d parameters", spotter.classifier.name, spotter.classifier.count_params())
    members = {}  # Each model's own test accuracy when two answer together.
    if spotter.head is not None:
        history, seconds = fit_embedding_head(spotter, splits, config, strategy)
    else:
        history, seconds = training.timed_fit(
            spotter.classifier, train, validation, epochs=config.epochs,
            extra_callbacks=training.callbacks(config.model_dir, backup=config.backup),
        )
    explainer = spotter.explainer
    if config.embedding_ensemble and spotter.head is None:
        embedding_config = dataclasses.replace(model_config, variant="speech_embedding")
        with strategy.scope():
            companion = build_model(embedding_config, cache_dir=config.data_dir)
        _, companion_seconds = fit_embedding_head(companion, splits, config, strategy)
        seconds += companion_seconds
        for name, member in ((model_config.variant, spotter), ("speech_embedding", companion)):
            members[name] = evaluation.evaluate(member, splits, config.batch_size,
                                                sample_clips=0)["test_accuracy"]
        logging.info("test accuracy of each model alone: %s", members)
        explainer = product_of_experts([spotter.explainer, companion.explainer],
                                       exponents=(1.0, config.embedding_exponent))
    chief = common_strategy.is_chief(strategy)
    served = dataclasses.replace(
        spotter, explainer=ensemble.SpeedEnsemble(explainer, config.test_speeds))
    scores = evaluation.evaluate(
        served, splits, config.batch_size, sample_clips=config.sample_clips,
        run_dir=config.model_dir if chief and config.plots else None)
    metrics = {
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "ema_momentum": config.ema_momentum,
        "parameters": int(spotter.classifier.count_params()),
        "split_sizes": splits.sizes,
        "class_names": splits.class_names,
        "validation_accuracy": float(history.history.get("val_accuracy", [float("nan")])[-1]),
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        **scores,
        "model_config": dataclasses.asdict(model_config),
        "test_speeds": list(config.test_speeds),
        "embedding_ensemble": bool(members),
        "member_test_accuracy": members,
        "embedding_exponent": config.embedding_exponent if members else None,
    }
    export_path = None
    if chief and config.export_dir:
        from apps.keyword_spotting import export

        export_path = export.export(explainer, splits.class_names, config.export_dir,
                                    speeds=config.test_speeds)
    result = common_metrics.RunResult(
        app=APP, dataset=config.dataset, variant=model_config.variant,
        metric="test_accuracy" if config.dataset == "speech_commands"
        else "test_accuracy_unseen_voices",
        value=scores["test_accuracy"], train_seconds=seconds, export_path=export_path,
        metrics=metrics)
    if chief:
        result.write(config.model_dir)
    keras.backend.clear_session()
    return result


def embedding_features(features, dataset):
    """`(embeddings float16 (n, windows, 96), labels (n,))` of every batch of `dataset`."""
    import numpy as np
    import tensorflow as tf

    embed = tf.function(lambda x: features(x, training=False))
    xs, ys = [], []
    for x, y in dataset:
        xs.append(embed(x).numpy().astype(np.float16))
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def embedding_training_features(spotter, splits, config: TrainConfig):
    """The fixed speech-embedding features a `speech_embedding` spotter's head trains on:
    `(x float16 (n, windows, 96), y (n,), validation (x, y))`, `x` of
    `config.embedding_passes` passes over the training clips (the first with speed
    perturbation only, the others through the simulated channels too)."""
    import numpy as np

    from apps.keyword_spotting import pipeline

    xs, ys = [], []
    for i in range(config.embedding_passes):
        dataset = pipeline.make_dataset(
            splits, "train", 256, training=True, seed=config.seed + i,
            speed_perturbation=config.speed_perturbation,
            channel_augment=config.channel_augment if i else 0.0,
            autotune=config.data_autotune)
        x, y = embedding_features(spotter.features, dataset)
        xs.append(x)
        ys.append(y)
    validation = embedding_features(spotter.features,
                                    pipeline.make_dataset(splits, "validation", 256,
                                                          autotune=config.data_autotune))
    return np.concatenate(xs), np.concatenate(ys), validation


def fit_heads(spotter, x, y, validation, config: TrainConfig, strategy):
    """Trains each head of a `speech_embedding` spotter (`ModelConfig.embedding_heads`) in
    turn on the features `x`, `y` for `config.embedding_epochs`; they differ by their initial
    weights and the order of their batches, and the model answers with their mean. Returns
    the first head's history. A head's epochs resume from a backup under
    `model_dir/speech_embedding_head` (`_1`, `_2`, ... for the others) after a kill."""
    from apps.keyword_spotting.model import compile_model, head_classifiers, head_suffix

    history = None
    batch_size = 128
    for index, classifier in enumerate(head_classifiers(spotter.head)):
        with strategy.scope():
            compile_model(classifier, config.embedding_learning_rate,
                          steps=config.embedding_epochs * -(-len(y) // batch_size))
        backup = os.path.join(config.model_dir, "speech_embedding_head" + head_suffix(index))
        fitted, _ = training.timed_fit(
            classifier, x.astype("float32"), validation, epochs=config.embedding_epochs,
            batch_size=batch_size, shuffle=True,
            extra_callbacks=training.callbacks(backup, backup=config.backup), verbose=0,
            y=y)
        if history is None:
            history = fitted
        logging.info("speech-embedding head %d: validation accuracy %.4f", index,
                     fitted.history["val_accuracy"][-1])
    return history


def fit_embedding_head(spotter, splits, config: TrainConfig, strategy):
    """Trains the heads of a `speech_embedding` spotter on its fixed features, computed once
    (`embedding_training_features`; `fit_heads`); returns (the first head's history,
    seconds, the features' included). After a kill the heads resume from their backups;
    the features are computed anew."""
    import time

    start = time.perf_counter()
    x, y, validation = embedding_training_features(spotter, splits, config)
    logging.info("speech-embedding features of %d training clips in %.0f s", len(y),
                 time.perf_counter() - start)
    history = fit_heads(spotter, x, y, validation, config, strategy)
    return history, time.perf_counter() - start


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for: the common flags and `--config`, from
    TrainConfig's defaults (with --quick, QUICK_EPOCHS unless --epochs or --config says)."""
    base = TrainConfig(quick=True, epochs=QUICK_EPOCHS) if common_flags.QUICK.value else None
    return common_config.from_flags(TrainConfig, base)


def main(argv):
    del argv
    result = run(config_from_flags())
    print(result.line)
    if result.export_path:
        print(f"[{APP}] SavedModel: {result.export_path}")


if __name__ == "__main__":
    app.run(main)
