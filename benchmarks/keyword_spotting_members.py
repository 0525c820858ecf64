"""How the default keyword spotter's two models are best joined, chosen on validation voices.

The default export (`embedding_ensemble`) answers with the product of two models'
probabilities: `attention_rnn`, trained from scratch on the synthetic corpus, and a head
on a speech embedding pretrained on real speech. This benchmark rebuilds both members of
runs the app already trained (`keyword_spotting_real.rebuild`: the weights of each run's
own export, checked to answer as the export does), runs each member over the clips once
per test speed, and scores every way of joining them without training again:

- `exponent`: the speech embedding's exponent in the weighted product
  (`model.ProductOfExperts`; the variant's is 1): 0 is `attention_rnn` alone, 1 the
  default's plain product, "inf" the embedding alone;
- `test speeds`: the clip alone, or the product averaged over the clip played at 0.9, 1
  and 1.1 times its speed (`ensemble.SpeedEnsemble`, as `--config=test_speeds` exports).

The join is chosen on the validation split (voices heard neither in training nor in the
test split), by its accuracy averaged over the runs, among the joins of the clip alone
(test speeds about double the export's serving time, which the batch-1 latency target of
10 ms has no room for; they are reported beside it); the validation clips through the
simulated telephone line, the test split's unseen voices, the same clips through it,
Asterisk's real IVR prompts (`ivr_prompts`) and the PocketSphinx words (`real_speech`)
are reported for every join, so what the choice costs on real speech is in the same
table. Each member's probabilities are cached in the run
directory (`members_probabilities.npz`), so the table can be remade in seconds.

Usage (from the repository root; the runs of `python -m apps.keyword_spotting.train
--seed=S --model_dir=DIR --export_dir=DIR/export`):

    python -m benchmarks.keyword_spotting_members --kws_members_runs=DIR1,DIR2,DIR3

Writes benchmarks/results/keyword_spotting_members.{json,md} (`--kws_members_out`: another
base name).
"""

from __future__ import annotations

import math
import os

import numpy as np
from absl import app, flags

from benchmarks import _common

NAME = "keyword_spotting_members"
EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, math.inf)
SPEED_SETS = ((1.0,), (0.9, 1.0, 1.1))
CACHE = "members_probabilities.npz"

_RUNS = flags.DEFINE_list("kws_members_runs", [], "Run directories of the app (each trained "
                          "with the default embedding_ensemble).")
_DATA_DIR = flags.DEFINE_string("kws_members_data_dir", None, "Dataset cache (default: shared).")
_OUT = flags.DEFINE_string("kws_members_out", NAME, "Base name of the result files under "
                           "benchmarks/results (another name keeps the default's table).")


def _sets(data_dir) -> tuple[dict, str | None, list[str]]:
    """`(sets, corpus version, the IVR prompts' groups)`: every clip set scored, name ->
    (a function giving batches of dicts with `waveform` and `label`, the channel for
    `evaluation.through_channel`)."""
    import tensorflow as tf

    from apps.keyword_spotting import audio, ivr_prompts, pipeline, real_speech, train
    from apps.keyword_spotting.wav import decode_wav
    from benchmarks.keyword_spotting_real import corpus_version

    splits = pipeline.load_splits("synthetic_speech_commands", data_dir, train.DEFAULT_CORPUS)
    prompts = ivr_prompts.prompts(ivr_prompts.fetch(data_dir))
    ivr = {"waveform": np.stack([
        audio.fit_to_clip(decode_wav(tf.constant(p.wav), tf.constant(i))[None, :])[0].numpy()
        for i, p in enumerate(prompts)]), "label": np.array([p.label for p in prompts])}
    return {
        "validation": (lambda: splits.examples("validation", 128), None),
        "validation_telephone": (lambda: splits.examples("validation", 128),
                                 {"telephone": 1.0}),
        "test": (lambda: splits.examples("test", 128), None),
        "test_telephone": (lambda: splits.examples("test", 128), {"telephone": 1.0}),
        "ivr": (lambda: [ivr], None),
        "pocketsphinx": (lambda: real_speech.batches(
            real_speech.clips(real_speech.fetch(data_dir)), 128), None),
    }, corpus_version(splits), [p.group for p in prompts]


