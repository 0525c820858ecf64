"""Train, evaluate, plot and export an attention image classifier.

Usage:
    # Default: the ResNet with a non-local block on the embedded cluttered digits;
    # writes runs/image_classification/nonlocal/{metrics.json,analysis.keras,plots/*.png}
    # and exports saved_models/image_classification/<version>/.
    python -m apps.image_classification.train

    # Another variant: plain, se, cbam, nonlocal, residual_attention, vit.
    python -m apps.image_classification.train --variant=vit --epochs=12

    # Seconds-long smoke run of the whole pipeline.
    python -m apps.image_classification.train --quick --export_dir=/tmp/ic_export

    # The public dataset (needs network access the first time).
    python -m apps.image_classification.train --dataset=cifar10 --epochs=30

    # Query the export with plain TensorFlow:
    #   m = tf.saved_model.load("saved_models/image_classification/1")
    #   m.signatures["serving_default"](image_bytes=tf.constant([open("7.png", "rb").read()]))

The attention variants are compared at equal budget by
`benchmarks/image_classification_ablation.py`. The default, `nonlocal`, was
picked from that ablation: its accuracy is within one standard error of the
most accurate variant (`residual_attention`, at twice the FLOPs), and its map
is the one that finds the digit (about 10x the uniform share inside the box;
CBAM's and the residual module's gates stay near uniform).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from absl import app, flags, logging

from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training as common_training
from apps.common.flops import count_flops
from apps.image_classification import data as data_lib
from apps.image_classification import evaluation
from apps.image_classification import export as export_lib
from apps.image_classification import model as model_lib

APP = "image_classification"
DEFAULT_EPOCHS = 8

_LEARNING_RATE = flags.DEFINE_float(
    "classification_learning_rate", 3e-3, "Peak learning rate (AdamW, cosine decay)."
)
_PLOTS = flags.DEFINE_integer(
    "classification_plots", 8, "Test images drawn with their attention map (PNG)."
)
_EXPORT = flags.DEFINE_bool("classification_export", True, "Export a SavedModel at the end.")
_TRAIN_CANVASES = flags.DEFINE_integer(
    "train_canvases", None,
    "Canvases drawn per training digit of cluttered_digits (default 4; another value builds "
    "another dataset config).",
)
_CANVAS_SIZE = flags.DEFINE_integer(
    "canvas_size", None,
    "Side of the cluttered_digits canvas in pixels (default 60; e.g. 100 for Mnih et al.'s "
    "larger setting). Another value builds another dataset config.",
)
_MIN_CLUTTER = flags.DEFINE_integer(
    "min_clutter", None, "Fewest clutter fragments per canvas (default 4; another config)."
)
_MAX_CLUTTER = flags.DEFINE_integer(
    "max_clutter", None, "Most clutter fragments per canvas (default 8; another config)."
)


@dataclasses.dataclass
class TrainConfig:
    """Everything a run needs (the flags map onto it; tests build it directly)."""

    variant: str = model_lib.DEFAULT_VARIANT
    dataset: str = data_lib.EMBEDDED
    data_dir: str | None = None
    model_dir: str | None = None
    export_dir: str | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 64
    seed: int = 42
    strategy: str = "default"
    quick: bool = False
    learning_rate: float = 3e-3
    plots: int = 8
    export: bool = True
    data_config: object = None  # A ClutteredDigitsConfig (or name) for the embedded dataset.
    builder_kwargs: dict | None = None
    model_overrides: dict = dataclasses.field(default_factory=dict)
    verbose: str | int = "auto"
    jit_compile: bool | str = "auto"  # XLA for the train step (False: faster to start).
    run_eagerly: bool = False  # No tf.function at all (tiny test runs start at once).


def run(config: TrainConfig) -> dict:
    """Trains, evaluates (accuracy, localization), plots and exports; returns the metrics."""
    if config.variant not in model_lib.VARIANTS:
        raise ValueError(f"variant must be one of {model_lib.VARIANTS}, got {config.variant!r}.")
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    common_training.set_seed(config.seed)
    model_dir = common_training.run_dir(
        config.model_dir or os.path.join("runs", APP, config.variant), APP
    )
    bundle = data_lib.load(
        config.dataset, config.data_dir, config.batch_size, config.seed, config.quick,
        config=config.data_config, builder_kwargs=config.builder_kwargs,
    )
    epochs = 1 if config.quick else config.epochs
    steps = epochs * -(-bundle.train_examples // config.batch_size)
    overrides = dict(config.model_overrides)
    overrides.setdefault("patch_size", model_lib.default_patch_size(*bundle.image_shape[:2]))
    with strategy.scope():
        classifier = model_lib.build(
            model_lib.ModelConfig(
                variant=config.variant, input_shape=bundle.image_shape,
                num_classes=len(bundle.class_names), **overrides,
            )
        )
        model_lib.compile_model(classifier.model, config.learning_rate, steps,
                                jit_compile=config.jit_compile)
        classifier.model.run_eagerly = classifier.analysis.run_eagerly = config.run_eagerly
    logging.info("%s: %d parameters", classifier.model.name, classifier.model.count_params())
    history, seconds = common_training.timed_fit(
        classifier.model, bundle.train, bundle.validation, epochs=epochs, model_dir=model_dir,
        verbose=config.verbose,
    )
    chief = common_strategy.is_chief(strategy)
    validation = evaluation.evaluate(classifier.analysis, classifier.primary_map,
                                     bundle.validation, bundle.class_names)
    test = evaluation.evaluate(
        classifier.analysis,
        classifier.primary_map,
        bundle.test_boxes if bundle.test_boxes is not None else bundle.test,
        bundle.class_names,
        plot_dir=os.path.join(model_dir, "plots") if chief and config.plots else None,
        plots=config.plots,
        title=config.variant,
    )
    sample = np.concatenate([images.numpy() for images, _ in bundle.test.take(2)])
    timing = evaluation.inference_ms(classifier.model, sample, batch_size=len(sample))
    metrics = {
        "dataset": config.dataset,
        "variant": config.variant,
        "epochs": epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "train_examples": bundle.train_examples,
        "train_seconds": seconds,
        "parameters": int(classifier.model.count_params()),
        "flops_per_image": count_flops(classifier.model, bundle.image_shape)["flops"],
        **timing,
        "validation_accuracy": validation["accuracy"],
        "test": test,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "model_config": dataclasses.asdict(classifier.config),
    }
    if config.export and chief:
        base = config.export_dir or os.path.join("saved_models", APP)
        metrics["export"] = export_lib.export(
            classifier.explainer, bundle.class_names, bundle.image_shape, base,
            invert_light_background=config.dataset == data_lib.EMBEDDED,
        )
    if chief:
        classifier.analysis.save(os.path.join(model_dir, "analysis.keras"))
        metrics["metric"], metrics["value"] = "test_accuracy", metrics["test"]["accuracy"]
        metrics["metrics_path"] = common_metrics.write_metrics(model_dir, APP, metrics)
    return metrics


def main(argv):
    del argv
    variant = common_flags.choice(common_flags.VARIANT, model_lib.DEFAULT_VARIANT,
                                  model_lib.VARIANTS)
    try:
        data_config = data_lib.config_with(
            train_canvases=_TRAIN_CANVASES.value, canvas_size=_CANVAS_SIZE.value,
            min_clutter=_MIN_CLUTTER.value, max_clutter=_MAX_CLUTTER.value,
        )
    except ValueError as e:
        raise flags.ValidationError(
            f"--train_canvases/--canvas_size/--min_clutter/--max_clutter: {e}"
        ) from e
    config = TrainConfig(
        variant=variant,
        dataset=common_flags.resolve(common_flags.DATASET, data_lib.EMBEDDED),
        data_dir=common_flags.DATA_DIR.value,
        model_dir=common_flags.MODEL_DIR.value,
        export_dir=common_flags.EXPORT_DIR.value,
        epochs=common_flags.positive(common_flags.EPOCHS, DEFAULT_EPOCHS),
        batch_size=common_flags.positive(common_flags.BATCH_SIZE, 64),
        seed=common_flags.SEED.value,
        strategy=common_flags.STRATEGY.value,
        quick=common_flags.QUICK.value,
        learning_rate=_LEARNING_RATE.value,
        plots=_PLOTS.value,
        export=_EXPORT.value,
        data_config=data_config,
    )
    metrics = run(config)
    test = metrics["test"]
    summary = {k: v for k, v in test.items() if k != "plots"}
    logging.info("Test metrics: %s", json.dumps(summary))
    if "localization_ratio" in test:
        print(f"Attention inside the digit's box: {test['attention_in_box']:.1%} "
              f"(uniform: {test['uniform_in_box']:.1%}, {test['localization_ratio']:.2f}x)")
    if "export" in metrics:
        print(f"Exported SavedModel: {metrics['export']}")
    print(common_metrics.results_line(APP, config.dataset, variant, "test_accuracy",
                                      test["accuracy"], metrics["train_seconds"]))


if __name__ == "__main__":
    app.run(main)
