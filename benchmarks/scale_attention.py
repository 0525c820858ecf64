"""Attention to scale vs average and max over scales: mask IoU on cluttered canvases.

Trains `apps.image_classification.segmentation`'s multi-scale mask network
(scales 1, 0.75, 0.5, shared weights) with each merge (`attention`:
`ScaleAttention`; `average`; `max`) at the same budget (epochs, batch size,
training canvases, learning rate, extra supervision) and the same seeds (a seed
fixes the initialisation and the data order), on `cluttered_fashion_mnist` by
default, and writes

    benchmarks/results/scale_attention.json   every run
    benchmarks/results/scale_attention.md     the table

Columns: test mask IoU (mean over seeds ± standard deviation), the difference
from `average` paired by seed with its 95% Student-t interval (over seeds;
needs 2 or more), seeds won / lost against `average`, parameters, training
seconds, and the mean weight each merge gives each scale on the test canvases.

Usage:
    python -m benchmarks.scale_attention                         # 3 seeds, 3 merges
    python -m benchmarks.scale_attention --seeds=1,2,3,4,5 --epochs=6
    python -m benchmarks.scale_attention --dataset=cluttered_digits
    python -m benchmarks.scale_attention --train_examples=0      # every training canvas
    python -m benchmarks.scale_attention --segmentation=widths=16,32,32 \\
        --segmentation=extra_supervision=false
    python -m benchmarks.scale_attention --quick --seeds=1       # a smoke run (seconds)
    python -m benchmarks.scale_attention --seeds=1,2,3,4,5       # trains seeds 4 and 5 only

The record is rewritten after every run; a rerun keeps the recorded runs of the
same settings (data, epochs, batch size, `SegmentationConfig`) and trains the
missing ones (`--noresume`: all).

The common flags (`--dataset`, `--data_dir`, `--epochs`, `--batch_size`,
`--quick`, `--config=KEY=VALUE` for the canvas fields) set the data as for the
image app's `train.py`; `--segmentation=KEY=VALUE` sets any field of
`SegmentationConfig` but `merge`.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time

from absl import app, flags

from apps.common import config as common_config
from apps.image_classification import pipeline, train
from apps.image_classification import segmentation as seg
from benchmarks import _common

NAME = "scale_attention"
BASELINE = "average"
DEFAULT_EPOCHS = 5
DEFAULT_TRAIN_EXAMPLES = 8_000


def define_flags() -> None:
    """The benchmark's own flags (those not already defined by an imported module)."""
    own = [
        (flags.DEFINE_list, "merges", list(seg.MERGES), "Merges over scales to train."),
        (flags.DEFINE_list, "seeds", ["1", "2", "3"], "Seeds (weights and data order)."),
        (flags.DEFINE_integer, "train_examples", DEFAULT_TRAIN_EXAMPLES,
         "Training canvases used (the first ones; 0: all)."),
        (flags.DEFINE_multi_string, "segmentation", [],
         "KEY=VALUE for a SegmentationConfig field (widths, hidden_units, ...)."),
        (flags.DEFINE_string, "results_dir", _common.RESULTS_DIR, "Where the JSON and MD go."),
        (flags.DEFINE_bool, "resume", True,
         "Keep the runs already in <results_dir>/scale_attention.json that were trained with "
         "the same settings and train only the missing (merge, seed) runs; the record is "
         "rewritten after each run."),
    ]
    for define, name, default, help_text in own:
        if name not in flags.FLAGS:
            define(name, default, help_text)


def paired(runs: list[dict], merge: str, baseline: str = BASELINE) -> dict | None:
    """`merge`'s test IoU minus `baseline`'s over the seeds both ran: mean, 95% t interval
    (None with one seed), won / tied / lost, and the differences
    (`_common.paired_by_seed`)."""
    return _common.paired_by_seed(runs, "merge", merge, baseline, "test_iou")


