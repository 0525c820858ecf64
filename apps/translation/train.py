"""Trains an English -> French translator with attention, evaluates, draws alignments, exports.

Usage:

    # English -> French on Debian's gettext catalogues (fetched once with
    # apt-get download), RNNsearch (Bahdanau attention): train, translate the
    # test split with beam search, sacreBLEU BLEU/chrF overall and by source
    # length, alignment heatmaps, SavedModel under saved_models/translation/:
    python -m apps.translation.train

    # The other variants, the same budget:
    python -m apps.translation.train --variant=seq2seq        # no attention (baseline)
    python -m apps.translation.train --variant=luong --score=dot
    python -m apps.translation.train --variant=luong_local --local_window=4
    python -m apps.translation.train --variant=transformer

    # Other languages of the same corpus, or your own tab-separated pairs:
    python -m apps.translation.train --dataset=gettext_translations/de
    python -m apps.translation.train --train_tsv=pairs.tsv

    # A run of seconds, to try the pipeline out:
    python -m apps.translation.train --quick

    # Online machines: public datasets through tfds.
    python -m apps.translation.train --dataset=ted_hrlr_translate/pt_to_en --max_train_pairs=50000

Outputs (`--model_dir`, default runs/translation/): metrics.json (BLEU, chrF,
BLEU by source-length third, training time), translations.tsv (test sources,
references, outputs), alignment_*.png heatmaps, bleu_by_length.png,
source/target vocabularies, TensorBoard logs; the SavedModel in `--export_dir`
(default saved_models/translation/<next version>/), whose `serving_default`
maps `text` to `translation`, `attention_weights`, `source_tokens` and
`target_tokens`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
from absl import app, flags, logging

from apps.common import data as common_data
from apps.common import flags as common_flags
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training
from apps.translation import data as translation_data
from apps.translation import evaluation
from apps.translation import export as translation_export
from apps.translation import model as translation_model

APP = "translation"
DEFAULT_DATASET = "gettext_translations/fr"

_TRAIN_TSV = flags.DEFINE_string(
    "train_tsv", None, "Your own `source<TAB>target` pairs (UTF-8), split 80/10/10 by a hash "
    "of the source; replaces --dataset.")
_SCORE = flags.DEFINE_enum("score", None, list(translation_model.SCORES),
                           "Luong score for --variant=luong/luong_local (default general).")
_LOCAL_WINDOW = flags.DEFINE_integer("local_window", None,
                                     "Half-width D of the local-p window (default 4).")
_INPUT_FEEDING = flags.DEFINE_bool(
    "input_feeding", None, "Feed the previous attentional vector to the decoder GRU "
    "(default: on for luong/luong_local, off for bahdanau/seq2seq).")
_LABEL_SMOOTHING = flags.DEFINE_float("label_smoothing", None,
                                      "Label smoothing of the loss (default 0.1).")
_BEAM_WIDTH = flags.DEFINE_integer("beam_width", None,
                                   "Beam width of the evaluation and export (1 = greedy; "
                                   "default 4).")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", None,
                                     "Length penalty alpha (Wu et al. 2016; default 0.6).")
_UNITS = flags.DEFINE_integer("translation_units", None,
                              "GRU / Transformer width (default 256).")
_LEARNING_RATE = flags.DEFINE_float("translation_learning_rate", None,
                                    "Adam learning rate (default 2e-3; 1e-3 transformer).")
_UNK_REPLACE = flags.DEFINE_bool(
    "unk_replace", True, "Replace each [UNK] the model emits by the source word it attended to "
    "most (in the exported model and the evaluation).")
_MAX_TRAIN_PAIRS = flags.DEFINE_integer("max_train_pairs", None,
                                        "Use at most this many training pairs.")


@dataclasses.dataclass
class TrainConfig:
    """Everything one run needs; `main` fills it from flags, tests build it directly."""

    dataset: str = DEFAULT_DATASET
    train_tsv: str | None = None
    data_dir: str | None = None
    model_dir: str | None = None
    export_dir: str | None = "saved_models/translation"  # None: do not export
    variant: str = "bahdanau"
    epochs: int = 8
    batch_size: int = 64
    seed: int = 42
    strategy: str = "default"
    learning_rate: float | None = None
    label_smoothing: float = 0.1
    source_vocab: int = 8000
    target_vocab: int = 8000
    min_count: int = 2
    max_source_tokens: int = 32
    max_target_tokens: int = 32
    units: int = 256
    embedding_dim: int = 128
    attention_units: int = 128
    score: str = "general"
    window: int = 4
    input_feeding: bool | None = None
    dropout: float = 0.2
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512
    beam_width: int = 4
    length_penalty: float = 0.6
    unk_replace: bool = True
    max_train_pairs: int | None = None
    max_test_pairs: int | None = None
    heatmaps: int = 4
    quick: bool = False
    verbose: str | int = "auto"

    def model_config(self, source_vocab_size, target_vocab_size):
        return translation_model.ModelConfig(
            variant=self.variant, source_vocab_size=source_vocab_size,
            target_vocab_size=target_vocab_size, embedding_dim=self.embedding_dim,
            units=self.units, attention_units=self.attention_units, score=self.score,
            window=self.window, input_feeding=self.input_feeding, dropout=self.dropout,
            num_layers=self.num_layers, num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim, max_target_length=self.max_target_tokens,
        )


def quick_config(config: TrainConfig) -> TrainConfig:
    """Seconds instead of minutes: a slice of the data, a small model, one epoch."""
    return dataclasses.replace(
        config, epochs=1, max_train_pairs=512, max_test_pairs=64, units=64, embedding_dim=32,
        attention_units=32, intermediate_dim=128, num_layers=1, source_vocab=2000,
        target_vocab=2000, min_count=1, beam_width=min(config.beam_width, 2), heatmaps=2,
    )


def run(config: TrainConfig) -> dict:
    """Trains, evaluates, plots and exports; returns the metrics (also in metrics.json)."""
    if config.quick:
        config = quick_config(config)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    dataset = "train_tsv:" + config.train_tsv if config.train_tsv else config.dataset
    splits, source_language, target_language = translation_data.load_splits(
        config.dataset, data_dir, config.train_tsv, limit=config.max_train_pairs
    )
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    if config.max_train_pairs:
        train = train.head(config.max_train_pairs)
    if config.max_test_pairs:
        validation = validation.head(config.max_test_pairs)
        test = test.head(config.max_test_pairs)
    logging.info("%s: %d train, %d validation, %d test pairs (%s -> %s)", dataset, len(train),
                 len(validation), len(test), source_language, target_language)

    source_tokenizer, target_tokenizer = translation_data.make_tokenizers(
        train, config.source_vocab, config.target_vocab, config.max_source_tokens,
        config.max_target_tokens, min_count=config.min_count,
    )
    source_tokenizer.save(os.path.join(model_dir, "source_vocabulary.json"))
    target_tokenizer.save(os.path.join(model_dir, "target_vocabulary.json"))
    train_ds = translation_data.make_dataset(train, source_tokenizer, target_tokenizer,
                                             config.batch_size, shuffle=True, seed=config.seed,
                                             bucket=True)
    val_ds = translation_data.make_dataset(validation, source_tokenizer, target_tokenizer,
                                           config.batch_size) if len(validation) else None

    model_config = config.model_config(source_tokenizer.vocabulary_size,
                                       target_tokenizer.vocabulary_size)
    peak = config.learning_rate or (1e-3 if config.variant == "transformer" else 2e-3)
    # Linear warm-up, then cosine decay to 10% over the run (the budget is fixed in epochs).
    total_steps = max(1, config.epochs * math.ceil(len(train) / config.batch_size))
    warmup = min(200, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else peak, decay_steps=max(1, total_steps - warmup), alpha=0.1,
        warmup_target=peak if warmup else None, warmup_steps=warmup,
    )
    with strategy.scope():
        model = translation_model.build_model(model_config)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
            loss=translation_model.masked_loss(config.label_smoothing),
            metrics=[translation_model.masked_accuracy],
        )
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        model, train_ds, val_ds, epochs=config.epochs, model_dir=model_dir,
        verbose=config.verbose,
    )
    cpu_seconds = time.process_time() - cpu_start

    module = translation_export.TranslationModule(
        model, source_tokenizer, target_tokenizer, beam_width=config.beam_width,
        length_penalty=config.length_penalty, max_output_length=config.max_target_tokens,
        unk_replace=config.unk_replace,
    )
    result = evaluation.translate_all(module, test.sources)
    hypotheses = result["translation"]
    scores = evaluation.corpus_scores(hypotheses, test.targets)
    raw_scores = evaluation.corpus_scores(result["raw_translation"], test.targets)
    by_length = evaluation.bleu_by_length(test.sources, hypotheses, test.targets)
    by_bins = evaluation.bleu_by_length_bins(test.sources, hypotheses, test.targets)
    with open(os.path.join(model_dir, "translations.tsv"), "w", encoding="utf-8") as f:
        f.write("source\treference\ttranslation\tmodel_output\n")
        for row in zip(test.sources, test.targets, hypotheses, result["raw_translation"],
                       strict=True):
            f.write("\t".join(row) + "\n")
    plots = []
    if common_strategy.is_chief(strategy):
        if config.variant != "seq2seq":  # The baseline has no attention to draw.
            plots = evaluation.heatmaps(result, test.sources, model_dir, config.heatmaps)
        plots.append(evaluation.plot_bleu_by_length(
            {config.variant: by_length}, os.path.join(model_dir, "bleu_by_length.png"),
            title=f"{dataset}: BLEU by source length ({config.variant})",
            bins_by_variant={config.variant: by_bins},
        ))

    export_path = None
    if config.export_dir and common_strategy.is_chief(strategy):
        export_path = translation_export.export(module, config.export_dir)

    metrics = {
        "dataset": dataset,
        "variant": config.variant,
        "metric": "bleu",
        "value": scores["bleu"],
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "bleu_without_unk_replace": raw_scores["bleu"],
        "chrf_without_unk_replace": raw_scores["chrf"],
        "bleu_by_length": by_length,
        "bleu_by_length_bins": by_bins,
        "signatures": {k: v for k, v in scores.items() if k.endswith("signature")},
        "pairs": {"train": len(train), "validation": len(validation), "test": len(test)},
        "languages": [source_language, target_language],
        "vocabulary": {"source": source_tokenizer.vocabulary_size,
                       "target": target_tokenizer.vocabulary_size},
        "epochs": config.epochs,
        "final_loss": float(history.history["loss"][-1]),
        "parameters": int(model.count_params()),
        "decoding": {"beam_width": config.beam_width, "length_penalty": config.length_penalty,
                     "unk_replace": config.unk_replace},
        "config": dataclasses.asdict(config),
        "plots": plots,
        "export": export_path,
    }
    if "val_loss" in history.history:
        metrics["final_val_loss"] = float(history.history["val_loss"][-1])
    common_metrics.write_metrics(model_dir, APP, metrics)
    print(common_metrics.results_line(APP, dataset, config.variant, "bleu", scores["bleu"],
                                      seconds), flush=True)
    print(f"[{APP}] chrF={scores['chrf']:.2f} BLEU without [UNK] replacement="
          f"{raw_scores['bleu']:.2f} BLEU by length third: "
          + ", ".join(f"{k}={v['bleu']:.2f}" for k, v in by_length.items()), flush=True)
    return metrics


def config_from_flags() -> TrainConfig:
    f = common_flags
    defaults = TrainConfig()
    variant = f.choice(f.VARIANT, defaults.variant, translation_model.VARIANTS)
    if _TRAIN_TSV.value and f.DATASET.value:
        raise flags.ValidationError("Pass either --dataset or --train_tsv, not both.")
    dataset = f.choice(f.DATASET, defaults.dataset, translation_data.DATASETS)

    def value(holder, default):
        return default if holder.value is None else holder.value

    beam = value(_BEAM_WIDTH, defaults.beam_width)
    if beam <= 0:
        raise flags.ValidationError(f"--beam_width must be a positive integer, got {beam}.")
    alpha = value(_LENGTH_PENALTY, defaults.length_penalty)
    if alpha < 0:
        raise flags.ValidationError(f"--length_penalty must be >= 0, got {alpha}.")
    smoothing = value(_LABEL_SMOOTHING, defaults.label_smoothing)
    if not 0 <= smoothing < 1:
        raise flags.ValidationError(f"--label_smoothing must be in [0, 1), got {smoothing}.")
    units = value(_UNITS, defaults.units)
    if units <= 0 or units % 2:
        raise flags.ValidationError(f"--translation_units must be positive and even, got {units}.")
    return TrainConfig(
        dataset=dataset,
        train_tsv=_TRAIN_TSV.value,
        data_dir=f.DATA_DIR.value,
        model_dir=f.MODEL_DIR.value,
        export_dir=f.resolve(f.EXPORT_DIR, defaults.export_dir),
        variant=variant,
        epochs=f.positive(f.EPOCHS, defaults.epochs),
        batch_size=f.positive(f.BATCH_SIZE, defaults.batch_size),
        seed=f.SEED.value,
        strategy=f.STRATEGY.value,
        learning_rate=_LEARNING_RATE.value,
        label_smoothing=smoothing,
        units=units,
        score=value(_SCORE, defaults.score),
        window=f.positive(_LOCAL_WINDOW, defaults.window),
        input_feeding=_INPUT_FEEDING.value,
        beam_width=beam,
        length_penalty=alpha,
        unk_replace=_UNK_REPLACE.value,
        max_train_pairs=_MAX_TRAIN_PAIRS.value,
        quick=f.QUICK.value,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    run(config_from_flags())


if __name__ == "__main__":
    app.run(main)
