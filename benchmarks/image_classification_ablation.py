"""Ablation: every image classification variant at the same budget and seeds (issue 20).

Trains `plain`, `se`, `cbam`, `nonlocal`, `residual_attention` and `vit` on
`fashion_mnist` (28x28) and `cluttered_fashion_mnist` (60x60 canvases) with the
same 10-minute training budget, batch size, data order and seeds (a seed fixes
the initialisation and the data order, so runs with the same seed are paired),
and writes

    benchmarks/results/image_classification_ablation.json   every run, with its metrics
    benchmarks/results/image_classification_ablation.md     the tables
    benchmarks/results/image_classification_maps/<dataset>/<variant>.png   an overlay each

The budget: each run trains for `BUDGET_EPOCHS[dataset][variant]` epochs, the
most that fit `BUDGET_SECONDS` (10 minutes) of training on two unloaded cores
(see `BUDGET_EPOCHS` for how they were estimated); `--epochs=N` gives every
variant N epochs instead (the same epochs, not the same time). The CNNs train
with the app's default recipe (`augmented`: shifts and flips, on plain
`fashion_mnist`; `standard` on the canvases) and the ViT with `small_data` (warm-up then
cosine decay, label smoothing, random translation and flips:
`apps.image_classification.model.RECIPES`); `--config=recipe=...` gives all
variants one recipe.

Columns: test accuracy (mean ± sd over seeds), the difference from `plain`
paired by seed with its 95% Student-t interval (`_common.paired_by_seed`), the
verdict on the claim "≥ plain + 1 point" (holds: the whole interval is at or
above +1 point; fails: it is below; else undecided), epochs, parameters, FLOPs
per image (`apps.common.flops.count_flops`), ms per image (batch 128), training
seconds (wall clock of `fit`, on this machine under the load recorded) and CPU
seconds of the whole run (training, evaluation, timing: independent of the
load). A second table gives, per dataset with boxes, the localization of every
map of every variant (share of the map's mass inside the object's box / the
share a uniform map puts there).

Usage:
    python -m benchmarks.image_classification_ablation           # 2 datasets x 6 variants x 3 seeds
    python -m benchmarks.image_classification_ablation --datasets=fashion_mnist --seeds=1
    python -m benchmarks.image_classification_ablation --variants=plain,vit --epochs=10
    python -m benchmarks.image_classification_ablation --datasets=cluttered_digits  # the digits
    python -m benchmarks.image_classification_ablation --quick --variants=plain,se --seeds=1

The record is rewritten after every run. Run the same command again after a stop
(or in a later session, from the committed record) and the runs already
recorded with the same settings are kept, not trained again; only the missing
(dataset, variant, seed) runs train (`--noresume` trains all). `--name=N` writes
`N.json` / `N.md` instead. Two processes can share the work (one run leaves
part of two cores idle): give the second other `--seeds` and its
own `--results_dir`, then `--merge_from=<that dir>/<name>.json` keeps its runs.

Every run starts from the app's `TrainConfig` as the common flags
(`--epochs`, `--batch_size`, `--data_dir`, `--quick`, ...) and
`--config=KEY=VALUE` set it (see apps/README.md); `--datasets`, `--variants`
and `--seeds` then choose `dataset`, `model.variant` and `seed` run by run
(`--dataset=X` alone means `--datasets=X`). The benchmark's own flags are
defined only when it runs, not when it is imported, so it imports beside the
other benchmarks (`benchmarks/sentiment_variants.py` has a `--seeds` and a
`--variants` too) and `apps/main.py` (`--results_dir`, `--runs_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import sys
import time

from absl import app, flags

from apps.common import config as common_config
from apps.image_classification import builder as builder_lib
from apps.image_classification import model as model_lib
from apps.image_classification import pipeline, train
from benchmarks import _common

NAME = "image_classification_ablation"
BASELINE = "plain"
CLAIM = 0.01  # each attention variant >= plain + 1 point of test accuracy
DEFAULT_DATASETS = ("fashion_mnist", "cluttered_fashion_mnist")
BUDGET_SECONDS = 600
# Epochs per variant that fit BUDGET_SECONDS of training on two unloaded cores. Estimated
# from a few timed training steps (batch 64, `train_on_batch` after one compiling call,
# the app's jit_compile="auto") on 2 shared cores of an AMD EPYC under load 6-8:
# process CPU seconds per step (`STEP_CPU_MS`, all threads; the wall clock under that load
# was 1-3x more and too noisy to use) times 875 step-equivalents per epoch (844 training
# steps of 54,000 images + 6,000 validation images forward, about 31 steps), within 85%
# of the budget (the rest for compiling, the input pipeline and augmentation):
# epochs = floor(0.85 * 600 / (875 * cpu_ms / 1000)). Two unloaded cores run a step in
# about its CPU time or less (TensorFlow spreads it over both), so a run should fit.
STEP_CPU_MS = {
    "fashion_mnist": {"plain": 29.1, "se": 29.8, "cbam": 33.7, "nonlocal": 32.8,
                      "residual_attention": 61.8, "vit": 139.3},
    "cluttered_fashion_mnist": {"plain": 84.7, "se": 87.5, "cbam": 113.0, "nonlocal": 113.5,
                                "residual_attention": 189.7, "vit": 333.2},
}
STEPS_PER_EPOCH = 875
BUDGET_EPOCHS = {
    dataset: {variant: max(1, int(0.85 * BUDGET_SECONDS / (STEPS_PER_EPOCH * ms / 1000)))
              for variant, ms in steps.items()}
    for dataset, steps in STEP_CPU_MS.items()
}
# The ViT's own budget: at the CNNs' 10 minutes it was left unconverged (4 epochs of 4x4
# patches, validation still rising; README, `benchmarks/results/vit_recipe/`). Probes on
# `fashion_mnist` seed 1 found 7x7 patches (16 tokens) at 0.4x the cost of 4x4, the CNNs'
# `augmented` recipe +5 points over `small_data` at 10 epochs, and validation flat (within
# 0.2 points) over the last 5 of 30 epochs: 30 epochs of 7x7 (about 61 CPU s per epoch,
# 2.4x plain's run). On the 60x60 canvases 10x10 patches (36 tokens; an ad hoc step
# timing put it at 0.35x the cost of 6x6) and 20 epochs, planned at 3x the CNNs' time
# (measured: 2,253 CPU s, 4.1x plain's run). A flag the user gives (`--epochs`,
# `--config=model.patch_size=...`, `--config=recipe=...`) wins over these.
VIT_BUDGET = {
    "fashion_mnist": {"epochs": 30, "patch_size": 7, "recipe": "augmented"},
    "cluttered_fashion_mnist": {"epochs": 20, "patch_size": 10, "recipe": "augmented"},
}


def define_flags() -> None:
    """Defines the benchmark's own flags (those not already defined by an imported module)."""
    own = [
        (flags.DEFINE_list, "variants", list(model_lib.VARIANTS), "Variants to train."),
        (flags.DEFINE_list, "seeds", ["1", "2", "3"],
         "Seeds (weights and data order); one run each, paired across variants."),
        (flags.DEFINE_list, "datasets", list(DEFAULT_DATASETS), "Datasets, one table each."),
        (flags.DEFINE_string, "results_dir", _common.RESULTS_DIR,
         "Where the JSON, markdown and PNGs go."),
        (flags.DEFINE_string, "runs_dir", os.path.join("runs", NAME),
         "Run directories (checkpoints, logs, plots)."),
        (flags.DEFINE_string, "name", NAME, "Base name of the results' JSON and markdown."),
        (flags.DEFINE_bool, "resume", True,
         "Keep the runs already in <results_dir>/<name>.json that were trained with the same "
         "settings, and train only the missing ones (the record is rewritten after each "
         "run, so a stopped ablation goes on where it stopped)."),
        (flags.DEFINE_list, "merge_from", [],
         "Other records (JSON paths) of this benchmark, e.g. seeds trained by a second "
         "process with another --results_dir: their runs with the same settings are kept "
         "too (a run in both: the one in <name>.json)."),
    ]
    for define, name, default, help_text in own:
        if name not in flags.FLAGS:
            define(name, default, help_text)


