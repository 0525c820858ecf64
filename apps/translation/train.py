"""Trains an English -> French translator with attention, evaluates, draws alignments, exports.

Usage:

    # English -> French on Debian's gettext catalogues (UI strings) together with
    # the long sentences of man pages and package descriptions (both fetched
    # once with apt-get download), a joint WordPiece vocabulary, RNNsearch
    # (Bahdanau attention): train, translate each test split with beam search,
    # sacreBLEU BLEU/chrF overall, by source length third and by English words
    # (<=10, 10-20, 20-30, 30-40, 40-60, >60), alignment heatmaps, SavedModel
    # under saved_models/translation/:
    python -m apps.translation.train

    # One corpus only, or the word-level vocabulary of before ([UNK] for unknown words):
    python -m apps.translation.train --dataset=gettext_translations/fr
    python -m apps.translation.train --dataset=long_translations/fr
    python -m apps.translation.train --config=vocabulary=word

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
BLEU by source-length third and by English words, training time; `test_sets`
holds the scores of each test split of a joined dataset, the top-level ones are
the first's), translations.tsv (test sources, references, outputs),
alignment_*.png heatmaps, bleu_by_length.png (for the first test split; the
others' in `test_<name>/`), the vocabulary (`subword/vocab.txt`, or
source/target_vocabulary.json), TensorBoard logs; the SavedModel in `--export_dir`
(default saved_models/translation/<next version>/; `--config=export_dir=none`:
no export), whose `serving_default` maps `text` to `translation`,
`attention_weights`, `source_tokens` and `target_tokens`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from typing import Literal

import numpy as np
from absl import app, logging

from apps.common import config as common_config
from apps.common import data as common_data
from apps.common import metrics as common_metrics
from apps.common import strategy as common_strategy
from apps.common import training
from apps.translation import evaluation, long_corpus, pipeline
from apps.translation import export as translation_export
from apps.translation import model as translation_model

APP = "translation"
#: The UI strings only (the default before issue 17's joined corpus).
UI_DATASET = "gettext_translations/fr"
#: The UI strings and the long sentences (man pages, package descriptions) together.
LONG_DATASET = "gettext_translations/fr+long_translations/fr"
# The default (issue 17): both corpora, 8,000 long pairs beside the 53,811 UI strings (an
# eighth of the batches), 4 x 625 steps. At the one budget that fits 15 minutes it keeps
# BLEU on programs it never saw (22.2 against the UI-only model's 22.7), loses 3.9 on the
# UI strings' own 1.0.0 test split (29.0 against 33.0) and gains 5.7 on the long test split
# (9.8 against 4.1; past 40 words 8.7 against 2.6); README, "One model for both corpora".
DEFAULT_DATASET = LONG_DATASET


def _default_model() -> translation_model.ModelConfig:
    """The app's model: the library defaults with room for 40-word inputs (64 source and
    72 target pieces; longer training pairs are dropped, longer inputs cut when served)."""
    return translation_model.ModelConfig(max_source_length=64, max_target_length=72)


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything one run needs; `main` fills it from the command line, tests build it.

    Attributes:
        dataset: one of `pipeline.DATASETS`, or embedded ones joined with `+`
            (trained on together, each test split scored on its own); ignored
            with `train_tsv`. Default: the UI strings and the long sentences
            (`LONG_DATASET`); `UI_DATASET` is the UI strings alone.
        train_tsv: your own `source<TAB>target` pairs (UTF-8), split 80/10/10 by a
            hash of the source; replaces `dataset`.
        model: the model's kind, sizes, learning rate and label smoothing
            (`model.variant`, `model.units`, `model.learning_rate`, ...).
        vocabulary: `subword` (one joint WordPiece vocabulary of at most
            `model.source_vocab_size` pieces learnt from the training split's
            sources and targets: unknown words come out as pieces) or `word`
            (a vocabulary per language, unknown words are [UNK]).
        steps_per_epoch: batches per epoch, the pairs coming round again as
            needed (None: one pass over the training pairs per epoch). With
            `epochs` this is the training budget.
        min_count: the fewest times a word is seen in training to be in a word
            vocabulary; for subwords, the least frequency of a merged pair (at least 2).
        max_train_pairs: use at most this many training pairs (None: all), a
            seeded random sample of them. Training pairs whose source or target
            does not fit `model.max_source_length` / `model.max_target_length`
            tokens (pieces) are dropped in any case (metrics: `dropped_long_pairs`).
        long_train_pairs: train on at most this many pairs of `long_translations`
            (a seeded sample of those that fit the lengths above; None: all). The
            vocabulary is still learnt from all of its training pairs. This sets
            the share of long sentences in the batches beside the UI strings.
        max_test_pairs: evaluate on at most this many validation and test pairs
            (of each dataset joined).
        max_validation_pairs: validate (teacher-forced loss, each epoch) on at
            most this many pairs, a seeded sample of all the validation splits.
        long_test_per_bucket: on the test split of `long_translations`, at most
            this many pairs of each English-length bucket (<=10, 10-20, 20-30,
            30-40, 40-60, >60 words; the first in split order): the few long
            sentences are all kept, the many short ones sampled, and beam search
            over the 8,000 test pairs does not dominate the run. None: all.
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
    model: translation_model.ModelConfig = dataclasses.field(default_factory=_default_model)
    vocabulary: Literal["subword", "word"] = "subword"
    # The default job: 4 x 625 steps of 64 pairs over the UI strings of gettext_translations
    # 2.0.0 and `long_train_pairs` long pairs, a joint WordPiece vocabulary, copying
    # (model.copy) and tied logits (model.tie_embeddings). The UI strings alone
    # (--dataset=gettext_translations/fr --config=steps_per_epoch=None: 4 passes, 3,388
    # steps) score 33.0 on the 1.0.0 test split and 22.7 on programs never seen, 4.1 on
    # the long test split.
    epochs: int = 4
    steps_per_epoch: int | None = 625
    batch_size: int = 64
    min_count: int = 2
    max_train_pairs: int | None = None
    long_train_pairs: int | None = 8000
    max_test_pairs: int | None = None
    max_validation_pairs: int | None = 1024
    long_test_per_bucket: int | None = 50
    beam_width: int = 4
    length_penalty: float = 0.6
    unk_replace: bool = True
    heatmaps: int = 4
    verbose: int | Literal["auto"] = "auto"

    def __post_init__(self):
        super().__post_init__()
        try:
            pipeline.dataset_parts(self.dataset)
        except ValueError as err:
            raise ValueError(f"dataset: {err}") from None
        if self.vocabulary not in pipeline.VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {pipeline.VOCABULARIES}. "
                             f"Received: {self.vocabulary!r}")
        try:
            self.model.copies(self.vocabulary == "subword")
        except ValueError as err:
            raise ValueError(f"model.copy with vocabulary={self.vocabulary!r}: {err}") from None
        if self.train_tsv and self.dataset != DEFAULT_DATASET:
            raise ValueError(f"Pass either dataset ({self.dataset!r}) or train_tsv "
                             f"({self.train_tsv!r}), not both.")
        least = {"epochs": 1, "batch_size": 1, "min_count": 1, "beam_width": 1, "heatmaps": 0,
                 "steps_per_epoch": 1,
                 "max_train_pairs": 1, "long_train_pairs": 1, "max_test_pairs": 1,
                 "length_penalty": 0.0,
                 "max_validation_pairs": 1, "long_test_per_bucket": 1}
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
        config, model=model, epochs=1, steps_per_epoch=None, max_train_pairs=512,
        max_test_pairs=64, min_count=1,
        beam_width=min(config.beam_width, 2), heatmaps=2,
    )


def _sample_indices(total: int, count: int | None, seed: int) -> np.ndarray:
    """The indices of a seeded random sample of `count` of `total` items, in order (all
    when there are not more)."""
    if not count or total <= count:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:count])


def _sample(pairs, count: int | None, seed: int):
    """A seeded random sample of `count` pairs, in their order (all when there are fewer)."""
    if not count or len(pairs) <= count:
        return pairs
    picked = _sample_indices(len(pairs), count, seed)
    return pipeline.Pairs([pairs.sources[i] for i in picked], [pairs.targets[i] for i in picked])


def per_bucket(pairs, count: int, seed: int | None = None):
    """The first `count` pairs of each English-length bucket (`evaluation.WORD_BUCKETS`),
    or with `seed` a seeded random `count` of each (for pairs in an order that is not
    random, e.g. sorted by source); kept in their order either way."""
    order = list(range(len(pairs)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    taken: dict = {}
    keep = []
    for i in order:
        bucket = evaluation.word_bucket(len(pairs.sources[i].split()))
        if taken.get(bucket, 0) < count:
            taken[bucket] = taken.get(bucket, 0) + 1
            keep.append(i)
    keep.sort()
    return pipeline.Pairs([pairs.sources[i] for i in keep], [pairs.targets[i] for i in keep])


def _joined(pairs_list) -> pipeline.Pairs:
    """One `Pairs` of all of `pairs_list`, in order."""
    return pipeline.Pairs([s for p in pairs_list for s in p.sources],
                          [t for p in pairs_list for t in p.targets])


def _splits(config: TrainConfig, data_dir: str):
    """The training pairs of each part, the validation pairs, the test pairs of each part,
    the languages.

    Cut to the config's limits: seeded samples of `max_train_pairs` training and
    `max_validation_pairs` validation pairs, `long_test_per_bucket` pairs per
    length bucket of a long_translations test split, the first `max_test_pairs`
    of each validation and test split.
    """
    parts, source_language, target_language = pipeline.load_parts(
        config.dataset, data_dir, config.train_tsv, limit=config.max_train_pairs
    )
    trains = {}
    validation = pipeline.Pairs([], [])
    tests = {}
    for name, splits in parts.items():
        trains[name] = splits["train"]
        held = splits["validation"]
        tests[name] = splits["test"]
        if config.long_test_per_bucket and name.split("/")[0] == pipeline.LONG:
            tests[name] = per_bucket(tests[name], config.long_test_per_bucket)
        if config.max_test_pairs:
            held, tests[name] = held.head(config.max_test_pairs), tests[name].head(
                config.max_test_pairs)
        validation = pipeline.Pairs(validation.sources + held.sources,
                                    validation.targets + held.targets)
    if config.max_train_pairs:
        # One seeded sample of the joined pairs, each part keeping what was drawn from it.
        counts = [len(p) for p in trains.values()]
        picked = _sample_indices(sum(counts), config.max_train_pairs, config.seed)
        start = 0
        for (name, pairs), count in zip(list(trains.items()), counts, strict=True):
            mine = picked[(picked >= start) & (picked < start + count)] - start
            trains[name] = pipeline.Pairs([pairs.sources[i] for i in mine],
                                          [pairs.targets[i] for i in mine])
            start += count
    validation = _sample(validation, config.max_validation_pairs, config.seed)
    logging.info("%s: %s train, %d validation, %s test pairs (%s -> %s)", config.dataset_name,
                 {k: len(v) for k, v in trains.items()}, len(validation),
                 {k: len(v) for k, v in tests.items()}, source_language, target_language)
    return trains, validation, tests, [source_language, target_language]


def training_pairs(config: TrainConfig, trains: dict, source_tokenizer, target_tokenizer):
    """The pairs trained on: those of each part that fit the lengths, the long corpus
    sampled to `long_train_pairs`; with the count dropped for length, the count kept per
    part, and per part and English-length bucket `{"pairs", "fit", "trained"}` (how
    many of a bucket the lengths let the model see at all)."""
    kept, dropped, per_part, by_words = [], 0, {}, {}
    for name, pairs in trains.items():
        fitting, too_long = pipeline.fitting_pairs(pairs, source_tokenizer, target_tokenizer)
        dropped += too_long
        counts = {"pairs": long_corpus.length_counts(pairs.sources),
                  "fit": long_corpus.length_counts(fitting.sources)}
        if config.long_train_pairs and name.split("/")[0] == pipeline.LONG:
            fitting = _sample(fitting, config.long_train_pairs, config.seed)
        counts["trained"] = long_corpus.length_counts(fitting.sources)
        by_words[name] = {bucket: {key: counts[key][bucket] for key in counts}
                          for bucket in counts["pairs"]}
        per_part[name] = len(fitting)
        kept.append(fitting)
    return _joined(kept), dropped, per_part, by_words


def run_tokenizers(config: TrainConfig, train: pipeline.Pairs, model_dir: str):
    """The run's (source, target) tokenizers, saved in `model_dir`.

    The vocabulary is learnt from the training split only. A run that resumes
    an interrupted one reads back that run's vocabulary instead: a WordPiece
    vocabulary trained again may order its pieces otherwise, and the restored
    weights would meet other ids.
    """
    m = config.model
    if training.resumes(model_dir):
        tokenizers = pipeline.load_tokenizers(model_dir, m.max_source_length,
                                              m.max_target_length, config.vocabulary)
        if tokenizers is not None:
            logging.info("Resuming in %s with the vocabulary saved there.", model_dir)
            return tokenizers
    tokenizers = pipeline.make_tokenizers(
        train, m.source_vocab_size, m.target_vocab_size, m.max_source_length,
        m.max_target_length, min_count=config.min_count, vocabulary=config.vocabulary,
    )
    pipeline.save_tokenizers(*tokenizers, model_dir)
    return tokenizers


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
    trains, validation, tests, languages = _splits(config, data_dir)

    m = config.model
    source_tokenizer, target_tokenizer = run_tokenizers(config, _joined(trains.values()),
                                                        model_dir)
    train, dropped, per_part, by_words = training_pairs(config, trains, source_tokenizer,
                                                       target_tokenizer)
    logging.info("%d training pairs longer than %d source / %d target tokens dropped; "
                 "%s kept", dropped, m.max_source_length, m.max_target_length, per_part)
    if not len(train):
        raise ValueError(f"No training pair fits model.max_source_length={m.max_source_length} "
                         f"and model.max_target_length={m.max_target_length} tokens.")
    train_ds = pipeline.make_dataset(train, source_tokenizer, target_tokenizer,
                                     config.batch_size, training=True, seed=config.seed,
                                     repeat=config.steps_per_epoch is not None)
    val_ds = pipeline.make_dataset(validation, source_tokenizer, target_tokenizer,
                                   config.batch_size) if len(validation) else None

    # The model is sized to the vocabularies built (at most the configured sizes).
    steps_per_epoch = config.steps_per_epoch or math.ceil(len(train) / config.batch_size)
    model_config = dataclasses.replace(m, source_vocab_size=source_tokenizer.vocabulary_size,
                                       target_vocab_size=target_tokenizer.vocabulary_size,
                                       copy=m.copies(config.vocabulary == "subword"))
    with strategy.scope():
        model = translation_model.compile_model(
            translation_model.build_model(model_config), model_config,
            decay_steps=config.epochs * steps_per_epoch,
        )
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        model, train_ds, val_ds, epochs=config.epochs, model_dir=model_dir,
        verbose=config.verbose, steps_per_epoch=config.steps_per_epoch,
    )
    cpu_seconds = time.process_time() - cpu_start

    module = translation_export.TranslationModule(
        model, source_tokenizer, target_tokenizer, beam_width=config.beam_width,
        length_penalty=config.length_penalty, max_output_length=m.max_target_length,
        unk_replace=config.unk_replace,
    )
    test_sets = {}
    for i, (name, test) in enumerate(tests.items()):
        directory = model_dir if i == 0 else os.path.join(model_dir, "test_" + name.replace(
            "/", "_"))
        os.makedirs(directory, exist_ok=True)
        test_sets[name] = evaluation.evaluate(
            module, test, directory, variant=m.variant, heatmap_count=config.heatmaps,
            plots=chief, title=f"{name}: BLEU by source length ({m.variant})",
        )
    scores = next(iter(test_sets.values()))
    export_path = None
    if config.export_dir and chief:
        export_path = translation_export.export(module, config.export_dir)

    metrics = {
        **scores,
        "train_cpu_seconds": cpu_seconds,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "test_sets": test_sets,
        "pairs": {"train": len(train), "train_parts": per_part, "validation": len(validation),
                  "test": len(next(iter(tests.values()))),
                  "test_sets": {k: len(v) for k, v in tests.items()}},
        "dropped_long_pairs": dropped,
        "training_pairs_by_words": by_words,
        "languages": languages,
        "vocabulary": {"kind": config.vocabulary, "source": source_tokenizer.vocabulary_size,
                       "target": target_tokenizer.vocabulary_size},
        "epochs": config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "final_loss": float(history.history["loss"][-1]),
        "parameters": int(model.count_params()),
        "decoding": {"beam_width": config.beam_width, "length_penalty": config.length_penalty,
                     "unk_replace": module.unk_replace, "copy": bool(model_config.copy)},
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
    for name, scores in metrics["test_sets"].items():
        print(f"[{APP}] {name} test: BLEU={scores['bleu']:.2f} chrF={scores['chrf']:.2f} "
              f"(BLEU without [UNK] replacement {scores['bleu_without_unk_replace']:.2f}); "
              "BLEU by English words: " + ", ".join(
                  f"{k}={v['bleu']:.2f} ({v['sentences']})"
                  for k, v in scores["bleu_by_words"].items() if v["sentences"]), flush=True)


if __name__ == "__main__":
    app.run(main)
