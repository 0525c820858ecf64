"""Sentiment: the three model variants at the same budget and seed(s).

Trains `bilstm_attention`, `transformer` and `mean_pooling` on the VADER movie
sentences with the app's default configuration (same epochs, batch size, data
order and seed), and records for each: the movies test accuracy (in domain),
the accuracy on all tweets / amazon / nyt sentences (out of domain), training
seconds and parameter count. Writes

    benchmarks/results/sentiment_variants.json
    benchmarks/results/sentiment_variants.md

Usage:

    python benchmarks/sentiment_variants.py                    # seed 42, from the repo root
    python benchmarks/sentiment_variants.py --seeds=1,2,3      # mean over seeds
    taskset -c 0,1 python benchmarks/sentiment_variants.py     # two cores
    python benchmarks/sentiment_variants.py --variants=bilstm_attention,mean_pooling \
        --config=model.attention_hops=4 --out=benchmarks/results/sentiment_hops4

The app's common flags (`--epochs`, `--batch_size`, `--data_dir`, `--dataset`,
...) and `--config=KEY=VALUE` (any field of `apps.sentiment.train.TrainConfig`,
e.g. `--config=archive=/path/to/vaderSentiment-3.3.2.tar.gz`) set the
configuration every run starts from; the variant, seed and directories of each
run are the benchmark's (`--variants`, `--seeds`, `--runs`).

Targets (issue 3): movies test accuracy >= 0.78 with <= 5 minutes of training
on two CPU cores; `bilstm_attention` and `transformer` each beat `mean_pooling`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from apps.common import flags as common_flags  # noqa: E402
from apps.sentiment import model as sentiment_model  # noqa: E402
from apps.sentiment import train  # noqa: E402
from benchmarks._sentiment_report import (  # noqa: E402
    BASELINE,
    config_from_flags,
    markdown,
    paired_differences,
)

_SEEDS = flags.DEFINE_list("seeds", ["42"], "Seeds; every variant runs with each.")
# `han` is for long documents (benchmarks/sentiment_long.py), not single sentences.
_VARIANTS = flags.DEFINE_list("variants", [v for v in sentiment_model.VARIANTS if v != "han"],
                              "Variants to run.")
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Where the JSON and markdown go.")
_RUNS = flags.DEFINE_string("runs", "runs/benchmarks/sentiment", "Run directories.")


def benchmark(variants, seeds, runs="runs/benchmarks/sentiment",
              base: train.TrainConfig | None = None) -> dict:
    """Runs every (variant, seed) from `base`; returns the record written as JSON."""
    base = base or train.TrainConfig()
    results = []
    for variant in variants:
        for seed in seeds:
            config = dataclasses.replace(
                base,
                seed=int(seed),
                model_dir=os.path.join(runs, f"{variant}-seed{seed}-{int(time.time())}"),
                export_dir=None,
                verbose=2,
                model=dataclasses.replace(base.model, variant=variant),
            )
            result = train.run(config)
            print(train.results_line(result), flush=True)
            metrics = result.metrics
            results.append(
                {
                    "variant": variant,
                    "seed": int(seed),
                    "params": metrics["params"],
                    "train_seconds": metrics["train_seconds"],
                    "train_cpu_seconds": metrics["train_cpu_seconds"],
                    "test_accuracy": metrics["test_accuracy"],
                    "validation_accuracy": metrics["validation_accuracy"],
                    "out_of_domain": {
                        k: v["accuracy"] for k, v in metrics.get("out_of_domain", {}).items()
                    },
                    "epochs": metrics["epochs"],
                    "best_epoch": 1 + max(
                        range(len(metrics["history"]["val_accuracy"])),
                        key=lambda i: (metrics["history"]["val_accuracy"][i], -i),
                    ),
                }
            )
    return {
        "benchmark": "sentiment_variants",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "cpus_usable": len(os.sched_getaffinity(0)),
                    "load_average_at_end": os.getloadavg()},
        "dataset": base.dataset,
        "train_config": {k: v for k, v in dataclasses.asdict(base).items() if k != "model"},
        "model_config": dataclasses.asdict(base.model),
        "results": results,
    }


def main(argv):
    del argv
    unknown = sorted(set(_VARIANTS.value) - set(sentiment_model.VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; choose from "
                             f"{list(sentiment_model.VARIANTS)}.")
    base = config_from_flags()  # checked before any run
    record = benchmark(_VARIANTS.value, _SEEDS.value, _RUNS.value, base=base)
    record["config_overrides"] = list(common_flags.CONFIG.value or [])
    record["paired_with_" + BASELINE] = paired_differences(record)
    os.makedirs(_OUT.value, exist_ok=True)
    json_path = os.path.join(_OUT.value, "sentiment_variants.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    md = markdown(record)
    with open(os.path.join(_OUT.value, "sentiment_variants.md"), "w", encoding="utf-8") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    app.run(main)
