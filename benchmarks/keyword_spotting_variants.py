"""Keyword spotting: attention_rnn, kwt and cnn at the same budget and seed(s).

Trains every variant on the embedded `synthetic_speech_commands` corpus with
the app's default configuration (same epochs, batch size, learning-rate
schedule, data order and seed) and records for each: test accuracy on voices
never heard in training, validation accuracy (other unseen voices), the share
of attention on the spoken word (and what uniform attention would give),
training seconds, milliseconds per clip at evaluation, parameters. Writes

    benchmarks/results/keyword_spotting_variants.json   every run, with the machine and load
    benchmarks/results/keyword_spotting_variants.md     the table (mean ± std over seeds)

Usage (from the repository root):

    python -m benchmarks.keyword_spotting_variants                    # seed 42, 12 epochs
    python -m benchmarks.keyword_spotting_variants --kws_seeds=1,2,3
    python -m benchmarks.keyword_spotting_variants --kws_variants=kwt,cnn --kws_epochs=10
    taskset -c 0,1 python -m benchmarks.keyword_spotting_variants     # two cores

Targets (issue 6): attention_rnn >= 95% on unseen voices with <= 10 minutes of
training on two CPU cores; attention_rnn and kwt each beat cnn.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time

from absl import app, flags

from apps.keyword_spotting import model as model_lib
from apps.keyword_spotting import train

_VARIANTS = flags.DEFINE_list("kws_variants", list(model_lib.VARIANTS), "Variants to train.")
_SEEDS = flags.DEFINE_list("kws_seeds", ["42"], "Seeds (weights and data order); one run each.")
_EPOCHS = flags.DEFINE_integer("kws_epochs", train.TrainConfig.epochs, "Epochs per run.")
_DATA_DIR = flags.DEFINE_string("kws_data_dir", None, "Dataset cache (default: the shared one).")
_OUT = flags.DEFINE_string("kws_results_dir", os.path.join("benchmarks", "results"),
                           "Where the JSON and markdown go.")
_RUNS = flags.DEFINE_string("kws_runs_dir", os.path.join("runs", "benchmarks", "keyword_spotting"),
                            "Run directories (logs, plots).")
_QUICK = flags.DEFINE_bool("kws_quick", False, "The small corpus and 2 epochs (pipeline check).")

NAME = "keyword_spotting_variants"


def _mean(values):
    return sum(values) / len(values)


def _fmt(values, digits=3):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{_mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def benchmark(variants, seeds, base: train.TrainConfig, runs: str) -> dict:
    """Runs every (variant, seed) with `base` otherwise unchanged; returns the JSON record."""
    results = []
    for variant in variants:
        for seed in seeds:
            config = dataclasses.replace(
                base, model=dataclasses.replace(base.model, variant=variant), seed=int(seed),
                export_dir=None, backup=False, sample_clips=2,
                model_dir=os.path.join(runs, f"{variant}-seed{seed}-{int(time.time())}"),
            )
            result = train.run(config)
            metrics = result.metrics
            print(f"[{NAME}] {variant} seed={seed} test_accuracy={metrics['test_accuracy']:.4f} "
                  f"train_seconds={result.train_seconds:.0f}", flush=True)
            results.append({
                "variant": variant,
                "seed": int(seed),
                "parameters": metrics["parameters"],
                "train_seconds": result.train_seconds,
                "test_accuracy": metrics["test_accuracy"],
                "validation_accuracy": metrics["validation_accuracy"],
                "attention_mass_on_word": metrics["attention_mass_on_word"],
                "attention_mass_on_word_if_uniform": metrics["attention_mass_on_word_if_uniform"],
                "test_ms_per_clip": metrics["test_ms_per_clip"],
                "test_accuracy_per_speaker": metrics["test_accuracy_per_speaker"],
                "epochs": metrics["epochs"],
            })
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "cpus_usable": len(os.sched_getaffinity(0)),
                    "load_average_at_end": os.getloadavg()},
        "dataset": base.dataset,
        "train_config": {k: v for k, v in dataclasses.asdict(base).items()
                         if k not in ("corpus", "model")},
        "results": results,
    }


def markdown(record: dict) -> str:
    """The results table (one row per variant, mean ± std over seeds)."""
    variants = list(dict.fromkeys(r["variant"] for r in record["results"]))
    seeds = sorted({r["seed"] for r in record["results"]})
    first = record["results"][0]
    lines = [
        f"Keyword spotting variants on `{record['dataset']}` ({first['epochs']} epochs each, "
        f"seeds {', '.join(map(str, seeds))}; test = voices never heard in training; "
        f"{record['machine']['cpus_usable']} usable CPU cores, load average at end "
        f"{record['machine']['load_average_at_end'][0]:.1f}).",
        "",
        "| variant | test acc (unseen voices) | validation acc | attention on word "
        "(uniform) | train time (s) | ms / clip | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        rows = [r for r in record["results"] if r["variant"] == variant]
        on_word = _fmt([r["attention_mass_on_word"] for r in rows], 2)
        uniform = _fmt([r["attention_mass_on_word_if_uniform"] for r in rows], 2)
        cells = [
            _fmt([r["test_accuracy"] for r in rows]),
            _fmt([r["validation_accuracy"] for r in rows]),
            f"{on_word} ({uniform})",
            _fmt([r["train_seconds"] for r in rows], 0),
            _fmt([r["test_ms_per_clip"] for r in rows], 2),
            str(rows[0]["parameters"]),
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(record: dict, out_dir: str) -> tuple[str, str]:
    """Writes the JSON record and the markdown table; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{NAME}.json")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    md_path = os.path.join(out_dir, f"{NAME}.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown(record))
    return json_path, md_path


def main(argv):
    del argv
    # Each variant alone: the speech-embedding model the app joins by default would blur
    # the comparison.
    base = train.TrainConfig(data_dir=_DATA_DIR.value, epochs=2 if _QUICK.value else _EPOCHS.value,
                             quick=_QUICK.value, embedding_ensemble=False)
    record = benchmark(_VARIANTS.value, _SEEDS.value, base, _RUNS.value)
    _, md_path = write(record, _OUT.value)
    with open(md_path, encoding="utf-8") as f:
        print(f.read())


if __name__ == "__main__":
    app.run(main)
