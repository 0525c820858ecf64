"""Trains a Show, Attend and Tell captioner, scores its captions and attention, and exports it.

Usage:

    # Build the emoji_scenes dataset once (Noto Color Emoji, installed with apt-get
    # when missing and running as root), train, write BLEU-1..4 and attention
    # correctness on the test split (object pairs never seen in training), one
    # attention figure per test image, and a SavedModel under saved_models/captioning/:
    python -m apps.captioning.train

    # A run of seconds, to try the pipeline out:
    python -m apps.captioning.train --quick --export_dir=/tmp/captioning_export

    # Greedy decoding, another λ for the doubly stochastic regularization:
    python -m apps.captioning.train --caption_beam_width=1 --caption_lambda=0.0

    # A keras.applications backbone (random init, or local weights) on larger images:
    python -m apps.captioning.train --caption_backbone=mobilenet_v2 --caption_image_size=128 \\
        --caption_backbone_weights=/path/to/mobilenet_v2_notop.h5

    # Online machines: COCO captions (Karpathy splits) through tfds.
    python -m apps.captioning.train --dataset=coco_captions --caption_image_size=224 \\
        --caption_backbone=resnet50 --caption_backbone_weights=imagenet \\
        --caption_max_length=24 --epochs=20

Outputs (`--model_dir`, default runs/captioning/): metrics.json (BLEU-1..4,
attention correctness against uniform, sample captions), plots/caption_NN.png
(the image and the attention map of every emitted word), vocabulary.json,
TensorBoard logs; the SavedModel in `--export_dir` (default
saved_models/captioning/<next version>/), whose `serving_default` maps
`image_bytes` to `caption`, `tokens` and `attention_weights`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from apps.captioning import data as data_lib
from apps.captioning import evaluation
from apps.captioning import export as export_lib
from apps.captioning import model as model_lib
from apps.common import data as common_data
from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training

APP = "captioning"

_BEAM_WIDTH = flags.DEFINE_integer(
    "caption_beam_width", None, "Beam width for test captions and the export (default 3; "
    "1 = greedy).")
_BACKBONE = flags.DEFINE_enum(
    "caption_backbone", None, sorted(model_lib.BACKBONES),
    "Image encoder: small_cnn (from scratch, default) or a keras.applications backbone.")
_BACKBONE_WEIGHTS = flags.DEFINE_string(
    "caption_backbone_weights", None,
    "Weights of an applications backbone: a local file, or 'imagenet' (needs the network); "
    "default random initialisation.")
_IMAGE_SIZE = flags.DEFINE_integer("caption_image_size", None,
                                   "Side of the square model input (default 96).")
_MAX_LENGTH = flags.DEFINE_integer(
    "caption_max_length", None, "Caption tokens with START and END (default 16).")
_LAMBDA = flags.DEFINE_float(
    "caption_lambda", None, "λ of the doubly stochastic attention regularization (default 0.01).")
_LEARNING_RATE = flags.DEFINE_float("caption_learning_rate", None,
                                    "Adam's initial learning rate (cosine decay; default 2e-3).")
_ATTEND_FROM = flags.DEFINE_enum(
    "attend_from", None, list(model_lib.ATTEND_FROM),
    "Attention query: previous (h_{t-1}, Xu et al. 2015) or current (h_t, Lu et al. 2017).")
_PLOTS = flags.DEFINE_integer("caption_plots", 8, "Test images drawn with per-word attention.")
_FONT = flags.DEFINE_string(
    "emoji_font", None, f"NotoColorEmoji.ttf to draw emoji_scenes with (also ${data_lib.FONT_ENV}; "
    f"default the Debian package {data_lib.FONT_PACKAGE}).")


@dataclasses.dataclass
class TrainConfig:
    """Everything one run needs; `main` fills it from flags, tests build it directly."""

    dataset: str = data_lib.EMBEDDED
    data_dir: str | None = None
    model_dir: str | None = None
    export_dir: str | None = "saved_models/captioning"  # None: do not export
    epochs: int = 10
    batch_size: int = 64
    seed: int = 42
    strategy: str = "default"
    quick: bool = False
    beam_width: int = 3
    plots: int = 8
    vocab_size: int = 5000
    scenes: object = None  # An EmojiScenesConfig (or name) for the embedded dataset.
    font_path: str | None = None
    eval_limit: int | None = None  # Test images scored (None: all).
    train_eval_images: int = 500  # Training images captioned too, to show the gap.
    verbose: str | int = "auto"
    model: model_lib.ModelConfig = dataclasses.field(default_factory=model_lib.ModelConfig)


def _restore_best():
    """Best validation masked accuracy's weights, kept across a kill (see timed_fit)."""
    return training.ResumableEarlyStopping(
        monitor="val_masked_accuracy", mode="max", patience=10_000, restore_best_weights=True
    )