def member_probabilities(members: dict, sets: dict, speeds) -> dict:
    """`{f"{set}/{member}/{speed}": probabilities (n, classes)}`, `{f"{set}/label": ...}`
    and `members` (their names, the variant first)."""
    import types

    from apps.keyword_spotting import audio, evaluation

    out = {"members": np.array(list(members))}
    for set_name, (batches, channel) in sets.items():
        for name, explainer in members.items():
            for speed in speeds:
                def played(waveform, training=False, explainer=explainer, speed=speed):
                    del training
                    if speed != 1.0:
                        waveform = audio.play_at_speed(waveform, speed)
                    return explainer(waveform, training=False)

                results = evaluation.predict_batches(types.SimpleNamespace(explainer=played),
                                                     batches(), channel)
                out[f"{set_name}/{name}/{speed:g}"] = results["probabilities"].astype(np.float32)
                out[f"{set_name}/label"] = results["label"]
    return out


def probabilities_of(run_dir: str, data_dir, sets: dict) -> dict:
    """The cached member probabilities of `run_dir`, computed (and cached) when missing,
    unreadable or made from another export (the cache is derived data: a corrupt one is
    computed again, not trusted)."""
    import zipfile

    from benchmarks.keyword_spotting_real import read_run_metrics, rebuild, run_export

    metrics = read_run_metrics(run_dir, "--kws_members_runs")
    if not metrics.get("embedding_ensemble"):
        raise ValueError(f"{run_dir}: not an embedding_ensemble run (its export is one model).")
    export = os.path.abspath(run_export(run_dir, metrics))
    path = os.path.join(run_dir, CACHE)
    speeds = sorted({s for group in SPEED_SETS for s in group})
    data = {}
    if os.path.exists(path):
        try:
            with np.load(path) as cached:
                data = dict(cached)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            print(f"[{NAME}] {path} is unreadable ({err!r}); computing it again.")
            data = {}
        if str(data.get("export")) != export:
            data = {}
    missing = {name: s for name, s in sets.items() if f"{name}/label" not in data}
    if not missing:
        return {**data, "metrics": metrics}
    # Only the sets the cache lacks are computed (a set added to the benchmark does not redo
    # the others).
    _, members = rebuild(run_dir, metrics, data_dir)
    data.update(member_probabilities(members, missing, speeds))
    data["export"] = np.array(export)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez_compressed(tmp, **data)
    os.replace(tmp, path)
    return {**data, "metrics": metrics}


def join(data: dict, set_name: str, exponent: float, speeds) -> np.ndarray:
    """The joined probabilities of `set_name`: the weighted product at each speed
    (`ProductOfExperts`, the layer the export uses), averaged over `speeds`."""
    from apps.keyword_spotting.model import ProductOfExperts

    rnn, emb = (str(name) for name in data["members"])
    joined = []
    for speed in speeds:
        p_rnn = data[f"{set_name}/{rnn}/{speed:g}"]
        p_emb = data[f"{set_name}/{emb}/{speed:g}"]
        if math.isinf(exponent):
            joined.append(p_emb)
        else:
            joined.append(np.asarray(ProductOfExperts((1.0, exponent))([p_rnn, p_emb])))
    return np.mean(joined, axis=0)


def score(data: dict, exponent: float, speeds, groups) -> dict:
    """Accuracies of one join on every set of one run."""
    out = {}
    for set_name in ("validation", "validation_telephone", "test", "test_telephone",
                     "pocketsphinx"):
        p = join(data, set_name, exponent, speeds)
        out[set_name] = float((p.argmax(-1) == data[f"{set_name}/label"]).mean())
    p = join(data, "ivr", exponent, speeds)
    labels = data["ivr/label"]
    right = p.argmax(-1) == labels
    digits = np.array([g == "digit" for g in groups])
    out["ivr_digits"] = int(right[digits].sum())
    out["ivr_digits_p"] = float(p[digits, labels[digits]].mean())
    out["ivr_other"] = int(right[~digits].sum())
    return out


