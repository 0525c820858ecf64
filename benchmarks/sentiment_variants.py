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
        --model_config='{"attention_hops": 4}' --out=benchmarks/results/sentiment_hops4

Targets (issue 3): movies test accuracy >= 0.78 with <= 5 minutes of training
on two CPU cores; `bilstm_attention` and `transformer` each beat `mean_pooling`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from apps.sentiment import model as sentiment_model  # noqa: E402
from apps.sentiment import train  # noqa: E402
from benchmarks import _common  # noqa: E402

_SEEDS = flags.DEFINE_list("seeds", ["42"], "Seeds; every variant runs with each.")
_VARIANTS = flags.DEFINE_list("variants", list(sentiment_model.VARIANTS), "Variants to run.")
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Where the JSON and markdown go.")
_DATA = flags.DEFINE_string("bench_data_dir", None, "Dataset cache (default: the app's).")
_RUNS = flags.DEFINE_string("runs", "runs/benchmarks/sentiment", "Run directories.")
_ARCHIVE = flags.DEFINE_string("bench_archive", None, "Local vaderSentiment-3.3.2.tar.gz.")
_MODEL_CONFIG = flags.DEFINE_string(
    "model_config", None,
    'JSON object of ModelConfig fields for every variant, e.g. \'{"attention_hops": 4}\' '
    "(an ablation; use --out to keep the default results).",
)


def parse_model_config(text: str | None) -> dict:
    """`--model_config` -> ModelConfig overrides; a bad value raises a UsageError naming it."""
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--model_config is not JSON ({e}): {text!r}") from e
    if not isinstance(values, dict):
        raise app.UsageError(f"--model_config must be a JSON object, got {text!r}")
    fields = {f.name for f in dataclasses.fields(sentiment_model.ModelConfig)} - {"variant"}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise app.UsageError(
            f"--model_config: unknown field(s) {unknown}; ModelConfig has {sorted(fields)}"
        )
    try:
        sentiment_model.ModelConfig(**values)
    except (TypeError, ValueError) as e:
        raise app.UsageError(f"--model_config: {e}") from e
    return values


def _mean(values):
    return statistics.fmean(values) if values else float("nan")


def _fmt(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{_mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def benchmark(variants, seeds, data_dir=None, archive=None, runs="runs/benchmarks/sentiment",
              base: train.TrainConfig | None = None) -> dict:
    """Runs every (variant, seed); returns the record written as JSON."""
    base = base or train.TrainConfig()
    results = []
    for variant in variants:
        for seed in seeds:
            config = dataclasses.replace(
                base,
                data_dir=data_dir,
                archive=archive,
                seed=int(seed),
                model_dir=os.path.join(runs, f"{variant}-seed{seed}-{int(time.time())}"),
                export_dir=None,
                verbose=2,
                model=dataclasses.replace(base.model, variant=variant),
            )
            metrics = train.run(config)
            print(metrics["results_line"], flush=True)
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


def markdown(record: dict) -> str:
    variants = list(dict.fromkeys(r["variant"] for r in record["results"]))
    seeds = sorted({r["seed"] for r in record["results"]})
    domains = sorted({d for r in record["results"] for d in r["out_of_domain"]})
    lines = [
        f"Sentiment variants on `{record['dataset']}` ({record['results'][0]['epochs']} epochs, "
        f"best epoch on validation, seeds {', '.join(map(str, seeds))}; "
        f"{record['machine']['cpus_usable']} usable CPU cores, load average at end "
        f"{record['machine']['load_average_at_end'][0]:.1f})"
        + (f"; model config overrides `{json.dumps(record['model_config_overrides'])}`"
           if record.get("model_config_overrides") else "") + ".",
        "",
        "| variant | movies test acc | " + " | ".join(f"{d} acc (OOD)" for d in domains)
        + " | train time (s) | train CPU time (s) | params |",
        "|---|---|" + "---|" * len(domains) + "---|---|---|",
    ]
    for variant in variants:
        rows = [r for r in record["results"] if r["variant"] == variant]
        cells = [_fmt([r["test_accuracy"] for r in rows])]
        cells += [_fmt([r["out_of_domain"][d] for r in rows]) for d in domains]
        cells += [_fmt([r["train_seconds"] for r in rows], 0),
                  _fmt([r["train_cpu_seconds"] for r in rows], 0), str(rows[0]["params"])]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    paired = paired_differences(record)
    if paired:
        lines += [
            "",
            f"Paired by seed against `{BASELINE}` (a seed fixes the data order and the "
            "initialisation): movies test accuracy difference, mean with a 95% "
            "bootstrap interval over seeds, and how many seeds it won / tied / lost.",
            "",
            "| variant | mean difference | 95% interval | won / tied / lost |",
            "|---|---|---|---|",
        ]
        for variant, p in paired.items():
            interval = ("–" if p["low"] is None
                        else f"[{p['low']:+.4f}, {p['high']:+.4f}]")
            lines.append(f"| {variant} | {p['mean']:+.4f} | {interval} | "
                         f"{p['won']} / {p['tied']} / {p['lost']} |")
    return "\n".join(lines) + "\n"


BASELINE = "mean_pooling"


def paired_differences(record: dict) -> dict:
    """`{variant: mean, low, high, won, tied, lost}`: test accuracy minus the baseline's,
    over the seeds both ran (the interval is None with fewer than 3 seeds)."""
    by_seed = {(r["variant"], r["seed"]): r["test_accuracy"] for r in record["results"]}
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in record["results"]):
        if variant == BASELINE:
            continue
        seeds = sorted(s for v, s in by_seed if v == variant and (BASELINE, s) in by_seed)
        if not seeds:
            continue
        diffs = [by_seed[(variant, s)] - by_seed[(BASELINE, s)] for s in seeds]
        interval = _common.bootstrap_interval(diffs, statistics.fmean)
        out[variant] = {
            "mean": statistics.fmean(diffs),
            "low": interval[1] if interval else None,
            "high": interval[2] if interval else None,
            "won": sum(d > 0 for d in diffs),
            "tied": sum(d == 0 for d in diffs),
            "lost": sum(d < 0 for d in diffs),
            "seeds": seeds,
            "differences": diffs,
        }
    return out


def main(argv):
    del argv
    overrides = parse_model_config(_MODEL_CONFIG.value)
    base = train.TrainConfig()
    base = dataclasses.replace(base, model=dataclasses.replace(base.model, **overrides))
    record = benchmark(_VARIANTS.value, _SEEDS.value, _DATA.value, _ARCHIVE.value, _RUNS.value,
                       base=base)
    record["model_config_overrides"] = overrides
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
