"""Translation variants at the same budget: BLEU, chrF, BLEU by source length, train time.

Trains `seq2seq` (no attention), `bahdanau`, `luong`, `luong_local` and
`transformer` on the embedded en->fr gettext corpus with the same epochs,
batch size, data order, seed and decoding (beam 4, length penalty 0.6), and
evaluates each on the test split with sacreBLEU (case-insensitive BLEU and
chrF). Writes

    benchmarks/results/translation_variants.json   every run, with its metrics
    benchmarks/results/translation_variants.md     the table and the two targets
    benchmarks/results/translation_bleu_by_length.png   BLEU per source-length third

The plot is the shape of Bahdanau et al. (2015), Fig. 2: without attention,
quality falls as sentences grow; with attention much less. Targets checked:
bahdanau BLEU >= seq2seq BLEU + 5, and on the longest third the attention
model's drop (short-third BLEU - long-third BLEU) is at most half the baseline's.

Usage:
    python -m benchmarks.translation_variants                  # all variants, 8 epochs
    python -m benchmarks.translation_variants --variants=seq2seq,bahdanau
    python -m benchmarks.translation_variants --epochs=20 --seed=1
    python -m benchmarks.translation_variants --quick          # pipeline check
    python -m benchmarks.translation_variants --rescore        # re-score earlier runs
    python -m benchmarks.translation_variants --config=model.units=128   # every variant

The common flags (`--epochs`, `--seed`, `--batch_size`, `--dataset`,
`--data_dir`, `--quick`, `--config=KEY=VALUE`; apps/common/flags.py) set the
`TrainConfig` of every variant, as they do for `python -m apps.translation.train`;
each variant runs in `--runs_dir/<variant>` and is not exported. The
benchmark's own flags (`--variants`, `--results_dir`, `--runs_dir`,
`--rescore`) are defined only when it runs as a program, so importing this
module (tests, other benchmarks) defines no flag.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import time

from absl import app, flags

from apps.common import config as common_config
from apps.common import flags as common_flags
from apps.translation import evaluation, train
from apps.translation import model as model_lib

NAME = "translation_variants"
BASELINE, ATTENTION = "seq2seq", "bahdanau"


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def targets(results: dict) -> dict:
    """The two targets of the issue, from the runs of seq2seq and bahdanau (None if absent)."""
    if BASELINE not in results or ATTENTION not in results:
        return {}
    base, att = results[BASELINE], results[ATTENTION]
    gain = att["bleu"] - base["bleu"]

    def drop(run):
        return run["bleu_by_length"]["short"]["bleu"] - run["bleu_by_length"]["long"]["bleu"]

    base_drop, att_drop = drop(base), drop(att)

    def relative(run):
        short = run["bleu_by_length"]["short"]["bleu"]
        return (short - run["bleu_by_length"]["long"]["bleu"]) / short if short else None

    return {
        "bleu_gain": gain,
        "bleu_gain_target": 5.0,
        "bleu_gain_met": gain >= 5.0,
        "long_drop_baseline": base_drop,
        "long_drop_attention": att_drop,
        "long_drop_relative_baseline": relative(base),
        "long_drop_relative_attention": relative(att),
        # As the issue states it: the attention model's drop <= half the baseline's.
        "long_drop_met": att_drop <= 0.5 * base_drop,
    }


def markdown(results: dict, checks: dict, meta: dict) -> str:
    lines = [
        "# Translation variants (en->fr, gettext catalogues)",
        "",
        f"Same budget for every variant: {meta['epochs']} epochs, batch "
        f"{meta['batch_size']}, seed {meta['seed']}; beam {meta['beam_width']}, length "
        f"penalty {meta['length_penalty']}. sacreBLEU, case-insensitive "
        f"(`{meta.get('bleu_signature', '')}`). Test split: {meta.get('test_pairs')} pairs. "
        f"Machine: {meta['machine']}, load average at start {meta['load_start']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        "| variant | BLEU | chrF | BLEU, [UNK] kept | BLEU short | BLEU middle | BLEU long "
        "| params | train s | train CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, run in results.items():
        t = run["bleu_by_length"]
        lines.append(
            f"| {variant} | {run['bleu']:.2f} | {run['chrf']:.2f} | "
            f"{run['bleu_without_unk_replace']:.2f} | {t['short']['bleu']:.2f} | "
            f"{t['middle']['bleu']:.2f} | {t['long']['bleu']:.2f} | {run['parameters']:,} | "
            f"{run['train_seconds']:.0f} | {run['train_cpu_seconds']:.0f} |"
        )
    if results:
        bins = next(iter(results.values()))["bleu_by_length_bins"]
        lines += ["", "BLEU by source length (tokens; sentences in brackets):", "",
                  "| variant | " + " | ".join(
                      f"{b['source_tokens'][0]}-{b['source_tokens'][1]} ({b['sentences']})"
                      if b["source_tokens"][1] < 1000 else
                      f"{b['source_tokens'][0]}+ ({b['sentences']})" for b in bins) + " |",
                  "|---|" + "---|" * len(bins)]
        for variant, run in results.items():
            lines.append(f"| {variant} | " + " | ".join(
                f"{b['bleu']:.2f}" for b in run["bleu_by_length_bins"]) + " |")
        thirds = next(iter(results.values()))["bleu_by_length"]
        lines += ["", "Thirds by source length (tokens): " + ", ".join(
            f"{k} {v['source_tokens'][0]}-{v['source_tokens'][1]} ({v['sentences']} sentences)"
            for k, v in thirds.items())]
    if checks:
        lines += [
            "",
            f"- bahdanau - seq2seq BLEU: {checks['bleu_gain']:+.2f} (target >= +5): "
            f"{'met' if checks['bleu_gain_met'] else 'NOT met'}",
            f"- BLEU drop short -> long third: seq2seq {checks['long_drop_baseline']:.2f}, "
            f"bahdanau {checks['long_drop_attention']:.2f} (target: at most half the "
            f"baseline's): {'met' if checks['long_drop_met'] else 'NOT met'}",
        ]
    return "\n".join(lines) + "\n"


def rescore(run_dir: str) -> dict:
    """Metrics of an earlier run recomputed from its translations.tsv (and metrics.json)."""
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "translations.tsv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sources = [r["source"] for r in rows]
    references = [r["reference"] for r in rows]
    hypotheses = [r["translation"] or "" for r in rows]
    raw = [r.get("model_output") or "" for r in rows]
    scores = evaluation.corpus_scores(hypotheses, references)
    raw_scores = evaluation.corpus_scores(raw, references)
    metrics.update({
        "bleu": scores["bleu"], "chrf": scores["chrf"],
        "bleu_without_unk_replace": raw_scores["bleu"],
        "chrf_without_unk_replace": raw_scores["chrf"],
        "bleu_by_length": evaluation.bleu_by_length(sources, hypotheses, references),
        "bleu_by_length_bins": evaluation.bleu_by_length_bins(sources, hypotheses, references),
        "signatures": {k: v for k, v in scores.items() if k.endswith("signature")},
    })
    metrics.setdefault("wall_seconds", None)
    metrics.setdefault("load_after", None)
    return metrics


def define_flags() -> None:
    """The benchmark's own flags (when it runs as a program; the common ones are shared)."""
    flags.DEFINE_list("variants", list(model_lib.VARIANTS),
                      "Variants to train, at the same budget.")
    flags.register_validator(
        "variants", lambda names: bool(names) and set(names) <= set(model_lib.VARIANTS),
        message=f"--variants: pick one or more of {list(model_lib.VARIANTS)}.")
    flags.DEFINE_string("results_dir", os.path.join("benchmarks", "results"),
                        "Where the JSON, markdown and PNG go.")
    flags.DEFINE_string("runs_dir", os.path.join("runs", "translation_variants"),
                        "Run directories (logs, plots, translations), one per variant.")
    flags.DEFINE_bool("rescore", False, "Do not train: re-score the translations.tsv and "
                      "metrics.json that earlier runs left in --runs_dir (e.g. after a change "
                      "of metrics).")


