"""Pretrained vs from scratch: does MLM pretraining (issue 16) help sentiment fine-tuning?

Two arms, the same model and fine-tuning budget, paired by seed:

- `pretrained`: `--init_from=CHECKPOINT` (the vocabulary and encoder weights of
  `python -m apps.sentiment.pretrain`), fine-tuned as the app trains;
- `scratch`: the same checkpoint's vocabulary and encoder sizes, weights drawn
  at random (`--config=init_encoder=false`): only the pretraining differs.

Settings (`--settings`):

- `in_domain`: trained on the four VADER domains (`vader_sentiment/all`), scored
  on each domain's test split;
- `lodo` (leave one domain out): for each domain, trained on the other three,
  scored on the held-out domain's **test split** (the pretraining corpus holds
  every domain's training sentences, unlabeled, and never a test sentence).

Every scored split also gets the VADER lexicon's accuracy (the `vaderSentiment`
package, no training). For each setting and domain: the test accuracy of both
arms (mean ± standard deviation over seeds), the difference pretrained −
scratch paired by seed with its 95% Student-t interval
(`benchmarks._common.paired_by_seed`), and the lexicon.

    python -m apps.sentiment.pretrain                          # once (see its budget)
    python benchmarks/sentiment_pretraining.py                 # 5 seeds, both settings
    taskset -c 0,1 python benchmarks/sentiment_pretraining.py --settings=in_domain
    # A smoke run of seconds on a tiny checkpoint:
    python benchmarks/sentiment_pretraining.py --quick --seeds=1,2 --settings=in_domain \
        --init_from=/tmp/tiny_pretrained --out=/tmp/sentiment_pretraining

The app's common flags (`--epochs`, `--batch_size`, `--data_dir`, `--quick`) and
`--config=KEY=VALUE` (any field of `apps.sentiment.train.TrainConfig`) set the
fine-tuning every run starts from; the dataset, seed, variant, `init_from`,
`init_encoder` and directories are the benchmark's. Writes
`<out>/sentiment_pretraining.json` and `.md` (`_common.write_results`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from apps.common import data as common_data  # noqa: E402
from apps.sentiment import evaluation, pipeline, pretrain, train  # noqa: E402
from apps.sentiment.builder import DOMAINS, EMBEDDED  # noqa: E402
from benchmarks import _common  # noqa: E402
from benchmarks._sentiment_report import _fmt as _cell  # noqa: E402  (mean ± sd)
from benchmarks._sentiment_report import config_from_flags  # noqa: E402

ARMS = ("pretrained", "scratch")
SETTINGS = ("in_domain", "lodo")


def define_flags() -> None:
    """This benchmark's flags, defined when it runs (not on import)."""
    for define, name, default, help_text in (
        (flags.DEFINE_list, "seeds", ["1", "2", "3", "4", "5"], "Seeds (the pairing)."),
        (flags.DEFINE_list, "settings", list(SETTINGS), "in_domain and/or lodo."),
        (flags.DEFINE_string, "init_from", pretrain.DEFAULT_OUT, "The pretrained checkpoint."),
        (flags.DEFINE_string, "out", _common.RESULTS_DIR, "Where the JSON and markdown go."),
        (flags.DEFINE_string, "runs", "runs/benchmarks/sentiment_pretraining",
         "Run directories."),
    ):
        if name not in flags.FLAGS:
            define(name, default, help_text)


def plan(settings) -> list[tuple[str, str, tuple[str, ...]]]:
    """`(setting, training dataset, domains scored)` for every run of one arm and seed."""
    out = []
    if "in_domain" in settings:
        out.append(("in_domain", f"{EMBEDDED}/all", DOMAINS))
    if "lodo" in settings:
        for held in DOMAINS:
            out.append(("lodo", f"{EMBEDDED}/" + "+".join(d for d in DOMAINS if d != held),
                        (held,)))
    return out


def run_config(base: train.TrainConfig, arm: str, dataset: str, seed: int, init_from: str,
               runs: str, export_dir: str | None) -> train.TrainConfig:
    """One fine-tuning run of `arm` (see the module docstring)."""
    if arm not in ARMS:
        raise ValueError(f"arm={arm!r} is not one of {ARMS}.")
    name = f"{dataset.replace('/', '_')}-{arm}-seed{seed}-{int(time.time() * 1000)}"
    return dataclasses.replace(
        base, dataset=dataset, seed=seed, init_from=init_from, vocabulary="auto",
        init_encoder=arm == "pretrained", export_dir=export_dir, attention_examples=0,
        out_of_domain=False, model_dir=os.path.join(runs, name),
        model=dataclasses.replace(base.model, variant="transformer"))


def score_export(export_path: str, split: pipeline.Split, batch: int = 256) -> float:
    """Accuracy of the exported SavedModel (as served) on `split`."""
    import tensorflow as tf

    fn = tf.saved_model.load(export_path).signatures["serving_default"]
    predicted = []
    for i in range(0, len(split), batch):
        texts = tf.constant(list(split.texts[i:i + batch]), tf.string)
        predicted.append(np.argmax(fn(text=texts)["probabilities"].numpy(), axis=-1))
    if not predicted:
        return float("nan")
    return float(np.mean(np.concatenate(predicted) == split.labels))