def caption_split(caption, ds, image_size, batch_size, limit=None, keep=0):
    """Captions every image of `ds` with `caption` (the export's `caption_images`: images ->
    {caption, tokens, attention_weights}); returns what scoring and plotting need."""
    out = {"hypotheses": [], "references": [], "words": [], "maps": [], "boxes": [],
           "names": [], "images": []}
    seconds = 0.0
    for images, references, boxes, names in data_lib.evaluation_batches(
        ds, image_size, batch_size, limit
    ):
        start = time.perf_counter()
        result = caption(tf.constant(images))
        seconds += time.perf_counter() - start
        tokens = result["tokens"].numpy()
        text = result["caption"].numpy()
        maps = result["attention_weights"].numpy()
        for i in range(len(images)):
            words = evaluation.caption_words(tokens[i])
            out["hypotheses"].append(text[i].decode("utf-8"))
            out["references"].append(references[i])
            out["words"].append(words)
            out["maps"].append(maps[i, : len(words)])
            out["boxes"].append(boxes[i])
            out["names"].append(names[i])
            if len(out["images"]) < keep:
                out["images"].append(images[i])
    out["seconds"] = seconds
    return out


def score(captioned) -> dict:
    metrics = evaluation.bleu(captioned["hypotheses"], captioned["references"])
    metrics["exact_match"] = float(np.mean(
        [h in refs for h, refs in zip(captioned["hypotheses"], captioned["references"],
                                      strict=True)]
    )) if captioned["hypotheses"] else float("nan")
    metrics["attention_correctness"] = evaluation.attention_correctness(
        captioned["words"], captioned["maps"], captioned["boxes"], captioned["names"]
    )
    metrics["images"] = len(captioned["hypotheses"])
    return metrics


