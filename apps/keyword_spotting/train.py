"""Train a keyword spotter that shows when it heard the word; evaluate on unseen voices; export.

Usage:
    python -m apps.keyword_spotting.train                    # attention_rnn on the synthetic corpus
    python -m apps.keyword_spotting.train --variant=kwt      # keyword transformer
    python -m apps.keyword_spotting.train --variant=cnn      # no attention, the baseline
    python -m apps.keyword_spotting.train --quick            # small corpus, a run of seconds
    python -m apps.keyword_spotting.train --dataset=speech_commands   # online, through tfds
    python -m apps.keyword_spotting.train --epochs=30 --batch_size=64 \\
        --model_dir=runs/keyword_spotting --export_dir=saved_models/keyword_spotting

The first run builds the `synthetic_speech_commands` corpus (espeak-ng and flite
voices; a few minutes; cached under --data_dir). Training shows Keras' progress
bars; the run directory gets TensorBoard logs, `metrics.json` (test accuracy on
voices never heard in training, per class and per speaker, and how much of the
attention falls on the spoken word), `confusion_matrix.png` and, per sample
clip, `attention/<n>_<label>.png` (waveform, spectrogram and the attention over
time beneath them). The SavedModel goes to `<export_dir>/<version>/` with the
signatures `serving_default` (WAV bytes) and `waveform` (float samples).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from absl import app, flags, logging

from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training

APP = "keyword_spotting"
DATASETS = ("synthetic_speech_commands", "speech_commands")

_RNN_UNITS = flags.DEFINE_integer("kws_rnn_units", None,
                                  "LSTM units per direction of attention_rnn (default 64).")
_KWT_DEPTH = flags.DEFINE_integer("kws_kwt_depth", None, "Transformer blocks of kwt (default 4).")
_LEARNING_RATE = flags.DEFINE_float("kws_learning_rate", None, "Peak learning rate (default 2e-3).")
_SAMPLE_CLIPS = flags.DEFINE_integer("kws_sample_clips", None,
                                     "Test clips to draw with their attention (default 8).")


@dataclasses.dataclass
class TrainConfig:
    """Everything one run needs; `main` fills it from flags, tests build it directly.

    Attributes:
        dataset: one of DATASETS.
        data_dir: tfds cache root (None: the default cache).
        model_dir: run directory (plots, metrics, logs, backups).
        export_dir: SavedModel base path; None skips the export.
        variant: model variant (`model.VARIANTS`).
        epochs, batch_size, learning_rate, seed: training.
        strategy: `apps.common.strategy` name.
        quick: the small corpus.
        corpus: a builder config (name or `data.SpeechCommandsConfig`) overriding `quick`.
        model: overrides of `model.ModelConfig` fields.
        sample_clips: test clips drawn with their attention (0: none).
        plots: write the confusion matrix and attention plots.
        backup: resume from `model_dir/backup` after an interruption.
    """

    dataset: str = "synthetic_speech_commands"
    data_dir: str | None = None
    model_dir: str = os.path.join("runs", APP)
    export_dir: str | None = os.path.join("saved_models", APP)
    variant: str = "attention_rnn"
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 42
    strategy: str = "default"
    quick: bool = False
    corpus: object = None
    model: dict = dataclasses.field(default_factory=dict)
    sample_clips: int = 8
    plots: bool = True
    backup: bool = True


def _evaluate(spotter, splits, batch_size: int) -> dict:
    """Runs the explainer over the test split; returns arrays keyed by name."""
    out = {k: [] for k in ("label", "prediction", "probabilities", "weights", "speaker",
                           "word_start", "word_end")}
    for batch in splits.examples("test", batch_size):
        result = spotter.explainer(batch["waveform"], training=False)
        probabilities = np.asarray(result["probabilities"])
        out["label"].append(batch["label"].numpy())
        out["prediction"].append(probabilities.argmax(axis=-1))
        out["probabilities"].append(probabilities)
        out["weights"].append(np.asarray(result["attention_weights"]))
        n = probabilities.shape[0]
        out["speaker"].append(batch["speaker"].numpy() if "speaker" in batch else [b""] * n)
        out["word_start"].append(batch["word_start"].numpy() if "word_start" in batch
                                 else np.full(n, -1))
        out["word_end"].append(batch["word_end"].numpy() if "word_end" in batch
                               else np.full(n, -1))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def attention_on_word(weights, word_start, word_end, frame_step: int) -> tuple[float, float]:
    """Mean attention mass on frames centered inside the spoken word, and what uniform
    attention would give (the word's share of the frames). Clips without a word are skipped."""
    mass, uniform = [], []
    centers = np.arange(weights.shape[1]) * frame_step
    for w, start, end in zip(weights, word_start, word_end, strict=True):
        if start < 0:
            continue
        inside = (centers >= start) & (centers < end)
        mass.append(float(w[inside].sum()))
        uniform.append(float(inside.mean()))
    if not mass:
        return float("nan"), float("nan")
    return float(np.mean(mass)), float(np.mean(uniform))


def _sample_plots(spotter, splits, results, model_dir, count: int, batch_size: int) -> list[str]:
    """Waveform, spectrogram and attention of `count` test clips (correct and wrong ones)."""
    import keras

    from apps.keyword_spotting import plots

    if count <= 0:
        return []
    classifier = spotter.classifier
    front = keras.Model(classifier.input, classifier.get_layer("normalize").output)
    names = splits.class_names
    wrong = np.nonzero(results["label"] != results["prediction"])[0]
    rng = np.random.default_rng(0)
    # One clip of each of several classes, and up to two mistakes.
    chosen = []
    for cls in rng.permutation(len(names)):
        hits = np.nonzero((results["label"] == cls) & (results["label"] == results["prediction"]))
        if hits[0].size:
            chosen.append(int(hits[0][0]))
        if len(chosen) >= max(1, count - 2):
            break
    chosen += [int(i) for i in wrong[: count - len(chosen)]]
    paths = []
    wanted = set(chosen)
    offset = 0
    for batch in splits.examples("test", batch_size):
        n = int(batch["label"].shape[0])
        for j in range(n):
            i = offset + j
            if i not in wanted:
                continue
            waveform = batch["waveform"][j].numpy()
            spectrogram = np.asarray(front(waveform[None], training=False))[0]
            true, pred = names[results["label"][i]], names[results["prediction"][i]]
            speaker = results["speaker"][i]
            speaker = speaker.decode() if isinstance(speaker, bytes) else str(speaker)
            title = f"true: {true}   predicted: {pred}"
            title += f"   voice: {speaker}" if speaker else ""
            path = os.path.join(model_dir, "attention", f"{i:05d}_{true}.png")
            span = (int(results["word_start"][i]), int(results["word_end"][i]))
            paths.append(plots.plot_clip_attention(
                waveform, spectrogram, results["weights"][i], path, title=title,
                frame_step=spotter.config.frame_step, word_span=span,
            ))
        offset += n
    return paths


def run(config: TrainConfig) -> dict:
    """Trains, evaluates on the test split (unseen voices), plots, exports; returns metrics."""
    import keras

    from apps.keyword_spotting import data, model, plots

    if config.dataset not in DATASETS:
        raise ValueError(f"dataset={config.dataset!r} is not one of {DATASETS}.")
    if config.variant not in model.VARIANTS:
        raise ValueError(f"variant={config.variant!r} is not one of {model.VARIANTS}.")
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    os.makedirs(config.model_dir, exist_ok=True)
    splits = data.load(config.dataset, config.data_dir, config.batch_size, config.quick,
                       config.seed, config.corpus)
    steps_per_epoch = max(1, -(-splits.sizes["train"] // config.batch_size))
    with strategy.scope():
        model_config = model.ModelConfig(variant=config.variant,
                                         num_classes=len(splits.class_names),
                                         seed=config.seed, **config.model)
        spotter = model.build(model_config)
        model.compile_for_training(spotter.classifier, config.learning_rate,
                                   steps=config.epochs * steps_per_epoch)
    logging.info("%s: %d parameters", spotter.classifier.name, spotter.classifier.count_params())
    callbacks = training.callbacks(config.model_dir, backup=config.backup)
    history, seconds = training.timed_fit(
        spotter.classifier, splits.train, splits.validation, epochs=config.epochs,
        extra_callbacks=callbacks,
    )
    start = time.perf_counter()
    results = _evaluate(spotter, splits, config.batch_size)
    eval_seconds = time.perf_counter() - start
    names = splits.class_names
    correct = results["label"] == results["prediction"]
    accuracy = float(correct.mean()) if correct.size else float("nan")
    per_class = {names[c]: float(correct[results["label"] == c].mean())
                 for c in range(len(names)) if np.any(results["label"] == c)}
    per_speaker = {}
    for speaker in sorted(set(results["speaker"].tolist())):
        if speaker:
            mask = results["speaker"] == speaker
            per_speaker[speaker.decode() if isinstance(speaker, bytes) else str(speaker)] = float(
                correct[mask].mean())
    on_word, uniform = attention_on_word(results["weights"], results["word_start"],
                                         results["word_end"], model_config.frame_step)
    metrics = {
        "dataset": config.dataset,
        "variant": config.variant,
        "metric": "test_accuracy_unseen_voices" if config.dataset != "speech_commands"
        else "test_accuracy",
        "value": accuracy,
        "train_seconds": seconds,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "parameters": int(spotter.classifier.count_params()),
        "split_sizes": splits.sizes,
        "class_names": names,
        "validation_accuracy": float(history.history.get("val_accuracy", [float("nan")])[-1]),
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "test_accuracy": accuracy,
        "test_accuracy_per_class": per_class,
        "test_accuracy_per_speaker": per_speaker,
        "attention_mass_on_word": on_word,
        "attention_mass_on_word_if_uniform": uniform,
        "test_ms_per_clip": 1000.0 * eval_seconds / max(1, results["label"].size),
        "model_config": dataclasses.asdict(model_config),
    }
    chief = common_strategy.is_chief(strategy)
    if chief and config.plots:
        matrix = plots.confusion_matrix(results["label"], results["prediction"], len(names))
        metrics["confusion_matrix"] = matrix.tolist()
        metrics["confusion_matrix_png"] = plots.plot_confusion_matrix(
            matrix, names, os.path.join(config.model_dir, "confusion_matrix.png"),
            title=f"{config.variant} on unseen voices: accuracy {accuracy:.3f}",
        )
        metrics["attention_plots"] = _sample_plots(spotter, splits, results, config.model_dir,
                                                   config.sample_clips, config.batch_size)
    if chief and config.export_dir:
        from apps.keyword_spotting import export

        metrics["export_path"] = export.export(spotter.explainer, names, config.export_dir)
    if chief:
        common_metrics.write_metrics(config.model_dir, APP, metrics)
    keras.backend.clear_session()
    return metrics


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for (common flags + this app's)."""
    quick = bool(common_flags.QUICK.value)
    model_overrides = {}
    if _RNN_UNITS.value is not None:
        model_overrides["rnn_units"] = _RNN_UNITS.value
    if _KWT_DEPTH.value is not None:
        model_overrides["kwt_depth"] = _KWT_DEPTH.value
    return TrainConfig(
        dataset=common_flags.choice(common_flags.DATASET, DATASETS[0], DATASETS),
        data_dir=common_flags.DATA_DIR.value,
        model_dir=training.run_dir(common_flags.MODEL_DIR.value, APP),
        export_dir=common_flags.resolve(common_flags.EXPORT_DIR, os.path.join("saved_models", APP)),
        variant=common_flags.choice(common_flags.VARIANT, "attention_rnn",
                                    ("attention_rnn", "kwt", "cnn")),
        # The defaults are TrainConfig's (the command line used to say 20 epochs
        # after the default became 12 with corpus 1.1.0).
        epochs=common_flags.positive(common_flags.EPOCHS, 3 if quick else TrainConfig.epochs),
        batch_size=common_flags.positive(common_flags.BATCH_SIZE, TrainConfig.batch_size),
        learning_rate=_LEARNING_RATE.value or TrainConfig.learning_rate,
        seed=common_flags.SEED.value,
        strategy=common_flags.STRATEGY.value,
        quick=quick,
        model=model_overrides,
        sample_clips=8 if _SAMPLE_CLIPS.value is None else _SAMPLE_CLIPS.value,
    )


def main(argv):
    del argv
    metrics = run(config_from_flags())
    print(common_metrics.results_line(APP, metrics["dataset"], metrics["variant"],
                                      metrics["metric"], metrics["value"],
                                      metrics["train_seconds"]))
    if "export_path" in metrics:
        print(f"[{APP}] SavedModel: {metrics['export_path']}")


if __name__ == "__main__":
    app.run(main)
