"""Trains a sentence sentiment classifier with attention, explains it, and exports it.

Usage:

    # Train on the VADER movie sentences (fetched once with pip), evaluate on the
    # movies test split and on tweets / amazon / nyt (out of domain), write
    # metrics, attention pictures and a SavedModel under saved_models/sentiment/:
    python -m apps.sentiment.train

    # The other variants, the same budget:
    python -m apps.sentiment.train --variant=transformer
    python -m apps.sentiment.train --variant=mean_pooling

    # A run of seconds, to try the pipeline out:
    python -m apps.sentiment.train --quick

    # Offline, with the source archive copied by hand:
    python -m apps.sentiment.train --vader_archive=/path/to/vaderSentiment-3.3.2.tar.gz

    # Online machines: public datasets through tfds.
    python -m apps.sentiment.train --dataset=imdb_reviews --max_words=256
    python -m apps.sentiment.train --dataset=glue/sst2

Outputs (`--model_dir`, default runs/sentiment/): metrics.json,
attention.html and attention.png (a dozen test sentences with each word shaded
by its attention weight), vocabulary.json, TensorBoard logs; the SavedModel in
`--export_dir` (default saved_models/sentiment/<next version>/), whose
`serving_default` maps `text` to `probabilities`, `label`, `attention_weights`
and `tokens`.
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from apps.common import data as common_data
from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training
from apps.sentiment import data as sentiment_data
from apps.sentiment import export as sentiment_export
from apps.sentiment import model as sentiment_model
from apps.sentiment import plots

APP = "sentiment"
DEFAULT_DATASET = "vader_sentiment/movies"

_ARCHIVE = flags.DEFINE_string(
    "vader_archive", None,
    "Path to vaderSentiment-3.3.2.tar.gz (the sdist) when pip cannot download it "
    f"(also ${sentiment_data.ARCHIVE_ENV}).",
)
_MAX_WORDS = flags.DEFINE_integer(
    "max_words", None, "Tokens kept per text (default 50; longer texts are truncated)."
)
_VOCAB_WORDS = flags.DEFINE_integer(
    "vocab_words", None, "Vocabulary size, from the training split (default 16000)."
)
_ATTENTION_EXAMPLES = flags.DEFINE_integer(
    "attention_examples", 12, "Test sentences drawn in attention.html / attention.png."
)


@dataclasses.dataclass
class TrainConfig:
    """Everything one run needs; `main` fills it from flags, tests build it directly."""

    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    archive: str | None = None
    model_dir: str | None = None
    export_dir: str | None = "saved_models/sentiment"  # None: do not export
    epochs: int = 6
    batch_size: int = 64
    seed: int = 42
    strategy: str = "default"
    quick: bool = False
    out_of_domain: bool = True
    attention_examples: int = 12
    verbose: str | int = "auto"
    model: sentiment_model.ModelConfig = dataclasses.field(
        default_factory=sentiment_model.ModelConfig
    )


def _restore_best():
    """Keeps the weights of the epoch with the best validation accuracy (across a kill and
    resume: timed_fit keeps its state in the backup directory)."""
    return training.ResumableEarlyStopping(
        monitor="val_accuracy", mode="max", patience=10_000, restore_best_weights=True
    )


def _pick_examples(split, tokenizer, n):
    """The first `n` test sentences of 6..30 tokens (readable pictures), else any."""
    if n <= 0 or len(split) == 0:
        return split.head(0)
    _, ids = tokenizer.tokenize(tf.constant(list(split.texts), tf.string))
    lengths = np.sum(ids.numpy() > 0, axis=1)
    chosen = [i for i, k in enumerate(lengths) if 6 <= k <= 30][:n]
    if len(chosen) < n:
        chosen += [i for i in range(len(split)) if i not in chosen][: n - len(chosen)]
    chosen = np.array(chosen, dtype=np.int64)
    return sentiment_data.Split(split.texts[chosen], split.labels[chosen])


def _evaluate(model, split, tokenizer, batch_size) -> dict:
    """Accuracy, and how often the truth / the model says positive (to see a skew)."""
    if len(split) == 0:
        return {"accuracy": float("nan"), "examples": 0}
    ds = sentiment_data.make_dataset(split, tokenizer, batch_size).map(lambda ids, _: ids)
    predicted = np.argmax(model.predict(ds, verbose=0), axis=-1)
    return {
        "accuracy": float(np.mean(predicted == split.labels)),
        "examples": len(split),
        "positive_share": float(np.mean(split.labels == 1)),
        "predicted_positive_share": float(np.mean(predicted == 1)),
    }


def run(config: TrainConfig) -> dict:
    """Trains, evaluates, plots and exports; returns the metrics dict (also written as JSON)."""
    mc = config.model
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    splits = sentiment_data.load_splits(config.dataset, data_dir, config.archive)
    epochs = config.epochs
    if config.quick:
        splits = {"train": splits["train"].head(512), "validation": splits["validation"].head(128),
                  "test": splits["test"].head(128)}
        epochs = 1
    logging.info("Split sizes: %s", {k: len(v) for k, v in splits.items()})

    tokenizer = sentiment_data.make_tokenizer(splits["train"], mc.vocab_size, mc.max_length)
    mc = dataclasses.replace(mc, vocab_size=tokenizer.vocabulary_size)
    tokenizer.save(os.path.join(model_dir, "vocabulary.json"))
    train_ds = sentiment_data.make_dataset(
        splits["train"], tokenizer, config.batch_size, shuffle=True, seed=config.seed
    )
    val_ds = sentiment_data.make_dataset(splits["validation"], tokenizer, config.batch_size)

    with strategy.scope():
        classifier, explainer = sentiment_model.build_models(mc)
        sentiment_model.compile_classifier(classifier, mc)
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        classifier, train_ds, val_ds, epochs=epochs, model_dir=model_dir,
        extra_callbacks=[_restore_best()], verbose=config.verbose,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    cpu_seconds = time.process_time() - cpu_start

    metrics = {
        "dataset": config.dataset,
        "variant": mc.variant,
        "config": dataclasses.asdict(mc),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "quick": config.quick,
        "params": int(classifier.count_params()),
        "train_seconds": seconds,
        # CPU time of this process while training (all threads): unlike wall time it
        # hardly depends on what else runs on the machine.
        "train_cpu_seconds": cpu_seconds,
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }
    for name in ("validation", "test"):
        result = _evaluate(classifier, splits[name], tokenizer, config.batch_size)
        metrics[f"{name}_accuracy"] = result["accuracy"]
        metrics[f"{name}_detail"] = result
    vader = config.dataset.split("/")[0] == sentiment_data.EMBEDDED
    if config.out_of_domain and vader:
        domain = config.dataset.split("/")[1] if "/" in config.dataset else "movies"
        ood = sentiment_data.out_of_domain(data_dir, config.archive, train_domain=domain)
        if config.quick:
            ood = {k: v.head(256) for k, v in ood.items()}
        metrics["out_of_domain"] = {
            name: {**_evaluate(classifier, split, tokenizer, config.batch_size),
                   "split": "all (train+validation+test)"}
            for name, split in ood.items()
        }

    if common_strategy.is_chief(strategy):
        examples = _pick_examples(splits["test"], tokenizer, config.attention_examples)
        tokens, ids = tokenizer.tokenize(tf.constant(list(examples.texts), tf.string))
        # A direct call, not `predict`: under MultiWorkerMirroredStrategy `predict`
        # gathers across workers, and only the chief is here.
        out = keras.tree.map_structure(
            np.asarray, explainer(ids, training=False)
        ) if len(examples) else None
        if out is not None:
            args = (tokens.numpy(), out["attention_weights"], examples.labels,
                    out["probabilities"])
            title = f"Word attention, {mc.variant} on {config.dataset} test sentences"
            metrics["attention_html"] = plots.attention_html(
                os.path.join(model_dir, "attention.html"), *args, title=title
            )
            metrics["attention_png"] = plots.attention_png(
                os.path.join(model_dir, "attention.png"), *args, title=title
            )
        if config.export_dir:
            metrics["export"] = sentiment_export.export(tokenizer, explainer, config.export_dir)
        metrics["metric"], metrics["value"] = "test_accuracy", metrics["test_accuracy"]
        metrics["metrics_json"] = common_metrics.write_metrics(model_dir, APP, metrics)
    line = common_metrics.results_line(
        APP, config.dataset, mc.variant, "test_accuracy", metrics["test_accuracy"], seconds
    )
    if "out_of_domain" in metrics:
        line += " " + " ".join(
            f"{k}={v['accuracy']:.4f}" for k, v in metrics["out_of_domain"].items()
        )
    metrics["results_line"] = line
    return metrics


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for (common flags + this app's)."""
    dataset = common_flags.choice(
        common_flags.DATASET, DEFAULT_DATASET, sentiment_data.DATASETS
    )
    variant = common_flags.choice(
        common_flags.VARIANT, "bilstm_attention", sentiment_model.VARIANTS
    )
    defaults = sentiment_model.ModelConfig(variant=variant)
    model = dataclasses.replace(
        defaults,
        max_length=common_flags.positive(_MAX_WORDS, defaults.max_length),
        vocab_size=common_flags.positive(_VOCAB_WORDS, defaults.vocab_size),
    )
    base = TrainConfig()
    return TrainConfig(
        dataset=dataset,
        data_dir=common_flags.DATA_DIR.value,
        archive=_ARCHIVE.value,
        model_dir=common_flags.MODEL_DIR.value,
        export_dir=common_flags.resolve(common_flags.EXPORT_DIR, base.export_dir),
        epochs=common_flags.positive(common_flags.EPOCHS, base.epochs),
        batch_size=common_flags.positive(common_flags.BATCH_SIZE, base.batch_size),
        seed=common_flags.resolve(common_flags.SEED, base.seed),
        strategy=common_flags.STRATEGY.value,
        quick=bool(common_flags.QUICK.value),
        attention_examples=_ATTENTION_EXAMPLES.value,
        model=model,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    metrics = run(config_from_flags())
    print(metrics["results_line"], flush=True)


if __name__ == "__main__":
    app.run(main)
