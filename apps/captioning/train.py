"""Trains a Show, Attend and Tell captioner, scores its captions and attention, and exports it.

Usage:

    # Build the emoji_scenes dataset once (Noto Color Emoji, installed with apt-get
    # when missing and running as root), train, write BLEU-1..4 and attention
    # correctness on the test split (object pairs never seen in training), one
    # attention figure per test image, and a SavedModel under saved_models/captioning/:
    python -m apps.captioning.train

    # A run of seconds, to try the pipeline out:
    python -m apps.captioning.train --quick --export_dir=/tmp/captioning_export

    # Xu et al.'s decoder (attention queried by h_{t-1}, the context fed to the LSTM):
    python -m apps.captioning.train --config=model.attend_from=previous

    # Semantic attention (You et al. 2016): attributes predicted from the image, attended
    # to as input and output attention beside the spatial attention:
    python -m apps.captioning.train --variant=semantic_attention

    # Greedy decoding, another λ for the doubly stochastic regularization:
    python -m apps.captioning.train --config=beam_width=1 --config=model.doubly_stochastic=0.0

    # A keras.applications backbone (random init, or local weights) on larger images:
    python -m apps.captioning.train --config=model.backbone=mobilenet_v2 \\
        --config=model.image_size=128 \\
        --config=model.backbone_weights=/path/to/mobilenet_v2_notop.h5

    # Online machines: COCO captions (Karpathy splits) through tfds.
    python -m apps.captioning.train --dataset=coco_captions --config=model.image_size=224 \\
        --config=model.backbone=resnet50 --config=model.backbone_weights=imagenet \\
        --config=model.max_length=24 --epochs=20

Every field of `TrainConfig` (and of `ModelConfig`, as `model.FIELD`) is set with
`--config=KEY=VALUE`; the common flags (`--dataset`, `--epochs`, ...) set the
fields of the same name (apps/README.md).

Outputs (`--model_dir`, default runs/captioning/): metrics.json (BLEU-1..4,
attention correctness against uniform, sample captions), plots/caption_NN.png
(the image and the attention map of every emitted word), vocabulary.json,
TensorBoard logs; the SavedModel in `--export_dir` (default
saved_models/captioning/<next version>/), whose `serving_default` maps
`image_bytes` to `caption`, `tokens` and `attention_weights` (and, for
`semantic_attention`, `attributes`, `attribute_scores`,
`input_attribute_attention` and `output_attribute_attention`; the attribute
words are written to attributes.json).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Literal

from absl import app, logging

from apps.captioning import builder as builder_lib
from apps.captioning import evaluation, pipeline
from apps.captioning import export as export_lib
from apps.captioning import model as model_lib
from apps.captioning import semantic as semantic_lib
from apps.common import config as common_config
from apps.common import data as common_data
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training

APP = "captioning"


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything one run needs: `main` fills it from the command line, tests build it.

    Attributes (the common flags set the first nine):
        dataset: `emoji_scenes` (built here) or `coco_captions` (tfds, online).
        export_dir: the SavedModel base; None: do not export.
        beam_width: beam width of test captions and of the export (1 = greedy).
        plots: test images drawn with the attention map of every word.
        vocab_size: most words in the vocabulary (PAD, UNK, START, END included).
        scenes: an `EmojiScenesConfig` (or a config name) of `emoji_scenes`.
        font_path: the NotoColorEmoji.ttf to draw emoji_scenes with (default
            `$NOTO_COLOR_EMOJI_FONT`, else the Debian package's).
        eval_limit: test images scored (None: all).
        train_eval_images: training images captioned too, to show the gap.
        verbose: `model.fit`'s verbosity.
        model: the captioner (`--config=model.FIELD=VALUE`).
    """

    dataset: Literal["emoji_scenes", "coco_captions"] = pipeline.EMBEDDED
    export_dir: str | None = "saved_models/captioning"
    epochs: int = 10
    batch_size: int = 64
    beam_width: int = 3
    plots: int = 8
    vocab_size: int = 5000
    scenes: builder_lib.EmojiScenesConfig | str | None = None
    font_path: str | None = None
    eval_limit: int | None = None
    train_eval_images: int = 500
    verbose: int | Literal["auto"] = "auto"
    model: model_lib.ModelConfig = dataclasses.field(default_factory=model_lib.ModelConfig)

    def __post_init__(self):
        super().__post_init__()
        if self.dataset not in pipeline.DATASETS:
            raise ValueError(f"dataset must be one of {pipeline.DATASETS}, got {self.dataset!r}.")
        for name in ("epochs", "batch_size", "beam_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        for name in ("plots", "train_eval_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"eval_limit must be None or >= 1, got {self.eval_limit!r}.")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size must be >= 5 (PAD, UNK, START, END and a word), got "
                             f"{self.vocab_size!r}.")
        if self.verbose not in (0, 1, 2, "auto"):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {self.verbose!r}.")
        if not isinstance(self.model, model_lib.ModelConfig):
            raise ValueError(f"model must be a ModelConfig, got {type(self.model).__name__}.")


