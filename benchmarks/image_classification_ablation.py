"""Ablation: every image classification variant at the same budget and seeds.

Trains `plain`, `se`, `cbam`, `nonlocal`, `residual_attention` and `vit` on the
embedded cluttered digits with the same epochs, batch size, learning-rate
schedule, data order and seeds, and writes

    benchmarks/results/image_classification_ablation.json   every run, with its metrics
    benchmarks/results/image_classification_ablation.md     the table (mean over seeds)
    benchmarks/results/image_classification_maps/<variant>.png   one attention overlay each

Columns: test accuracy (unseen handwriting), parameters, FLOPs per image
(multiply-adds x 2 of the convolutions, matmuls and einsums of the traced
inference graph, `apps.common.flops.count_flops`), ms per image (compiled
`predict_on_batch`, batch 128 and batch 1, median of 3, on this machine under
the load recorded in the JSON), training seconds, and the localization of the
exported map (share of attention inside the digit's box / share a uniform map
puts there) next to the activation-norm map every CNN has.

Usage:
    python -m benchmarks.image_classification_ablation                 # all, seed 42
    python -m benchmarks.image_classification_ablation --seeds=1,2,3 --epochs=8
    python -m benchmarks.image_classification_ablation --variants=plain,cbam --quick
    python -m benchmarks.image_classification_ablation --config=canvas_size=100 \\
        --results_dir=benchmarks/results/canvas100

Every run starts from the app's `TrainConfig` as the common flags
(`--epochs`, `--batch_size`, `--data_dir`, `--dataset`, `--quick`, ...) and
`--config=KEY=VALUE` set it (see apps/README.md); `--variants` and `--seeds`
then choose `model.variant` and `seed` run by run. The benchmark's own flags
(`--variants`, `--seeds`, `--results_dir`, `--runs_dir`) are defined only when
it runs, not when it is imported, so it imports beside the other benchmarks
(`benchmarks/sentiment_variants.py` has a `--seeds` and a `--variants` too) and
`apps/main.py` (`--results_dir`, `--runs_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import time

import tensorflow as tf
from absl import app, flags

from apps.common import config as common_config
from apps.image_classification import model as model_lib
from apps.image_classification import train

NAME = "image_classification_ablation"


def define_flags() -> None:
    """Defines the benchmark's own flags (those not already defined by an imported module)."""
    own = [
        (flags.DEFINE_list, "variants", list(model_lib.VARIANTS), "Variants to train."),
        (flags.DEFINE_list, "seeds", ["42"], "Seeds (weights and data order); one run each."),
        (flags.DEFINE_string, "results_dir", os.path.join("benchmarks", "results"),
         "Where the JSON, markdown and PNGs go."),
        (flags.DEFINE_string, "runs_dir", os.path.join("runs", NAME),
         "Run directories (checkpoints, logs, plots)."),
    ]
    for define, name, default, help_text in own:
        if name not in flags.FLAGS:
            define(name, default, help_text)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list[dict]) -> list[dict]:
    """One row per variant: means (and standard deviations) over its seeds."""
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        acc, acc_std = _mean_std([r["test_accuracy"] for r in mine])
        val, _ = _mean_std([r["validation_accuracy"] for r in mine])
        loc, _ = _mean_std([r["localization_ratio"] for r in mine])
        act, _ = _mean_std([r["activation_localization_ratio"] for r in mine])
        rows.append({
            "variant": variant,
            "seeds": len(mine),
            "test_accuracy": acc,
            "test_accuracy_std": acc_std,
            "validation_accuracy": val,
            "parameters": mine[0]["parameters"],
            "flops_per_image": mine[0]["flops_per_image"],
            "ms_per_image": _mean_std([r["ms_per_image"] for r in mine])[0],
            "ms_batch1": _mean_std([r["ms_batch1"] for r in mine])[0],
            "train_seconds": _mean_std([r["train_seconds"] for r in mine])[0],
            "primary_map": mine[0]["primary_map"],
            "localization_ratio": loc,
            "activation_localization_ratio": act,
        })
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    def fmt(value, pattern):
        return "–" if value is None else pattern.format(value)

    canvas = meta.get("canvas_size", 60)

    lines = [
        f"Cluttered digits ({canvas}x{canvas}, unseen handwriting in test), {meta['epochs']} "
        f"epochs, batch {meta['batch_size']}, seeds {', '.join(meta['seeds'])}; CPU: "
        f"{meta['cpu_count']} cores, load average {meta['load_before'][0]:.1f} before / "
        f"{meta['load_after'][0]:.1f} after; TensorFlow {meta['tensorflow']}.",
        "",
        "| variant | test accuracy | validation accuracy | parameters | MFLOPs / image "
        "| ms / image (batch 128) | ms (batch 1) | train s | exported map "
        "| localization (x uniform) | activation map (x uniform) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = fmt(r["test_accuracy"], "{:.2%}")
        if r["seeds"] > 1:
            acc += f" ± {r['test_accuracy_std']:.2%}"
        lines.append(
            f"| {r['variant']} | {acc} | {fmt(r['validation_accuracy'], '{:.2%}')} "
            f"| {r['parameters']:,} | {r['flops_per_image'] / 1e6:.1f} "
            f"| {fmt(r['ms_per_image'], '{:.3f}')} | {fmt(r['ms_batch1'], '{:.2f}')} "
            f"| {fmt(r['train_seconds'], '{:.0f}')} | {r['primary_map']} "
            f"| {fmt(r['localization_ratio'], '{:.2f}')} "
            f"| {fmt(r['activation_localization_ratio'], '{:.2f}')} |"
        )
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def run_one(variant: str, seed: int, base: train.TrainConfig, runs_dir: str) -> dict:
    """Trains `variant` with `seed` from `base` (no export, 4 plots); returns its row."""
    config = dataclasses.replace(
        base, model=dataclasses.replace(base.model, variant=variant), seed=seed,
        model_dir=os.path.join(runs_dir, f"{variant}_seed{seed}"), export=False, plots=4,
        verbose=2,
    )
    result = train.run(config)
    metrics = result.metrics
    test = metrics["test"]
    maps = test.get("maps", {})
    return {
        "variant": variant,
        "seed": seed,
        "epochs": metrics["epochs"],
        "test_accuracy": test["accuracy"],
        "validation_accuracy": metrics["validation_accuracy"],
        "parameters": metrics["parameters"],
        "flops_per_image": metrics["flops_per_image"],
        "ms_per_image": metrics["ms_per_image"],
        "ms_batch1": metrics["ms_batch1"],
        "train_seconds": result.train_seconds,
        "primary_map": test["primary_map"],
        "localization_ratio": test.get("localization_ratio"),
        "attention_in_box": test.get("attention_in_box"),
        "uniform_in_box": test.get("uniform_in_box"),
        "activation_localization_ratio": maps.get("activation", {}).get("localization_ratio"),
        "maps": maps,
        "plots": test.get("plots", []),
    }


def main(argv):
    del argv
    variants, out_dir = flags.FLAGS.variants, flags.FLAGS.results_dir
    unknown = sorted(set(variants) - set(model_lib.VARIANTS))
    if unknown:
        raise flags.ValidationError(f"--variants has unknown {unknown}; use {model_lib.VARIANTS}.")
    try:
        seeds = [int(s) for s in flags.FLAGS.seeds]
    except ValueError as err:
        raise flags.ValidationError(f"--seeds must be integers: {err}") from None
    base = common_config.from_flags(train.TrainConfig)
    options = sys.argv[1:]
    meta = {
        "epochs": 1 if base.quick else base.epochs,
        "batch_size": base.batch_size,
        "canvas_size": base.canvas_size,
        "seeds": [str(s) for s in seeds],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "load_before": list(os.getloadavg()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(["python -m benchmarks.image_classification_ablation", *options]),
        "train_config": dataclasses.asdict(base),
    }
    runs = []
    for variant in variants:
        for seed in seeds:
            runs.append(run_one(variant, seed, base, flags.FLAGS.runs_dir))
            print(json.dumps({k: v for k, v in runs[-1].items() if k not in ("maps", "plots")}),
                  flush=True)
    meta["load_after"] = list(os.getloadavg())
    rows = summarize(runs)
    os.makedirs(out_dir, exist_ok=True)
    maps_dir = os.path.join(out_dir, "image_classification_maps")
    os.makedirs(maps_dir, exist_ok=True)
    for run in runs:
        if run["plots"] and run["seed"] == seeds[0]:
            shutil.copyfile(run["plots"][0], os.path.join(maps_dir, f"{run['variant']}.png"))
    with open(os.path.join(out_dir, f"{NAME}.json"), "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "summary": rows, "runs": runs}, f, indent=2)
    table = markdown(rows, meta)
    with open(os.path.join(out_dir, f"{NAME}.md"), "w", encoding="utf-8") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    define_flags()
    app.run(main)
