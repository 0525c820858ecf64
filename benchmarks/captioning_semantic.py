"""Semantic attention captioning (You et al. 2016) against the current decoder, same budget.

Trains the captioning app twice on `emoji_scenes` with the same epochs, data,
data order, seed and decoding (beam 3): `soft_attention` (the current decoder:
spatial attention, `attend_from=current`) and `semantic_attention` (the same
decoder with the attribute predictor and input / output attention over the
top-k predicted attributes; `apps/captioning/semantic.py`). Both are scored on
the test split (object pairs never seen together in training):

- BLEU-1..4 (sacreBLEU, all references), exact match, spatial attention
  correctness (× uniform), train time;
- for `semantic_attention`: at every step that emits a noun (the last word
  of an object name: "dog", "apple" of "red apple"), the share of the
  attribute attention on that noun's attribute (0 when the noun is not among
  the top-k): the mean over steps and the share of steps with at least 0.5,
  for the output attention (queried by h_t, it feeds the word's prediction:
  the one the check is about) and the input attention (queried by the
  previous word, "the", which cannot know the noun); the same over every
  attribute word; and the recall of the images' object words in the top-k.

Targets (issue 20): BLEU-4 of `semantic_attention` >= that of `soft_attention`;
the output attribute attention at a noun's step puts >= 50% of its mass on
that noun's attribute (checked on the mean over steps; the share of steps
>= 0.5 is reported beside it).

Writes `benchmarks/results/captioning_semantic.json` and `.md`
(`benchmarks._common.write_results`), after each variant.

Usage (or `python benchmarks/captioning_semantic.py ...`):
    python -m benchmarks.captioning_semantic                # 10 epochs each, seed 42
    python -m benchmarks.captioning_semantic --epochs=3 --seed=1
    python -m benchmarks.captioning_semantic --config=model.attribute_top_k=8
    # the output attention queried by [h_t; ẑ_t] rather than h_t (You et al.'s):
    python -m benchmarks.captioning_semantic --config=model.attribute_query=hidden_and_context

The common flags (`--epochs`, `--seed`, `--batch_size`, `--data_dir`,
`--quick`, `--config=KEY=VALUE`; apps/common/flags.py) set the `TrainConfig`
of both runs, as for `python -m apps.captioning.train`. Each run goes to
`--runs_dir/<variant>` and is not exported.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import app, flags

# `python benchmarks/captioning_semantic.py` as well as `python -m benchmarks.captioning_semantic`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.captioning import train  # noqa: E402
from apps.common import config as common_config  # noqa: E402
from benchmarks import _common  # noqa: E402

NAME = "captioning_semantic"
BASELINE, SEMANTIC = "soft_attention", "semantic_attention"
VARIANTS = (BASELINE, SEMANTIC)


def define_flags() -> None:
    """The benchmark's own flags (only when it runs as a program)."""
    flags.DEFINE_string("results_dir", _common.RESULTS_DIR, "Where the JSON and markdown go.")
    flags.DEFINE_string("runs_dir", os.path.join("runs", NAME),
                        "Run directories (metrics.json, plots, logs), one per variant.")


def base_config() -> train.TrainConfig:
    """The TrainConfig both runs start from: the common flags and --config applied."""
    return common_config.from_flags(
        train.TrainConfig, base=train.TrainConfig(export_dir=None, verbose=2))


def _kept(result, seconds: float) -> dict:
    metrics = result.metrics
    test = metrics["test"]
    out = {
        **{f"bleu{n}": test[f"bleu{n}"] for n in range(1, 5)},
        "exact_match": test["exact_match"],
        "spatial_attention_ratio": test["attention_correctness"]["ratio"],
        "objects_named": test["attention_correctness"]["objects_named"],
        "test_images": test["images"],
        "params": metrics["params"],
        "epochs": metrics["epochs"],
        "train_seconds": result.train_seconds,
        "train_cpu_seconds": metrics["train_cpu_seconds"],
        "wall_seconds": seconds,
        "final_val_masked_accuracy": (metrics["history"].get("val_masked_accuracy") or [None])[-1],
    }
    if "attribute_attention" in test:
        out["attribute_attention"] = test["attribute_attention"]
        out["attribute_recall"] = test["attribute_recall"]
        out["attributes"] = metrics["attributes"]
        out["top_k"] = metrics["config"]["attribute_top_k"]
    return out