def benchmark(settings, seeds, base: train.TrainConfig, init_from: str, runs: str) -> dict:
    """Every (setting, dataset, arm, seed); returns the record written as JSON."""
    checkpoint = pretrain.read_checkpoint(init_from)  # a clear error before any run
    data_dir = common_data.data_dir(base.data_dir)
    tests = {d: pipeline.domain_tests(f"{EMBEDDED}/{d}", data_dir, base.archive)[d]
             for d in DOMAINS}
    # Whole test splits, also with --quick (train.run scores test_by_domain on them whole).
    lexicon = {d: evaluation.lexicon_baseline(s)["accuracy"] for d, s in tests.items()}
    machine = _common.machine_info()
    results = []
    for setting, dataset, scored in plan(settings):
        for seed in seeds:
            for arm in ARMS:
                with tempfile.TemporaryDirectory() as export_dir:
                    config = run_config(base, arm, dataset, int(seed), init_from, runs,
                                        export_dir if setting == "lodo" else None)
                    result = train.run(config)
                    m = result.metrics
                    for domain in scored:
                        if setting == "in_domain":
                            accuracy = m["test_by_domain"][domain]["accuracy"]
                        else:
                            accuracy = score_export(result.export_path, tests[domain])
                        results.append({
                            "setting": setting, "dataset": dataset, "domain": domain,
                            "arm": arm, "seed": int(seed), "test_accuracy": accuracy,
                            "examples": len(tests[domain]),
                            "train_seconds": m["train_seconds"], "epochs": m["epochs"],
                            "params": m["params"]})
                print(f"{setting} {dataset} {arm} seed={seed}: "
                      + " ".join(f"{r['domain']}={r['test_accuracy']:.4f}" for r in results
                                 if r["dataset"] == dataset and r["arm"] == arm
                                 and r["seed"] == int(seed)), flush=True)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    record = {
        "benchmark": "sentiment_pretraining",
        "command": " ".join(["python"] + sys.argv),
        "machine": machine,
        "init_from": os.path.abspath(init_from),
        "pretraining": {k: checkpoint["meta"].get(k) for k in (
            "model", "corpus", "steps", "batch_size", "seconds", "written")},
        "train_config": {k: v for k, v in dataclasses.asdict(base).items() if k != "model"},
        "results": results,
        "lexicon_test_accuracy": lexicon,
    }
    record["paired"] = paired(record)
    return record


def paired(record: dict) -> dict:
    """`{setting: {domain: paired_by_seed}}`: pretrained minus scratch, same seed."""
    out = {}
    for setting in dict.fromkeys(r["setting"] for r in record["results"]):
        rows = [r for r in record["results"] if r["setting"] == setting]
        for domain in dict.fromkeys(r["domain"] for r in rows):
            mine = [r for r in rows if r["domain"] == domain]
            p = _common.paired_by_seed(mine, "arm", "pretrained", "scratch", "test_accuracy")
            if p is not None:
                out.setdefault(setting, {})[domain] = p
    return out


def markdown(record: dict) -> str:
    base = record["train_config"]
    pre = record["pretraining"]
    corpus = pre.get("corpus") or {}
    lines = [
        f"Pretrained vs from scratch: `{record['command']}`",
        "",
        f"Machine: {_common.machine_line(record['machine'])}.",
        "",
        f"Checkpoint `{record['init_from']}`: {pre.get('steps')} MLM steps of "
        f"{pre.get('batch_size')} on {corpus.get('sentences_read', '?')} sentences "
        f"({corpus.get('words_read', '?')} words). Fine-tuning: "
        f"{1 if base['quick'] else base['epochs']} epochs, batch {base['batch_size']}, the "
        "best validation epoch; `scratch` has the same vocabulary and sizes, random "
        "weights. Test accuracy: mean ± standard deviation over seeds; the difference "
        "pretrained − scratch paired by seed, with a 95% Student-t interval.",
    ]
    for setting in dict.fromkeys(r["setting"] for r in record["results"]):
        title = ("in domain (trained on all four domains)" if setting == "in_domain" else
                 "leave one domain out (trained on the other three)")
        lines += ["", f"**{title}**", "",
                  "| scored on (test split) | sentences | scratch | pretrained | "
                  "pretrained − scratch | 95% interval | won / tied / lost | "
                  "VADER lexicon |", "|---|---|---|---|---|---|---|---|"]
        rows = [r for r in record["results"] if r["setting"] == setting]
        for domain in dict.fromkeys(r["domain"] for r in rows):
            mine = [r for r in rows if r["domain"] == domain]
            arms = {a: [r["test_accuracy"] for r in mine if r["arm"] == a] for a in ARMS}
            p = record["paired"].get(setting, {}).get(domain)
            diff = "–" if p is None else f"{p['mean'] * 100:+.1f} points"
            interval = ("–" if p is None or p["low"] is None else
                        f"[{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]")
            wtl = "–" if p is None else f"{p['won']} / {p['tied']} / {p['lost']}"
            lines.append(
                f"| {domain} | {mine[0]['examples']} | "
                f"{_cell(arms['scratch']) if arms['scratch'] else '–'} | "
                f"{_cell(arms['pretrained']) if arms['pretrained'] else '–'} | {diff} | "
                f"{interval} | {wtl} | {record['lexicon_test_accuracy'][domain]:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    options = flags.FLAGS
    for name in ("dataset", "variant"):
        if options[name].present:
            raise app.UsageError(f"--{name}: set by this benchmark (see its docstring).")
    unknown = sorted(set(options.settings) - set(SETTINGS))
    if unknown:
        raise app.UsageError(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}.")
    base = config_from_flags()  # checked before any run
    try:
        record = benchmark(options.settings, options.seeds, base, options.init_from,
                           options.runs)
    except (FileNotFoundError, ValueError) as err:
        raise app.UsageError(str(err)) from err
    md = markdown(record)
    _common.write_results("sentiment_pretraining", record, md, options.out)
    print(md, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
