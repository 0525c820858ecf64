"""Trains an English -> French translator with attention, evaluates, draws alignments, exports.

Usage:

    # English -> French on Debian's gettext catalogues (fetched once with
    # apt-get download), RNNsearch (Bahdanau attention): train, translate the
    # test split with beam search, sacreBLEU BLEU/chrF overall and by source
    # length, alignment heatmaps, SavedModel under saved_models/translation/:
    python -m apps.translation.train

    # The other variants, the same budget:
    python -m apps.translation.train --variant=seq2seq        # no attention (baseline)
    python -m apps.translation.train --variant=luong --config=model.score=dot
    python -m apps.translation.train --variant=luong_local --config=model.window=4
    python -m apps.translation.train --variant=transformer

    # Decoding of the evaluation and the export: greedy, no [UNK] replacement:
    python -m apps.translation.train --config=beam_width=1 --config=unk_replace=false

    # Other languages of the same corpus, or your own tab-separated pairs:
    python -m apps.translation.train --dataset=gettext_translations/de
    python -m apps.translation.train --config=train_tsv=pairs.tsv

    # A run of seconds, to try the pipeline out:
    python -m apps.translation.train --quick

    # Online machines: public datasets through tfds.
    python -m apps.translation.train --dataset=ted_hrlr_translate/pt_to_en \\
        --config=max_train_pairs=50000

Every field of `TrainConfig` (and of `model`, its `ModelConfig`) is set with
`--config=KEY=VALUE`; see apps/README.md.

Outputs (`--model_dir`, default runs/translation/): metrics.json (BLEU, chrF,
BLEU by source-length third, training time), translations.tsv (test sources,
references, outputs), alignment_*.png heatmaps, bleu_by_length.png,
source/target vocabularies, TensorBoard logs; the SavedModel in `--export_dir`
(default saved_models/translation/<next version>/; `--config=export_dir=none`:
no export), whose `serving_default` maps `text` to `translation`,
`attention_weights`, `source_tokens` and `target_tokens`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Literal

from absl import app, logging

from apps.common import config as common_config
from apps.common import data as common_data
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training
from apps.translation import evaluation, pipeline
from apps.translation import export as translation_export
from apps.translation import model as translation_model

APP = "translation"
DEFAULT_DATASET = "gettext_translations/fr"


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything one run needs; `main` fills it from the command line, tests build it.

    Attributes:
        dataset: one of `pipeline.DATASETS`; ignored with `train_tsv`.
        train_tsv: your own `source<TAB>target` pairs (UTF-8), split 80/10/10 by a
            hash of the source; replaces `dataset`.
        model: the model's kind, sizes, learning rate and label smoothing
            (`model.variant`, `model.units`, `model.learning_rate`, ...).
        min_count: the fewest times a word is seen in training to be in a vocabulary.
        max_train_pairs: use at most this many training pairs (None: all).
        max_test_pairs: evaluate on at most this many validation and test pairs.
        beam_width: beam of the evaluation and the export (1 = greedy search).
        length_penalty: alpha of Wu et al. (2016), in the evaluation and the export.
        unk_replace: replace each [UNK] the model emits by the source word it
            attended to most (in the export and the evaluation).
        heatmaps: alignment pictures drawn from the test split.
        verbose: Keras' fit verbosity.
    """

    dataset: str = DEFAULT_DATASET
    train_tsv: str | None = None
    export_dir: str | None = "saved_models/translation"  # None: do not export
    model: translation_model.ModelConfig = dataclasses.field(
        default_factory=translation_model.ModelConfig)
    epochs: int = 8
    batch_size: int = 64
    min_count: int = 2
    max_train_pairs: int | None = None
    max_test_pairs: int | None = None
    beam_width: int = 4
    length_penalty: float = 0.6
    unk_replace: bool = True
    heatmaps: int = 4
    verbose: int | Literal["auto"] = "auto"

    def __post_init__(self):
        super().__post_init__()
        if self.dataset not in pipeline.DATASETS:
            raise ValueError(f"dataset must be one of {pipeline.DATASETS}. "
                             f"Received: {self.dataset!r}")
        if self.train_tsv and self.dataset != DEFAULT_DATASET:
            raise ValueError(f"Pass either dataset ({self.dataset!r}) or train_tsv "
                             f"({self.train_tsv!r}), not both.")
        least = {"epochs": 1, "batch_size": 1, "min_count": 1, "beam_width": 1, "heatmaps": 0,
                 "max_train_pairs": 1, "max_test_pairs": 1, "length_penalty": 0.0}
        for name, low in least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name} must be >= {low}. Received: {value!r}")

    @property
    def dataset_name(self) -> str:
        """What the run trained on, as metrics.json names it."""
        return "train_tsv:" + self.train_tsv if self.train_tsv else self.dataset