def _restore_best():
    """Best validation masked accuracy's weights, kept across a kill (see timed_fit)."""
    return training.ResumableEarlyStopping(
        monitor="val_masked_accuracy", mode="max", patience=10_000, restore_best_weights=True
    )


def run(config: TrainConfig) -> common_metrics.RunResult:
    """Trains, evaluates, plots and exports; metrics.json is written on the chief."""
    wall_start = time.perf_counter()
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    kwargs = {"font_path": config.font_path} if config.dataset == pipeline.EMBEDDED else {}
    start = time.perf_counter()
    splits = pipeline.load_splits(config.dataset, data_dir, config=config.scenes,
                                  builder_kwargs=kwargs)
    data_seconds = time.perf_counter() - start
    train_split, val_split, test_split = splits.train, splits.validation, splits.test
    sizes = dict(splits.sizes)
    epochs = config.epochs
    eval_limit = config.eval_limit
    train_eval = config.train_eval_images
    if config.quick:
        train_split, val_split = train_split.take(256), val_split.take(64)
        sizes = {"train": min(256, sizes["train"]), "validation": min(64, sizes["validation"]),
                 "test": min(64, sizes["test"])}
        epochs, eval_limit, train_eval = 1, 64, 32
    logging.info("Split sizes: %s", sizes)

    mc = config.model
    texts = pipeline.caption_texts(train_split)
    tokenizer = pipeline.make_tokenizer(texts, config.vocab_size, mc.max_length)
    mc = dataclasses.replace(mc, vocab_size=tokenizer.vocabulary_size)
    tokenizer.save(os.path.join(model_dir, "vocabulary.json"))
    attributes, attribute_ids = attribute_vocabulary(mc, texts, tokenizer, model_dir)
    cache = config.dataset == pipeline.EMBEDDED  # a few kB per scene; COCO would not fit
    train_ds = pipeline.make_dataset(train_split, tokenizer, mc.image_size, config.batch_size,
                                     training=True, seed=config.seed, cache=cache,
                                     attribute_ids=attribute_ids)
    val_ds = pipeline.make_dataset(val_split, tokenizer, mc.image_size, config.batch_size,
                                   cache=cache, attribute_ids=attribute_ids)

    steps = max(1, epochs * math.ceil(sizes["train"] / config.batch_size))
    with strategy.scope():
        model = model_lib.build_model(mc, tokenizer.start_id, tokenizer.end_id,
                                      attribute_ids=attribute_ids)
        model_lib.compile_model(model, mc, decay_steps=steps, jit_compile=False)
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        model, train_ds, val_ds, epochs=epochs, model_dir=model_dir,
        extra_callbacks=[_restore_best()], verbose=config.verbose,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    train_cpu_seconds = time.process_time() - cpu_start
    model.save_weights(os.path.join(model_dir, "captioner.weights.h5"))

    keep = config.plots
    # Captions come from the graph that is exported (beam search, detokenizing).
    module = export_lib.CaptionerModule(model, tokenizer, beam_width=config.beam_width)
    test = evaluation.caption_split(module.caption_images, test_split, mc.image_size,
                                    config.batch_size, eval_limit, keep=keep)
    test_scores = evaluation.score(test, attribute_words=attributes)
    metrics = {
        "config": dataclasses.asdict(mc),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "beam_width": config.beam_width,
        "seed": config.seed,
        "quick": config.quick,
        "params": int(model.count_params()),
        "grid": list(model.grid_shape),
        "data_seconds": data_seconds,
        "train_cpu_seconds": train_cpu_seconds,  # all threads: a busy machine inflates wall time
        "split_sizes": sizes,
        "dataset_metadata": {k: v for k, v in splits.metadata.items()
                             if k in ("font_sha256", "font_package", "font_package_version",
                                      "pairs_per_split")},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "test": test_scores,
        "test_caption_ms_per_image": 1000 * test["seconds"] / max(1, len(test["hypotheses"])),
        "train_subset": evaluation.evaluate(module.caption_images, train_split, mc.image_size,
                                            config.batch_size, train_eval,
                                            attribute_words=attributes),
        "attributes": attributes,
        "samples": [
            {"caption": h, "references": r}
            for h, r in zip(test["hypotheses"][:12], test["references"][:12], strict=False)
        ],
    }
    result = common_metrics.RunResult(
        app=APP, dataset=config.dataset, variant=f"{mc.backbone}+lstm_{mc.variant}",
        metric="bleu4", value=test_scores["bleu4"], train_seconds=seconds, metrics=metrics,
    )
    if common_strategy.is_chief(strategy):
        metrics["plots"] = evaluation.plot_captions(
            test["images"], test["words"][:keep], test["maps"][:keep],
            os.path.join(model_dir, "plots"), references=test["references"][:keep],
        )
        if config.export_dir:
            result.export_path = export_lib.save(module, config.export_dir)
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        metrics["cpu_seconds"] = time.process_time()
        result.write(model_dir)
    return result