def base_config() -> train.TrainConfig:
    """The TrainConfig every variant starts from: the common flags and --config applied.

    The UI strings only (`gettext_translations/fr`), 8 passes over them, as this
    benchmark has always run (the app's default since issue 17 joins the long
    corpus and counts its budget in steps); the vocabulary is the app's default
    (subword; `--config=vocabulary=word` for the word vocabulary of the results in
    README before issue 17). For BLEU by source length on the long corpus, see
    benchmarks/translation_by_length.py.
    """
    base = train.TrainConfig(dataset="gettext_translations/fr", epochs=8, steps_per_epoch=None,
                             export_dir=None, verbose=2)
    return common_config.from_flags(train.TrainConfig, base=base)


_KEPT = ("bleu", "chrf", "bleu_without_unk_replace", "chrf_without_unk_replace",
         "bleu_by_length", "bleu_by_length_bins", "train_seconds", "train_cpu_seconds",
         "wall_seconds", "parameters", "final_loss", "pairs", "signatures", "epochs",
         "load_after")


def run_variants(variants, base: train.TrainConfig, results_dir: str, runs_dir: str,
                 rescore_only: bool = False, command: str = "") -> dict:
    """Trains (or re-scores) each variant from `base`; writes the JSON, markdown and plot."""
    os.makedirs(results_dir, exist_ok=True)
    meta = {
        "epochs": base.epochs, "seed": base.seed, "dataset": base.dataset_name,
        "batch_size": base.batch_size, "beam_width": base.beam_width,
        "length_penalty": base.length_penalty,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_start": _load(), "quick": base.quick, "command": command,
    }
    results = {}
    for variant in variants:
        config = dataclasses.replace(
            base, model=dataclasses.replace(base.model, variant=variant),
            model_dir=os.path.join(runs_dir, variant), export_dir=None,
        )
        if rescore_only:
            metrics = rescore(config.model_dir)
        else:
            start = time.perf_counter()
            result = train.run(config)
            print(result.line, flush=True)
            metrics = result.record()
            metrics["wall_seconds"] = time.perf_counter() - start
            metrics["load_after"] = _load()
        results[variant] = {k: metrics[k] for k in _KEPT}
        meta["bleu_signature"] = metrics["signatures"].get("bleu_signature", "")
        meta["test_pairs"] = metrics["pairs"]["test"]
        # Written after every variant, so a long benchmark leaves partial results.
        checks = targets(results)
        with open(os.path.join(results_dir, f"{NAME}.json"), "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "results": results, "targets": checks}, f, indent=2)
        with open(os.path.join(results_dir, f"{NAME}.md"), "w", encoding="utf-8") as f:
            f.write(markdown(results, checks, meta))
    shown = [v for v in ("seq2seq", "bahdanau", "transformer") if v in results] or list(results)
    evaluation.plot_bleu_by_length(
        {v: results[v]["bleu_by_length"] for v in shown},
        os.path.join(results_dir, "translation_bleu_by_length.png"),
        title="en->fr test BLEU by source length (cf. Bahdanau et al. 2015, Fig. 2)",
        bins_by_variant={v: results[v]["bleu_by_length_bins"] for v in shown},
    )
    return {"meta": meta, "results": results, "targets": targets(results)}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    base = base_config()
    command = " ".join(
        ["python -m benchmarks.translation_variants", f"--variants={','.join(f.variants)}",
         f"--epochs={base.epochs}", f"--seed={base.seed}"]
        + [f"--config={c}" for c in common_flags.CONFIG.value or []]
        + (["--quick"] if base.quick else []) + (["--rescore"] if f.rescore else []))
    record = run_variants(f.variants, base, f.results_dir, f.runs_dir, f.rescore, command)
    print(markdown(record["results"], record["targets"], record["meta"]))


if __name__ == "__main__":
    define_flags()
    app.run(main)