def _run_key(run: dict) -> tuple:
    """What makes a recorded run the one a command plans: dataset, variant, seed, epochs,
    recipe and (ViT) patch side."""
    return (run["dataset"], run["variant"], run["seed"], run.get("requested_epochs"),
            run.get("recipe"), run.get("patch_size"))


def recorded_runs(path: str, merge_from: list[str], identity: dict) -> list[dict]:
    """The runs to keep: those of the record at `path` (`_common.recorded_runs`), then
    those of each record in `merge_from` that `path` lacks (by dataset, variant, seed and
    epochs). A `merge_from` record that is missing or holds no run with these settings
    is a ValueError naming it: it was asked for by name."""
    runs = _common.recorded_runs(path, identity)
    for other in merge_from:
        if not os.path.isfile(other):
            raise ValueError(f"--merge_from: {other} is not a file.")
        extra = _common.recorded_runs(other, identity)
        if not extra:
            raise ValueError(f"--merge_from: {other} holds no run trained with this "
                             "benchmark's settings (its meta.identity differs).")
        have = {_run_key(r) for r in runs}
        runs += [r for r in extra if _run_key(r) not in have]
    return runs


def carried_runs(recorded: list[dict], datasets, seeds, variants) -> list[dict]:
    """The recorded runs whose (dataset, variant, seed) is not among `datasets` x
    `variants` x `seeds`: a command that trains a subset keeps them in the record it
    rewrites."""
    planned = {(d, v, s) for d in datasets for v in variants for s in seeds}
    return [r for r in recorded if (r["dataset"], r["variant"], r["seed"]) not in planned]


