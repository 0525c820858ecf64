"""How many speech-embedding heads, trained how long, for the default keyword spotter's product.

The default export answers with the weighted product of `attention_rnn` and a model on a
fixed speech embedding pretrained on real speech, whose small head is the only part of it
that trains (`train.fit_embedding_head`). The head's training is noisy: heads trained
again on the same features, joined with the same `attention_rnn`, moved the product on
the unseen synthetic voices by up to 0.9 points. This benchmark takes runs the app has
trained, keeps each run's own `attention_rnn` (its probabilities from the members cache
of `keyword_spotting_members`), computes the speech embedding's training features of the
run's seed once (`train.embedding_training_features`), and trains each arm's heads on
them (`train.fit_heads`), `embedding_heads` heads of `embedding_epochs` epochs each
(their mean answering: `model.ModelConfig.embedding_heads`); every arm is joined with the
run's `attention_rnn` at the run's embedding exponent and scored on the validation voices,
the unseen test voices, the same through a telephone line, Asterisk's real IVR prompts and
the PocketSphinx words (`keyword_spotting_members.score`). `--kws_heads_exponent` joins
at another exponent than the run's (runs from before the 0.5 default recorded 1). An
arm's `draw` changes only the seed of its heads, to show how far one configuration's heads
scatter.

Usage (from the repository root; runs of `python -m apps.keyword_spotting.train --seed=S
--model_dir=DIR --export_dir=DIR/export`):

    python -m benchmarks.keyword_spotting_heads --kws_heads_runs=DIR1,DIR2,DIR3 \\
        --kws_heads_arms='embedding_heads=1;embedding_epochs=20,embedding_heads=2;embedding_epochs=10'

Writes benchmarks/results/keyword_spotting_heads.{json,md} (`--kws_heads_out`: another
base name).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks import _common
from benchmarks import keyword_spotting_members as members

NAME = "keyword_spotting_heads"
DEFAULT_ARMS = ("embedding_heads=1;embedding_epochs=20",
                "embedding_heads=1;embedding_epochs=20;draw=1",
                "embedding_heads=2;embedding_epochs=10")
ARM_FIELDS = ("embedding_heads", "embedding_epochs", "draw")

_RUNS = flags.DEFINE_list("kws_heads_runs", [], "Run directories of the app (each trained with "
                          "the default embedding_ensemble).")
_ARMS = flags.DEFINE_list("kws_heads_arms", list(DEFAULT_ARMS), "Arms: "
                          "`embedding_heads=K;embedding_epochs=E[;draw=D]`, comma-separated.")
_EXPONENT = flags.DEFINE_float("kws_heads_exponent", None, "The speech embedding's exponent "
                               "in the product (default: the one each run recorded; runs "
                               "from before the 0.5 default recorded 1).")
_DATA_DIR = flags.DEFINE_string("kws_heads_data_dir", None, "Dataset cache (default: shared).")
_OUT = flags.DEFINE_string("kws_heads_out", NAME, "Base name of the result files under "
                           "benchmarks/results.")


def parse_arms(texts) -> list[dict]:
    """The arms, each `{"embedding_heads", "embedding_epochs", "draw"}`; a ValueError names
    a field that is not one of them or a value that is not a positive count."""
    arms = []
    for text in texts:
        arm = {"draw": 0, **_common.parse_arm(text)}
        unknown = set(arm) - set(ARM_FIELDS)
        if unknown or len(arm) != len(ARM_FIELDS):
            raise ValueError(f"--kws_heads_arms: {text!r} must set embedding_heads and "
                             f"embedding_epochs (and, if any, draw); unknown: {sorted(unknown)}")
        for key in ARM_FIELDS:
            value, least = arm[key], 0 if key == "draw" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"--kws_heads_arms: {key} must be a positive whole number "
                                 f"(draw: 0 or more). Received: {text!r}")
        arms.append(arm)
    return arms


def label(arm: dict) -> str:
    heads = arm["embedding_heads"]
    text = (f"{heads} head{'s' if heads > 1 else ''} x {arm['embedding_epochs']} epochs")
    return text + (f" (draw {arm['draw']})" if arm["draw"] else "")


def with_embedding(data: dict, probabilities: dict) -> dict:
    """The run's cached member probabilities with the speech embedding's replaced (speed 1)."""
    embedding = str(data["members"][1])
    out = dict(data)
    for set_name, p in probabilities.items():
        out[f"{set_name}/{embedding}/1"] = p
    return out


def run_arms(run_dir: str, arms: list[dict], sets: dict, groups, data_dir=None,
             exponent: float | None = None) -> list[dict]:
    """Every arm's heads trained on `run_dir`'s features and scored joined with its
    `attention_rnn` at the embedding's `exponent` (None: the one the run recorded): one dict
    per arm (the arm, `train_seconds` of its heads, `alone`: the
    heads' own test accuracy, and `keyword_spotting_members.score`'s accuracies)."""
    from apps.common import strategy as common_strategy
    from apps.common import training
    from apps.keyword_spotting import pipeline, train
    from apps.keyword_spotting.model import build_model
    from benchmarks.keyword_spotting_real import run_model_config

    data = members.probabilities_of(run_dir, data_dir, sets)
    metrics = data["metrics"]
    recorded = run_model_config(metrics)
    seed = recorded.seed
    model_config = dataclasses.replace(recorded, variant="speech_embedding", embedding_heads=1)
    if exponent is None:
        exponent = metrics.get("embedding_exponent") or 1.0
    splits = pipeline.load_splits("synthetic_speech_commands", data_dir, train.DEFAULT_CORPUS)
    strategy = common_strategy.get_strategy("default")
    with tempfile.TemporaryDirectory() as tmp:
        config = train.TrainConfig(seed=seed, model_dir=tmp, export_dir=None, backup=False,
                                   data_dir=data_dir)
        features = build_model(model_config, cache_dir=data_dir)
        x, y, validation = train.embedding_training_features(features, splits, config)
        out = []
        for arm in arms:
            training.set_seed(seed + 1000 * arm["draw"])
            spotter = build_model(
                dataclasses.replace(model_config, embedding_heads=arm["embedding_heads"],
                                    seed=seed + 1000 * arm["draw"]), cache_dir=data_dir)
            start = time.perf_counter()
            train.fit_heads(spotter, x, y, validation, dataclasses.replace(
                config, embedding_epochs=arm["embedding_epochs"]), strategy)
            seconds = time.perf_counter() - start
            probabilities = members.member_probabilities(
                {"speech_embedding": spotter.explainer}, sets, [1.0])
            joined = with_embedding(data, {s: probabilities[f"{s}/speech_embedding/1"]
                                           for s in sets})
            alone = float((probabilities["test/speech_embedding/1"].argmax(-1)
                           == data["test/label"]).mean())
            scores = members.score(joined, exponent, (1.0,), groups)
            print(f"[{NAME}] {run_dir} {label(arm)}: {seconds:.0f} s, alone {alone:.2%}, "
                  f"joined {scores['test']:.2%} (validation {scores['validation']:.2%})",
                  flush=True)
            out.append({**arm, "train_seconds": seconds, "alone": alone,
                        "exponent": exponent, **scores})
    return out


def table(per_run: list[list[dict]], arms: list[dict]) -> tuple[list[dict], str]:
    """One row per arm: means over the runs (and each run's test accuracy)."""
    n = len(per_run)
    rows = []
    for i, arm in enumerate(arms):
        results = [run[i] for run in per_run]
        rows.append({**arm, "runs": results,
                     **{k: float(np.mean([r[k] for r in results]))
                        for k in ("train_seconds", "alone", "validation", "test",
                                  "test_telephone", "ivr_digits_p")},
                     "ivr_digits": int(sum(r["ivr_digits"] for r in results)),
                     "ivr_other": int(sum(r["ivr_other"] for r in results)),
                     "pocketsphinx": round(sum(r["pocketsphinx"] * 24 for r in results))})
    lines = ["| heads | head training s (mean) | heads alone (test) | validation, joined | "
             "unseen synthetic, joined: mean [each run] | telephone | "
             f"IVR digits (of {10 * n}) | p(right digit) | IVR other words (of {70 * n}) | "
             f"PocketSphinx clips right (of {24 * n}) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {label(r)} | {r['train_seconds']:.0f} | {r['alone']:.2%} | "
                     f"{r['validation']:.2%} | " + members.score_cells(r, r["runs"]))
    return rows, "\n".join(lines)


def main(argv):
    del argv
    if not _RUNS.value:
        raise app.UsageError("--kws_heads_runs: give the run directories.")
    try:
        arms = parse_arms(_ARMS.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    if _EXPONENT.value is not None and not _EXPONENT.value > 0:
        raise app.UsageError(f"--kws_heads_exponent must be above 0. Received: "
                             f"{_EXPONENT.value}")
    sets, version, groups = members._sets(_DATA_DIR.value)
    machine = _common.machine_info()
    per_run = [run_arms(d, arms, sets, groups, _DATA_DIR.value, _EXPONENT.value)
               for d in _RUNS.value]
    rows, text = table(per_run, arms)
    exponent_text = ("each run recorded" if _EXPONENT.value is None
                     else f"{_EXPONENT.value:g}")
    header = (f"Runs {', '.join(_RUNS.value)}, corpus {version}: each run's own attention_rnn "
              "joined with heads trained here on its seed's speech-embedding features, at "
              f"embedding exponent {exponent_text}. {_common.machine_line(machine)}\n\n")
    record = {"benchmark": NAME, "machine": machine, "corpus_version": version,
              "runs": list(_RUNS.value), "rows": rows,
              "command": "python -m benchmarks.keyword_spotting_heads --kws_heads_runs="
                         + ",".join(_RUNS.value) + " --kws_heads_arms='"
                         + ",".join(_ARMS.value) + "'"
                         + ("" if _EXPONENT.value is None
                            else f" --kws_heads_exponent={_EXPONENT.value:g}")
                         + ("" if _OUT.value == NAME else f" --kws_heads_out={_OUT.value}")}
    _common.publish(_OUT.value, record, header + text)


if __name__ == "__main__":
    app.run(main)