def _label(exponent: float, speeds) -> str:
    e = "embedding alone" if math.isinf(exponent) else (
        "attention_rnn alone" if exponent == 0 else f"product, exponent {exponent:g}")
    return e + ("" if tuple(speeds) == (1.0,) else
                ", test speeds " + "/".join(f"{s:g}" for s in speeds))


def table(runs: list[dict], groups) -> tuple[list[dict], str]:
    rows = []
    for speeds in SPEED_SETS:
        for exponent in EXPONENTS:
            per_run = [score(r, exponent, speeds, groups) for r in runs]
            rows.append({"exponent": exponent, "speeds": list(speeds), "runs": per_run,
                         **{k: float(np.mean([s[k] for s in per_run])) for k in per_run[0]}})
    # The choice: the best mean validation accuracy among the joins of the clip alone (test
    # speeds cost the export about twice its serving time, and batch-1 latency has no room
    # for that); ties to the plain product. The validation clips through the telephone line
    # are reported, not chosen on: in session 34 they would have chosen exponent 0.25, worse
    # than 0.5 on the unseen voices, the IVR digits and the PocketSphinx words (README).
    best = max((r for r in rows if r["speeds"] == [1.0]),
               key=lambda r: (round(r["validation"], 6), r["exponent"] == 1.0))
    for r in rows:
        r["chosen"] = r is best
    n = len(runs)
    lines = ["| join | validation | validation, telephone | "
             "unseen synthetic (test), mean [each run] | telephone | "
             f"IVR digits (of {10 * n}) | p(right digit) | IVR other words (of {70 * n}) | "
             f"PocketSphinx clips right (of {24 * n}) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = "**" if r["chosen"] else ""
        lines.append(
            f"| {mark}{_label(r['exponent'], r['speeds'])}{mark} | {r['validation']:.2%} | "
            f"{r['validation_telephone']:.2%} | "
            + score_cells(r, r["runs"], mark))
    return rows, "\n".join(lines)


def score_cells(mean: dict, runs: list[dict], mark: str = "") -> str:
    """One table row's cells from the unseen synthetic voices on: the mean test accuracy
    (in `mark`) and each run's, the telephone's mean, the IVR digits right over all runs and
    the right digit's mean probability, the other IVR words and the PocketSphinx clips right
    over all runs."""
    return (f"{mark}{mean['test']:.2%}{mark} [" + ", ".join(f"{s['test']:.2%}" for s in runs)
            + f"] | {mean['test_telephone']:.2%} | {sum(s['ivr_digits'] for s in runs)} | "
            f"{mean['ivr_digits_p']:.2f} | {sum(s['ivr_other'] for s in runs)} | "
            f"{round(sum(s['pocketsphinx'] * 24 for s in runs))} |")


def main(argv):
    del argv
    if not _RUNS.value:
        raise app.UsageError("--kws_members_runs: give the run directories to join.")
    sets, version, groups = _sets(_DATA_DIR.value)
    runs = [probabilities_of(d, _DATA_DIR.value, sets) for d in _RUNS.value]
    rows, text = table(runs, groups)
    machine = _common.machine_info()
    seeds = [r["metrics"]["model_config"]["seed"] for r in runs]
    header = (f"Runs {', '.join(_RUNS.value)} (seeds {', '.join(map(str, seeds))}), corpus "
              f"{version}; the join in bold has the best mean validation accuracy of those "
              "without test speeds. "
              f"{_common.machine_line(machine)}\n\n")
    record = {"benchmark": NAME, "machine": machine, "corpus_version": version,
              "runs": [{"run_dir": d, "seed": s} for d, s in zip(_RUNS.value, seeds,
                                                                  strict=True)],
              "rows": [{**r, "exponent": None if math.isinf(r["exponent"]) else r["exponent"],
                        "embedding_alone": math.isinf(r["exponent"])} for r in rows],
              "command": "python -m benchmarks.keyword_spotting_members --kws_members_runs="
                         + ",".join(_RUNS.value)
                         + ("" if _OUT.value == NAME else f" --kws_members_out={_OUT.value}")}
    _common.publish(_OUT.value, record, header + text)


if __name__ == "__main__":
    app.run(main)