def run(config: TrainConfig) -> dict:
    """Trains, evaluates, plots and exports; returns the metrics dict (also written as JSON)."""
    wall_start = time.perf_counter()
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    kwargs = {"font_path": config.font_path} if config.dataset == data_lib.EMBEDDED else {}
    start = time.perf_counter()
    splits = data_lib.load_splits(config.dataset, data_dir, config=config.scenes,
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
    tokenizer = data_lib.make_tokenizer(data_lib.caption_texts(train_split), config.vocab_size,
                                        mc.max_length)
    mc = dataclasses.replace(mc, vocab_size=tokenizer.vocabulary_size)
    tokenizer.save(os.path.join(model_dir, "vocabulary.json"))
    cache = config.dataset == data_lib.EMBEDDED  # a few kB per scene; COCO would not fit
    train_ds = data_lib.training_pipeline(train_split, tokenizer, mc.image_size,
                                          config.batch_size, shuffle=True, seed=config.seed,
                                          cache=cache)
    val_ds = data_lib.training_pipeline(val_split, tokenizer, mc.image_size, config.batch_size,
                                        cache=cache)

    steps = max(1, epochs * math.ceil(sizes["train"] / config.batch_size))
    with strategy.scope():
        model = model_lib.build_model(mc, tokenizer.start_id, tokenizer.end_id)
        schedule = keras.optimizers.schedules.CosineDecay(mc.learning_rate, steps, alpha=0.02)
        model_lib.compile_model(model, schedule, jit_compile=False)
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
    test = caption_split(module.caption_images, test_split, mc.image_size, config.batch_size,
                         eval_limit, keep=keep)
    seen = caption_split(module.caption_images, train_split, mc.image_size, config.batch_size,
                         train_eval)
    test_scores = score(test)
    correctness = test_scores["attention_correctness"]
    metrics = {
        "dataset": config.dataset,
        "variant": f"{mc.backbone}+lstm_soft_attention",
        "metric": "bleu4",
        "value": test_scores["bleu4"],
        "config": dataclasses.asdict(mc),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "beam_width": config.beam_width,
        "seed": config.seed,
        "quick": config.quick,
        "params": int(model.count_params()),
        "grid": list(model.grid_shape),
        "data_seconds": data_seconds,
        "train_seconds": seconds,
        "train_cpu_seconds": train_cpu_seconds,  # all threads: a busy machine inflates wall time
        "split_sizes": sizes,
        "dataset_metadata": {k: v for k, v in splits.metadata.items()
                             if k in ("font_sha256", "font_package", "font_package_version",
                                      "pairs_per_split")},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "test": test_scores,
        "test_caption_ms_per_image": 1000 * test["seconds"] / max(1, len(test["hypotheses"])),
        "train_subset": score(seen),
        "samples": [
            {"caption": h, "references": r}
            for h, r in zip(test["hypotheses"][:12], test["references"][:12], strict=False)
        ],
    }
    if common_strategy.is_chief(strategy):
        metrics["plots"] = evaluation.plot_captions(
            test["images"], test["words"][:keep], test["maps"][:keep],
            os.path.join(model_dir, "plots"), references=test["references"][:keep],
        )
        if config.export_dir:
            metrics["export_path"] = export_lib.save(module, config.export_dir)
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        metrics["cpu_seconds"] = time.process_time()
        metrics["metrics_json"] = common_metrics.write_metrics(model_dir, APP, metrics)
    line = common_metrics.results_line(
        APP, config.dataset, metrics["variant"], "test_bleu4", test_scores["bleu4"], seconds
    )
    line += (
        f" bleu1={test_scores['bleu1']:.4f} attention_in_box={correctness['attention_in_box']:.3f}"
        f" uniform={correctness['uniform_in_box']:.3f} ratio={correctness['ratio']:.2f}"
    )
    metrics["results_line"] = line
    return metrics


def config_from_flags() -> TrainConfig:
    """The `TrainConfig` the command line asks for (common flags + this app's)."""
    dataset = common_flags.choice(common_flags.DATASET, data_lib.EMBEDDED, data_lib.DATASETS)
    base = TrainConfig()
    defaults = model_lib.ModelConfig()
    model = dataclasses.replace(
        defaults,
        backbone=common_flags.resolve(_BACKBONE, defaults.backbone),
        backbone_weights=common_flags.resolve(_BACKBONE_WEIGHTS, defaults.backbone_weights),
        image_size=common_flags.positive(_IMAGE_SIZE, defaults.image_size),
        max_length=common_flags.positive(_MAX_LENGTH, defaults.max_length),
        doubly_stochastic=common_flags.resolve(_LAMBDA, defaults.doubly_stochastic),
        learning_rate=common_flags.resolve(_LEARNING_RATE, defaults.learning_rate),
        attend_from=common_flags.resolve(_ATTEND_FROM, defaults.attend_from),
    )
    return TrainConfig(
        dataset=dataset,
        data_dir=common_flags.DATA_DIR.value,
        model_dir=common_flags.MODEL_DIR.value,
        export_dir=common_flags.resolve(common_flags.EXPORT_DIR, base.export_dir),
        epochs=common_flags.positive(common_flags.EPOCHS, base.epochs),
        batch_size=common_flags.positive(common_flags.BATCH_SIZE, base.batch_size),
        seed=common_flags.resolve(common_flags.SEED, base.seed),
        strategy=common_flags.STRATEGY.value,
        quick=bool(common_flags.QUICK.value),
        beam_width=common_flags.positive(_BEAM_WIDTH, base.beam_width),
        plots=_PLOTS.value,
        font_path=_FONT.value,
        model=model,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    metrics = run(config_from_flags())
    print(metrics["results_line"], flush=True)


if __name__ == "__main__":
    app.run(main)