def quick_config(config: TrainConfig) -> TrainConfig:
    """Seconds instead of minutes: a slice of the data, a small model, one epoch."""
    model = dataclasses.replace(
        config.model, units=64, embedding_dim=32, attention_units=32, intermediate_dim=128,
        num_layers=1, source_vocab_size=2000, target_vocab_size=2000,
    )
    return dataclasses.replace(
        config, model=model, epochs=1, max_train_pairs=512, max_test_pairs=64, min_count=1,
        beam_width=min(config.beam_width, 2), heatmaps=2,
    )


def _splits(config: TrainConfig, data_dir: str):
    """The train, validation and test pairs, cut to the config's limits."""
    splits, source_language, target_language = pipeline.load_splits(
        config.dataset, data_dir, config.train_tsv, limit=config.max_train_pairs
    )
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    if config.max_train_pairs:
        train = train.head(config.max_train_pairs)
    if config.max_test_pairs:
        validation = validation.head(config.max_test_pairs)
        test = test.head(config.max_test_pairs)
    logging.info("%s: %d train, %d validation, %d test pairs (%s -> %s)", config.dataset_name,
                 len(train), len(validation), len(test), source_language, target_language)
    return train, validation, test, [source_language, target_language]


def run(config: TrainConfig) -> common_metrics.RunResult:
    """Trains, evaluates, plots and exports; the result is also in `<model_dir>/metrics.json`."""
    if config.quick:
        config = quick_config(config)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    chief = common_strategy.is_chief(strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    train, validation, test, languages = _splits(config, data_dir)

    m = config.model
    source_tokenizer, target_tokenizer = pipeline.make_tokenizers(
        train, m.source_vocab_size, m.target_vocab_size, m.max_source_length,
        m.max_target_length, min_count=config.min_count,
    )
    source_tokenizer.save(os.path.join(model_dir, "source_vocabulary.json"))
    target_tokenizer.save(os.path.join(model_dir, "target_vocabulary.json"))
    train_ds = pipeline.make_dataset(train, source_tokenizer, target_tokenizer,
                                     config.batch_size, training=True, seed=config.seed)
    val_ds = pipeline.make_dataset(validation, source_tokenizer, target_tokenizer,
                                   config.batch_size) if len(validation) else None

    # The model is sized to the vocabularies built (at most the configured sizes).
    model_config = dataclasses.replace(m, source_vocab_size=source_tokenizer.vocabulary_size,
                                       target_vocab_size=target_tokenizer.vocabulary_size)
    with strategy.scope():
        model = translation_model.compile_model(
            translation_model.build_model(model_config), model_config,
            decay_steps=config.epochs * math.ceil(len(train) / config.batch_size),
        )
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        model, train_ds, val_ds, epochs=config.epochs, model_dir=model_dir,
        verbose=config.verbose,
    )
    cpu_seconds = time.process_time() - cpu_start

    module = translation_export.TranslationModule(
        model, source_tokenizer, target_tokenizer, beam_width=config.beam_width,
        length_penalty=config.length_penalty, max_output_length=m.max_target_length,
        unk_replace=config.unk_replace,
    )
    scores = evaluation.evaluate(
        module, test, model_dir, variant=m.variant, heatmap_count=config.heatmaps, plots=chief,
        title=f"{config.dataset_name}: BLEU by source length ({m.variant})",
    )
    export_path = None
    if config.export_dir and chief:
        export_path = translation_export.export(module, config.export_dir)

    metrics = {
        **scores,
        "train_cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "pairs": {"train": len(train), "validation": len(validation), "test": len(test)},
        "languages": languages,
        "vocabulary": {"source": source_tokenizer.vocabulary_size,
                       "target": target_tokenizer.vocabulary_size},
        "epochs": config.epochs,
        "final_loss": float(history.history["loss"][-1]),
        "parameters": int(model.count_params()),
        "decoding": {"beam_width": config.beam_width, "length_penalty": config.length_penalty,
                     "unk_replace": config.unk_replace},
        "config": dataclasses.asdict(config),
    }
    if "val_loss" in history.history:
        metrics["final_val_loss"] = float(history.history["val_loss"][-1])
    result = common_metrics.RunResult(
        app=APP, dataset=config.dataset_name, variant=m.variant, metric="bleu",
        value=scores["bleu"], train_seconds=seconds, export_path=export_path, metrics=metrics,
    )
    return result.write(model_dir) if chief else result


def config_from_flags() -> TrainConfig:
    """The TrainConfig the command line asks for (common flags and `--config=KEY=VALUE`)."""
    return common_config.from_flags(TrainConfig)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    result = run(config_from_flags())
    metrics = result.metrics
    print(result.line, flush=True)
    print(f"[{APP}] chrF={metrics['chrf']:.2f} BLEU without [UNK] replacement="
          f"{metrics['bleu_without_unk_replace']:.2f} BLEU by length third: "
          + ", ".join(f"{k}={v['bleu']:.2f}" for k, v in metrics["bleu_by_length"].items()),
          flush=True)


if __name__ == "__main__":
    app.run(main)