def recorded_datasets(paths) -> dict:
    """The datasets' facts (`meta["datasets"]`) of the records at `paths` (the first record
    naming a dataset wins; a missing or unreadable file gives none): the tables of runs
    carried from another command need them."""
    facts: dict = {}
    for path in paths:
        try:
            with open(path) as f:
                found = json.load(f)["meta"]["datasets"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for dataset, fact in found.items():
            facts.setdefault(dataset, fact)
    return facts


def budget_epochs(dataset: str, variant: str, epochs: int | None) -> int:
    """`epochs` when given, else the variant's epochs within its budget on `dataset`
    (the ViT's `VIT_BUDGET`, the others' `BUDGET_EPOCHS`; a dataset in neither: the
    app's default)."""
    if epochs is not None:
        return epochs
    if variant == "vit" and dataset in VIT_BUDGET:
        return VIT_BUDGET[dataset]["epochs"]
    return BUDGET_EPOCHS.get(dataset, {}).get(variant, train.DEFAULT_EPOCHS)


def variant_config(config: train.TrainConfig, variant: str, seed: int,
                   epochs: int) -> train.TrainConfig:
    """`config` for one run: its variant, seed and epochs, and for the ViT the patches
    and recipe of `VIT_BUDGET[dataset]` unless `config` sets them (`patch_size` not None,
    `recipe` not `auto`); the patches only where they divide the canvas (a canvas
    drawn at another size keeps the app's default patches)."""
    model = dataclasses.replace(config.model, variant=variant)
    recipe = config.recipe
    own = VIT_BUDGET.get(config.dataset) if variant == "vit" else None
    if own:
        drawn = config.dataset_config()
        if (model.patch_size is None and drawn is not None
                and drawn.canvas_size % own["patch_size"] == 0):
            model = dataclasses.replace(model, patch_size=own["patch_size"])
        if recipe == "auto":
            recipe = own["recipe"]
    return dataclasses.replace(config, model=model, recipe=recipe, seed=seed, epochs=epochs)


def planned_key(config: train.TrainConfig) -> tuple:
    """`_run_key` of the run `config` (from `variant_config`) trains."""
    vit = config.model.variant == "vit"
    return (config.dataset, config.model.variant, config.seed, config.epochs,
            config.training_recipe().name, config.model.patch_size if vit else None)


def dataset_facts(config: train.TrainConfig) -> dict:
    """How `config.dataset` is drawn, from its builder config (canvas size, clutter,
    fragments); only the name for a dataset that is not embedded (`cifar10`)."""
    facts = {"dataset": config.dataset}
    if config.dataset not in pipeline.EMBEDDED_DATASETS:
        return facts
    drawn = config.dataset_config() or builder_lib.ClutteredDigits.BUILDER_CONFIGS[0]
    for name in ("canvas_size", "min_clutter", "max_clutter", "fragment_size",
                 "train_canvases", "eval_canvases", "clutter_covers_digit"):
        facts[name] = getattr(drawn, name)
    facts["builder_config"] = drawn.name
    return facts


def _mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def claim_verdict(paired: dict | None, claim: float = CLAIM) -> str:
    """`_common.claim_verdict` against this ablation's +1 point."""
    return _common.claim_verdict(paired, claim)


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (dataset, variant): means over seeds, the difference from `plain`
    paired by seed with its interval, the claim's verdict, and the costs."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        for variant in dict.fromkeys(r["variant"] for r in mine):
            own = [r for r in mine if r["variant"] == variant]
            acc, acc_sd = _mean_sd([r["test_accuracy"] for r in own])
            paired = (None if variant == BASELINE
                      else _common.paired_by_seed(mine, "variant", variant, BASELINE,
                                                  "test_accuracy"))
            map_names = dict.fromkeys(n for r in own for n in r["maps"])
            rows.append({
                "dataset": dataset,
                "variant": variant,
                "seeds": len(own),
                "epochs": own[0]["epochs"],
                "recipe": own[0]["recipe"],
                "patch_size": own[0].get("patch_size_used"),
                "test_accuracy": acc,
                "test_accuracy_sd": acc_sd,
                "validation_accuracy": _mean_sd([r["validation_accuracy"] for r in own])[0],
                "vs_plain": paired,
                "claim": claim_verdict(paired) if variant != BASELINE else "–",
                "parameters": own[0]["parameters"],
                "flops_per_image": own[0]["flops_per_image"],
                "ms_per_image": _mean_sd([r["ms_per_image"] for r in own])[0],
                "train_seconds": _mean_sd([r["train_seconds"] for r in own])[0],
                "cpu_seconds": _mean_sd([r["cpu_seconds"] for r in own])[0],
                "primary_map": own[0]["primary_map"],
                "localization_ratio": _mean_sd([r["localization_ratio"] for r in own])[0],
                "maps": {name: _mean_sd([r["maps"].get(name) for r in own])
                         for name in map_names},
            })
    return rows


def overall_verdict(rows: list[dict], dataset: str) -> str:
    """The claim "each attention variant >= plain + 1 point" on `dataset`, in one line."""
    verdicts = {r["variant"]: r["claim"] for r in rows
                if r["dataset"] == dataset and r["variant"] != BASELINE}
    if not verdicts or not any(r["variant"] == BASELINE for r in rows
                               if r["dataset"] == dataset):
        return f"`{dataset}`: no attention variant was paired with `{BASELINE}`; not tested."
    failing = [v for v, c in verdicts.items() if c == "fails"]
    open_ = [v for v, c in verdicts.items() if c == "undecided"]
    single = [v for v, c in verdicts.items() if c == "undecided (1 seed)"]
    if failing:
        result = (f"**fails**: the 95% interval of {', '.join(failing)} lies below "
                  f"+{CLAIM * 100:g} point")
    elif open_ or single:
        result = "**undecided**: " + "; ".join(
            part for part in (
                open_ and f"the interval of {', '.join(open_)} contains +{CLAIM * 100:g}",
                single and f"{', '.join(single)} paired on one seed only (no interval)")
            if part)
    else:
        result = "**holds**: every interval lies at or above +1 point"
    return (f"`{dataset}`: the claim \"each attention variant ≥ {BASELINE} + "
            f"{CLAIM * 100:g} point\" {result}.")


def _fmt(value, pattern):
    return "–" if value is None else pattern.format(value)


def _dataset_line(facts: dict, meta: dict, seeds) -> str:
    name = f"`{facts['dataset']}`"
    if "canvas_size" in facts:
        size = facts["canvas_size"]
        clutter = ("no clutter" if facts["max_clutter"] == 0 else
                   f"{facts['min_clutter']}–{facts['max_clutter']} clutter fragments of "
                   f"{facts['fragment_size']}×{facts['fragment_size']}")
        name += f" ({size}×{size}, {clutter}; builder config `{facts['builder_config']}`)"
    examples = facts.get("train_examples")
    return (f"{name}: {examples if examples is not None else '?'} training images, batch "
            f"{meta['batch_size']}, seeds {', '.join(str(s) for s in seeds)}; "
            f"{meta['budget']}.")


def _machines(runs) -> dict[str, list[str]]:
    """CPU kind -> the runs ("variant seed N") trained on it; "not recorded" for runs
    recorded before runs carried their machine."""
    kinds: dict[str, list[str]] = {}
    for run in runs:
        kind = (run.get("machine") or {}).get("cpu", "not recorded")
        kinds.setdefault(kind, []).append(f"{run['variant']} seed {run['seed']}")
    return kinds


def markdown(record: dict) -> str:
    """The tables of `record` (`{"meta", "summary", "runs"}`): per dataset, accuracy
    paired against `plain` with the claim's verdict and the costs, then the localization
    of every map; the command and the machine (CPU model) at the top."""
    meta, rows, runs = record["meta"], record["summary"], record["runs"]
    lines = [f"Command: `{meta['command']}`", "",
             f"Machine: {_common.machine_line(meta['machine'])}.", "",
             f"Test accuracy: mean ± sd over seeds; \"− {BASELINE}\": the difference from "
             f"`{BASELINE}` paired by seed (same initialisation seed and data order), mean "
             "and 95% Student-t interval; claim: ≥ plain + 1 point (holds: the interval "
             "lies at or above +1 point; fails: below; else undecided). Train s: wall clock "
             "of training on this machine under the load above; CPU s: the whole run's "
             "process CPU time."]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        seeds = sorted({r["seed"] for r in runs if r["dataset"] == dataset})
        table = []
        for r in mine:
            p = r["vs_plain"]
            acc = _fmt(r["test_accuracy"], "{:.2%}")
            if r["seeds"] > 1:
                acc += f" ± {r['test_accuracy_sd']:.2%}"
            diff = "–" if p is None else f"{p['mean'] * 100:+.2f}"
            interval = ("–" if p is None or p["low"] is None
                        else f"[{p['low'] * 100:+.2f}, {p['high'] * 100:+.2f}]")
            won = "–" if p is None else f"{p['won']} / {p['lost']}"
            recipe = r["recipe"] + (f", {r['patch_size']}×{r['patch_size']} patches"
                                    if r.get("patch_size") else "")
            table.append([r["variant"], acc, diff, interval, won, r["claim"], recipe,
                          r["epochs"], f"{r['parameters']:,}",
                          f"{r['flops_per_image'] / 1e6:.1f}",
                          _fmt(r["ms_per_image"], "{:.3f}"), _fmt(r["train_seconds"], "{:.0f}"),
                          _fmt(r["cpu_seconds"], "{:.0f}"), r["primary_map"],
                          _fmt(r["localization_ratio"], "{:.2f}")])
        lines += ["", _dataset_line(meta["datasets"][dataset], meta, seeds), "",
                  _common.markdown_table(
                      ["variant", "test accuracy", f"− {BASELINE} (points)", "95% interval",
                       "won / lost", "≥ +1 point", "recipe", "epochs", "parameters",
                       "MFLOPs / image", "ms / image", "train s", "CPU s", "exported map",
                       "localization (× uniform)"], table),
                  "", overall_verdict(rows, dataset)]
        kinds = _machines(r for r in runs if r["dataset"] == dataset)
        if len(kinds) > 1:
            lines += ["", "Its runs trained on different machines, so train s and CPU s "
                      "compare only between runs of one machine: " + "; ".join(
                          f"{kind}: {', '.join(names)}" for kind, names in kinds.items()) + "."]
    mapped = [r for r in rows if r["maps"]]
    if mapped:
        lines += ["", "Localization of every map (share of the map's mass inside the object's "
                  "box / a uniform map's share; mean ± sd over seeds; * the exported map):", ""]
        table = []
        for r in mapped:
            for name, (mean, sd) in r["maps"].items():
                star = " *" if name == r["primary_map"] else ""
                cell = "–" if mean is None else (f"{mean:.2f}" + (f" ± {sd:.2f}"
                                                                  if r["seeds"] > 1 else ""))
                table.append([r["dataset"], r["variant"], name + star, cell])
        lines.append(_common.markdown_table(["dataset", "variant", "map",
                                             "localization (× uniform)"], table))
    return "\n".join(lines) + "\n"


def run_one(config: train.TrainConfig) -> dict:
    """Trains `config` (no export, 4 plots); returns its row (test and validation accuracy,
    costs, every map's localization)."""
    config = dataclasses.replace(config, export=False, plots=4,
                                 verbose=2 if not config.quick else 0)
    machine = _common.machine_info()
    cpu = time.process_time()
    result = train.run(config)
    cpu = time.process_time() - cpu
    metrics = result.metrics
    test = metrics["test"]
    maps = test.get("maps", {})
    return {
        "dataset": config.dataset,
        "variant": config.model.variant,
        "seed": config.seed,
        "epochs": metrics["epochs"],
        "recipe": metrics["recipe"]["name"],
        "patch_size_used": (metrics["model_config"]["patch_size"]
                            if config.model.variant == "vit" else None),
        "train_examples": metrics["train_examples"],
        "test_accuracy": test["accuracy"],
        "validation_accuracy": metrics["validation_accuracy"],
        # Whether the schedule ended on a plateau or still rising.
        "validation_by_epoch": [round(v, 4) for v in
                                metrics.get("history", {}).get("val_accuracy", [])],
        "parameters": metrics["parameters"],
        "flops_per_image": metrics["flops_per_image"],
        "ms_per_image": metrics["ms_per_image"],
        "ms_batch1": metrics["ms_batch1"],
        "train_seconds": result.train_seconds,
        "cpu_seconds": cpu,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        # Its own machine: a record resumed in later sessions mixes machines.
        "machine": {"cpu": _common.cpu_kind(machine), "started_utc": machine["started_utc"],
                    "load_average_at_start": machine["load_average_at_start"]},
        "primary_map": test["primary_map"],
        "localization_ratio": test.get("localization_ratio"),
        "attention_in_box": test.get("attention_in_box"),
        "uniform_in_box": test.get("uniform_in_box"),
        "maps": {name: m.get("localization_ratio") for name, m in maps.items()},
        "plots": test.get("plots", []),
    }


def _datasets() -> list[str]:
    if flags.FLAGS["datasets"].present or not flags.FLAGS.dataset:
        return list(flags.FLAGS.datasets)
    return [flags.FLAGS.dataset]


def main(argv):
    del argv
    variants = flags.FLAGS.variants
    unknown = sorted(set(variants) - set(model_lib.VARIANTS))
    if unknown:
        raise flags.ValidationError(f"--variants has unknown {unknown}; use {model_lib.VARIANTS}.")
    try:
        seeds = [int(s) for s in flags.FLAGS.seeds]
    except ValueError as err:
        raise flags.ValidationError(f"--seeds must be integers: {err}") from None
    if not seeds or not variants:
        raise flags.ValidationError("--seeds and --variants need at least one value each.")
    datasets = _datasets()
    if not datasets:
        raise flags.ValidationError("--datasets needs at least one dataset.")
    # The first dataset's config first: fields such as source_dir only pass with it.
    base = common_config.from_flags(train.TrainConfig,
                                    base=train.TrainConfig(dataset=datasets[0]))
    epochs_given = flags.FLAGS.epochs is not None or any(
        c.split("=", 1)[0].strip() == "epochs" for c in flags.FLAGS.config)
    try:
        configs = {d: dataclasses.replace(base, dataset=d) for d in datasets}
    except ValueError as err:
        raise flags.ValidationError(f"--datasets: {err}") from None
    if base.quick:
        budget = "--quick: 1 epoch on 4 batches"
    elif epochs_given:
        budget = f"{base.epochs} epochs for every variant (--epochs)"
    else:
        budget = (f"epochs per CNN that fit {BUDGET_SECONDS // 60} minutes of training on "
                  "two unloaded cores (`BUDGET_EPOCHS`); the ViT its own (`VIT_BUDGET`: "
                  "about 3x that, with larger patches and the `augmented` recipe)")
    meta = {
        "batch_size": base.batch_size,
        "seeds": seeds,
        "budget": budget,
        "budget_epochs": BUDGET_EPOCHS,
        "vit_budget": VIT_BUDGET,
        "step_cpu_ms": STEP_CPU_MS,
        "datasets": {d: dataset_facts(c) for d, c in configs.items()},
        "machine": _common.machine_info(),
        "command": " ".join(["python -m benchmarks.image_classification_ablation",
                             *sys.argv[1:]]),
        "train_config": dataclasses.asdict(base),
    }
    # What makes two runs comparable beyond their (dataset, variant, seed, epochs).
    meta["identity"] = {"train_config": {k: v for k, v in meta["train_config"].items()
                                         if k != "dataset"}}
    out_dir, name = flags.FLAGS.results_dir, flags.FLAGS.name
    recorded = (recorded_runs(os.path.join(out_dir, f"{name}.json"), flags.FLAGS.merge_from,
                              meta["identity"]) if flags.FLAGS.resume else [])
    # Recorded runs this command does not train or keep (other variants or seeds of its
    # datasets) stay in the record: a narrower command never drops them.
    carried = carried_runs(recorded, configs, seeds, variants)
    facts = recorded_datasets([os.path.join(out_dir, f"{name}.json"), *flags.FLAGS.merge_from])
    for dataset in dict.fromkeys(r["dataset"] for r in carried):
        meta["datasets"].setdefault(dataset, facts.get(dataset, {"dataset": dataset}))
    runs = []
    for dataset, config in configs.items():
        for seed in seeds:  # seed-major: an interrupted run still has whole pairs
            for variant in variants:
                epochs = budget_epochs(dataset, variant, base.epochs if epochs_given else None)
                planned = variant_config(config, variant, seed, epochs)
                key = planned_key(planned)
                run = next((r for r in recorded if _run_key(r) == key), None)
                if run is not None:
                    print(f"Kept the recorded run {dataset} {variant} seed {seed} "
                          f"({epochs} epochs)", flush=True)
                else:
                    run = run_one(dataclasses.replace(
                        planned, model_dir=os.path.join(flags.FLAGS.runs_dir,
                                                        f"{dataset}_{variant}_seed{seed}")))
                    run["requested_epochs"] = epochs  # --quick trains fewer
                    run["patch_size"] = key[-1]  # asked for (None: the app's default)
                    print(json.dumps({k: v for k, v in run.items()
                                      if k not in ("maps", "plots")}), flush=True)
                runs.append(run)
                meta["datasets"][dataset]["train_examples"] = run["train_examples"]
                record, table, paths = _write(meta, runs + carried, out_dir, name)
    meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    record, table, paths = _write(meta, runs + carried, out_dir, name)
    print(table)
    for line in record["verdicts"].values():
        print(line)
    print("Wrote", ", ".join(paths))


def _write(meta: dict, runs: list[dict], out_dir: str, name: str):
    """Writes the record and tables of `runs` so far (and the overlays of each dataset's
    first seed in the record, whichever seeds this command trains), in the order
    dataset, seed, variant (`model.VARIANTS`)."""
    order = list(meta["datasets"])
    runs = sorted(runs, key=lambda r: (order.index(r["dataset"]), r["seed"],
                                       model_lib.VARIANTS.index(r["variant"])))
    first_seed = {}
    for run in runs:
        first_seed.setdefault(run["dataset"], run["seed"])
    rows = summarize(runs)
    record = {"meta": meta, "summary": rows, "runs": runs,
              "verdicts": {d: overall_verdict(rows, d) for d in meta["datasets"]}}
    for run in runs:
        if (run["plots"] and run["seed"] == first_seed[run["dataset"]]
                and os.path.isfile(run["plots"][0])):
            maps_dir = os.path.join(out_dir, "image_classification_maps", run["dataset"])
            os.makedirs(maps_dir, exist_ok=True)
            shutil.copyfile(run["plots"][0], os.path.join(maps_dir, f"{run['variant']}.png"))
    table = markdown(record)
    return record, table, _common.write_results(name, record, table, out_dir=out_dir)

if __name__ == "__main__":
    define_flags()
    app.run(main)