def checks(results: dict) -> dict:
    """The two targets, from what has run (a missing run leaves its check out)."""
    out = {}
    if BASELINE in results and SEMANTIC in results:
        gain = results[SEMANTIC]["bleu4"] - results[BASELINE]["bleu4"]
        out["bleu4_gain"] = gain
        out["bleu4_met"] = gain >= 0
    if SEMANTIC in results:
        nouns = results[SEMANTIC]["attribute_attention"]["output_nouns"]
        out["noun_attribute_mass"] = nouns["mean_mass"]
        out["noun_steps_at_least_half"] = nouns["share_at_least_half"]
        out["noun_steps"] = nouns["steps"]
        out["noun_attribute_mass_met"] = nouns["mean_mass"] >= 0.5
    return out


def markdown(results: dict, record: dict) -> str:
    meta, found = record["meta"], record["checks"]
    lines = [
        "# Captioning: semantic attention (You et al. 2016) vs the current decoder",
        "",
        f"Same budget for both: {meta['epochs']} epochs, batch {meta['batch_size']}, seed "
        f"{meta['seed']}, beam {meta['beam_width']}, dataset {meta['dataset']}"
        f"{' (--quick)' if meta['quick'] else ''}; scored on the test split (object pairs "
        "never seen together in training).",
        "",
        f"Machine: {_common.machine_line(record['machine'])}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| variant | BLEU-1 | BLEU-4 | exact | objects named | spatial attention × uniform "
        "| params | train s | train CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, run in results.items():
        lines.append(
            f"| {variant} | {run['bleu1']:.3f} | {run['bleu4']:.3f} | {run['exact_match']:.1%} "
            f"| {run['objects_named']:.0%} | {run['spatial_attention_ratio']:.1f}× "
            f"| {run['params']:,} | {run['train_seconds']:.0f} | {run['train_cpu_seconds']:.0f} |")
    if SEMANTIC in results:
        run = results[SEMANTIC]
        lines += [
            "",
            f"Attribute attention of `{SEMANTIC}` (top-{run['top_k']} of "
            f"{len(run['attributes'])} attributes; recall of the images' object words in the "
            f"top-{run['top_k']}: {run['attribute_recall']:.1%}). At each step that emits a "
            "word, the attention mass on that word's attribute:",
            "",
            "| attention | steps scored | words | mean mass | steps with >= 0.5 | word in top-k |",
            "|---|---|---|---|---|---|",
        ]
        for key, scores in run["attribute_attention"].items():
            which, kind = key.split("_")
            words = "nouns" if kind == "nouns" else "all attributes"
            lines.append(
                f"| {which} | {scores['steps']} | {words}"
                f" | {scores['mean_mass']:.3f} | {scores['share_at_least_half']:.1%} "
                f"| {scores['in_top_k']:.1%} |")
    lines.append("")
    if "bleu4_gain" in found:
        lines.append(f"- BLEU-4 {SEMANTIC} − {BASELINE}: {found['bleu4_gain']:+.3f} "
                     f"(target >= 0): {'met' if found['bleu4_met'] else 'NOT met'}")
    if "noun_attribute_mass" in found:
        lines.append(
            f"- Output attribute attention at a noun's step, on that noun's attribute: mean "
            f"{found['noun_attribute_mass']:.3f} over {found['noun_steps']} steps, "
            f"{found['noun_steps_at_least_half']:.1%} of the steps >= 0.5 (target: >= 0.5): "
            f"{'met' if found['noun_attribute_mass_met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


def run_benchmark(base: train.TrainConfig, results_dir: str, runs_dir: str,
                  command: str = "", variants=VARIANTS) -> dict:
    """Trains and scores each variant from `base`; writes the JSON and markdown after each."""
    record = {
        "meta": {"epochs": base.epochs, "batch_size": base.batch_size, "seed": base.seed,
                 "beam_width": base.beam_width, "dataset": base.dataset, "quick": base.quick,
                 "command": command, "model": dataclasses.asdict(base.model)},
        "machine": _common.machine_info(),
        "results": {},
    }
    for variant in variants:
        config = dataclasses.replace(
            base, model=dataclasses.replace(base.model, variant=variant),
            model_dir=os.path.join(runs_dir, variant), export_dir=None)
        start = time.perf_counter()
        result = train.run(config)
        print(train.results_line(result), flush=True)
        record["results"][variant] = _kept(result, time.perf_counter() - start)
        record["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        record["checks"] = checks(record["results"])
        _common.write_results(NAME, record, markdown(record["results"], record), results_dir)
    return record


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    command = " ".join(["python -m benchmarks.captioning_semantic", *sys.argv[1:]])
    record = run_benchmark(base_config(), flags.FLAGS.results_dir, flags.FLAGS.runs_dir,
                           command)
    print(markdown(record["results"], record))


if __name__ == "__main__":
    define_flags()
    app.run(main)