def attribute_vocabulary(mc: model_lib.ModelConfig, texts, tokenizer, model_dir: str):
    """`(attribute words, their token ids)` for `semantic_attention` (written to
    attributes.json), else `(None, None)`."""
    if mc.variant != "semantic_attention":
        return None, None
    words, ids = semantic_lib.attribute_ids(semantic_lib.attribute_words(texts), tokenizer)
    if len(ids) < mc.attribute_top_k:
        raise ValueError(f"The training captions give {len(ids)} attribute words ({words}); "
                         f"model.attribute_top_k={mc.attribute_top_k} needs at least that many.")
    logging.info("%d attributes: %s", len(words), " ".join(words))
    with open(os.path.join(model_dir, "attributes.json"), "w", encoding="utf-8") as f:
        json.dump({"attributes": words, "token_ids": ids}, f, ensure_ascii=False)
    return words, ids


def results_line(result: common_metrics.RunResult) -> str:
    """`result.line` with BLEU-1 and the attention correctness of the test split."""
    test = result.metrics["test"]
    correctness = test["attention_correctness"]
    line = (
        f"{result.line} bleu1={test['bleu1']:.4f}"
        f" attention_in_box={correctness['attention_in_box']:.3f}"
        f" uniform={correctness['uniform_in_box']:.3f} ratio={correctness['ratio']:.2f}"
    )
    if "attribute_attention" in test:
        nouns = test["attribute_attention"]["output_nouns"]
        line += (f" attribute_recall={test['attribute_recall']:.3f}"
                 f" noun_attribute_mass={nouns['mean_mass']:.3f}"
                 f" noun_steps_at_least_half={nouns['share_at_least_half']:.3f}")
    return line


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for (common flags, then `--config=`)."""
    return common_config.from_flags(TrainConfig)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(results_line(run(config_from_flags())), flush=True)


if __name__ == "__main__":
    app.run(main)