def summarize(runs: list[dict]) -> list[dict]:
    """One row per merge: mean (sd) test IoU over seeds, the paired comparison, costs."""
    rows = []
    for merge in dict.fromkeys(r["merge"] for r in runs):
        mine = [r for r in runs if r["merge"] == merge]
        ious = [r["test_iou"] for r in mine]
        weights = [statistics.fmean(w) for w in zip(*(r["scale_weights"] for r in mine),
                                                    strict=True)]
        rows.append({
            "merge": merge, "seeds": len(mine), "test_iou": statistics.fmean(ious),
            "test_iou_sd": statistics.stdev(ious) if len(ious) > 1 else 0.0,
            "vs_average": None if merge == BASELINE else paired(runs, merge),
            "parameters": mine[0]["parameters"],
            "train_seconds": statistics.fmean(r["train_seconds"] for r in mine),
            "scale_weights": weights,
        })
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    scales = ", ".join(str(s) for s in meta["segmentation"]["scales"])
    header = (f"Mask IoU on `{meta['dataset']}` ({meta['train_examples']} training canvases, "
              f"{meta['epochs']} epochs, batch {meta['batch_size']}, scales {scales}, seeds "
              f"{', '.join(str(s) for s in meta['seeds'])}); "
              f"{_common.machine_line(meta['machine'])}.")
    table = []
    for r in rows:
        p = r["vs_average"]
        if p is None:
            diff, interval, record = "–", "–", "–"
        else:
            diff = f"{p['mean']:+.4f}"
            interval = "–" if p["low"] is None else f"[{p['low']:+.4f}, {p['high']:+.4f}]"
            record = f"{p['won']} / {p['lost']}"
        table.append([r["merge"], f"{r['test_iou']:.4f} ± {r['test_iou_sd']:.4f}", diff,
                      interval, record, f"{r['parameters']:,}", f"{r['train_seconds']:.0f}",
                      " / ".join(f"{w:.2f}" for w in r["scale_weights"])])
    return "\n".join([header, "", _common.markdown_table(
        ["merge", "test IoU (mean ± sd)", "− average (paired)", "95% interval",
         "won / lost", "parameters", "train s", f"mean weight of scales {scales}"], table),
        "", f"Command: `{meta['command']}`", ""])


def main(argv):
    del argv
    merges = flags.FLAGS.merges
    unknown = sorted(set(merges) - set(seg.MERGES))
    if unknown:
        raise flags.ValidationError(f"--merges has unknown {unknown}; use {seg.MERGES}.")
    try:
        seeds = [int(s) for s in flags.FLAGS.seeds]
    except ValueError as err:
        raise flags.ValidationError(f"--seeds must be integers: {err}") from None
    data = common_config.from_flags(
        train.TrainConfig, base=train.TrainConfig(dataset="cluttered_fashion_mnist",
                                                  epochs=DEFAULT_EPOCHS))
    model = common_config.apply_overrides(seg.SegmentationConfig(),
                                          flags.FLAGS.segmentation or [])
    config = data.dataset_config()
    if config is not None and config.clutter_covers_digit:
        raise flags.ValidationError("The masks need clutter off the object's box "
                                    "(--config=clutter_covers_digit=false).")
    take = 4 * data.batch_size if data.quick else (flags.FLAGS.train_examples or None)
    sources = {"source_csv": data.source_csv, "source_dir": data.source_dir}
    splits = pipeline.load_splits(data.dataset, data.data_dir, config=config,
                                  builder_kwargs={k: v for k, v in sources.items() if v} or None)
    if take:
        # (Cached again: the split's own cache is discarded when it is not read to the end.)
        splits = dataclasses.replace(splits, train=splits.train.take(take).cache(),
                                     train_examples=min(take, splits.train_examples))
        if data.quick:
            splits = dataclasses.replace(splits, validation=splits.validation.take(take),
                                         test=splits.test.take(take))
    epochs = 1 if data.quick else data.epochs
    meta = {
        "dataset": data.dataset, "train_examples": splits.train_examples, "epochs": epochs,
        "batch_size": data.batch_size, "seeds": seeds,
        "segmentation": dataclasses.asdict(model), "machine": _common.machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(["python -m benchmarks.scale_attention", *sys.argv[1:]]),
    }
    # What makes two runs comparable beyond their (merge, seed).
    meta["identity"] = {k: meta[k] for k in ("dataset", "train_examples", "epochs",
                                             "batch_size", "segmentation")}
    out_dir = flags.FLAGS.results_dir
    recorded = (_common.recorded_runs(os.path.join(out_dir, f"{NAME}.json"), meta["identity"])
                if flags.FLAGS.resume else [])
    runs = []
    for seed in seeds:  # seed-major: an interrupted run still has whole pairs
        for merge in merges:
            run = next((r for r in recorded if (r["merge"], r["seed"]) == (merge, seed)), None)
            if run is not None:
                print(f"Kept the recorded run {merge} seed {seed}", flush=True)
            else:
                result = seg.train_and_score(dataclasses.replace(model, merge=merge), splits,
                                             epochs=epochs, batch_size=data.batch_size,
                                             seed=seed, verbose=2 if not data.quick else 0)
                run = {"merge": merge, "seed": seed, **result}
                print(f"{merge} seed {seed}: test IoU {result['test_iou']:.4f}, "
                      f"{result['train_seconds']:.0f} s, scale weights "
                      f"{[round(w, 3) for w in result['scale_weights']]}", flush=True)
            runs.append(run)
            table, paths = _write(meta, runs, out_dir)
    meta["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    table, paths = _write(meta, runs, out_dir)
    print(table)
    print("Wrote", ", ".join(paths))


def _write(meta: dict, runs: list[dict], out_dir: str):
    """Writes the record and table of the runs so far; returns the table and the paths."""
    rows = summarize(runs)
    table = markdown(rows, meta)
    return table, _common.write_results(NAME, {"meta": meta, "summary": rows, "runs": runs},
                                        table, out_dir=out_dir)

if __name__ == "__main__":
    define_flags()
    app.run(main)
