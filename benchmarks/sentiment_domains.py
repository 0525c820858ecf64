"""Sentiment across domains: leave one domain out, all domains together, the lexicon beside.

For each VADER domain (movies, tweets, amazon, nyt) a model trains on the
other three and is scored on every sentence of the held-out one; one more run
trains on all four and is scored on each domain's own test split. Every row
carries the VADER lexicon (the `vaderSentiment` package: no training) on the
same sentences: the simple alternative a user would pick instead.

    python benchmarks/sentiment_domains.py                    # the app's default (bert), seed 42
    python benchmarks/sentiment_domains.py --variant=bilstm_attention   # from scratch
    python benchmarks/sentiment_domains.py --variant=mean_pooling --seeds=1,2,3
    python benchmarks/sentiment_domains.py --config=model.lexicon=vader \
        --name=sentiment_domains_lexicon      # with the lexicon's features
    python benchmarks/sentiment_domains.py --config=prior_weights=0,2,4,8,16 \
        --name=sentiment_domains_prior_sweep  # also each domain at other prior weights

Writes `benchmarks/results/<name>.{json,md}` (default `sentiment_domains`, with the machine).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common import config as common_config  # noqa: E402
from apps.sentiment import train  # noqa: E402
from apps.sentiment.builder import DOMAINS, EMBEDDED  # noqa: E402
from benchmarks import _common  # noqa: E402

_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def runs() -> list[tuple[str, str]]:
    """`(name, dataset)`: leave-one-out for every domain, then all domains."""
    out = [(f"without_{d}", f"{EMBEDDED}/" + "+".join(x for x in DOMAINS if x != d))
           for d in DOMAINS]
    return out + [("all", f"{EMBEDDED}/all")]


def table(rows: list[dict]) -> str:
    """Markdown: held-out accuracy of the model and of the lexicon, per run and domain."""
    lines = ["| trained on | scored on | sentences | model | lexicon (VADER) | model − lexicon |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        for domain, scores in row["scores"].items():
            diff = scores["accuracy"] - scores["lexicon_accuracy"]
            lines.append(f"| {row['trained_on']} | {domain} ({scores['split']}) | "
                         f"{scores['examples']} | {scores['accuracy']:.4f} | "
                         f"{scores['lexicon_accuracy']:.4f} | {diff:+.4f} |")
    return "\n".join(lines) + "\n"


def prior_table(rows: list[dict]) -> str:
    """Markdown: accuracy at each inference weight of the lexicon's prior
    (`--config=prior_weights=...`), per scored domain and split, mean over seeds; then the
    mean of the held-out domains and of the test splits. Empty without such scores."""
    cells: dict = {}
    for row in rows:
        for domain, scores in row["scores"].items():
            for weight, accuracy in scores.get("accuracy_by_prior_weight", {}).items():
                key = (domain, scores["split"])
                cells.setdefault(key, {}).setdefault(weight, []).append(accuracy)
    if not cells:
        return ""
    weights = list(next(iter(cells.values())))
    lexicon = {(d, sc["split"]): sc["lexicon_accuracy"] for r in rows
               for d, sc in r["scores"].items()}

    def mean(values):
        return sum(values) / len(values)

    lines = ["| scored on | " + " | ".join(f"w={w}" for w in weights) + " | VADER |",
             "|---|" + "---|" * (len(weights) + 1)]
    for (domain, split), by_weight in cells.items():
        held = "held out" if split == "all" else "test"
        lines.append(f"| {domain} {held} | " + " | ".join(
            f"{mean(by_weight[w]):.4f}" for w in weights)
            + f" | {lexicon[(domain, split)]:.4f} |")
    for split, label in (("all", "mean held out"), ("test", "mean of the test splits")):
        keys = [k for k in cells if k[1] == split]
        if keys:
            lines.append(f"| **{label}** | " + " | ".join(
                f"{mean([mean(cells[k][w]) for k in keys]):.4f}" for w in weights)
                + f" | {mean([lexicon[k] for k in keys]):.4f} |")
    return ("\n## Accuracy by the lexicon prior's weight at inference\n\n"
            "Each trained model scored again with the prior `w * atanh(score)` at another "
            "weight (`evaluation.reweighed_margin`), mean over seeds.\n\n"
            + "\n".join(lines) + "\n")


def main(argv):
    del argv
    seeds = [int(s) for s in _SEEDS.value]
    rows = []
    for seed in seeds:
        for name, dataset in runs():
            if _ONLY.value and name not in _ONLY.value:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                # The common flags (--variant, --epochs, --config, ...) apply to every run.
                base = common_config.from_flags(train.TrainConfig)
                config = common_config.apply_overrides(base, [
                    f"dataset={dataset}", f"seed={seed}", f"model_dir={tmp}/run",
                    "export_dir=None", "attention_examples=0"])
                result = train.run(config)
            if name == "all":
                scores = {d: {**s, "split": "test"}
                          for d, s in result.metrics["test_by_domain"].items()}
            else:
                scores = {d: {**s, "split": "all"}
                          for d, s in result.metrics["out_of_domain"].items()}
            rows.append({"run": name, "seed": seed, "trained_on": dataset.split("/")[1],
                         "variant": result.variant, "train_seconds": result.train_seconds,
                         "scores": scores})
            print(train.results_line(result), flush=True)
    record = {"machine": _common.machine_info(), "command": " ".join(sys.argv),
              "rows": rows}
    os.makedirs(_OUT, exist_ok=True)
    with open(os.path.join(_OUT, f"{_NAME.value}.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    markdown = (f"# Sentiment across domains\n\nCommand: `{record['command']}`\n\n"
                + table(rows) + prior_table(rows))
    with open(os.path.join(_OUT, f"{_NAME.value}.md"), "w", encoding="utf-8") as f:
        f.write(markdown)
    print(markdown)


if __name__ == "__main__":
    _SEEDS = flags.DEFINE_list("seeds", ["42"], "Seeds; one set of runs per seed.")
    _ONLY = flags.DEFINE_list("only", [], "Runs to do (without_movies, ..., all); "
                              "default: every one.")
    _NAME = flags.DEFINE_string("name", "sentiment_domains",
                                "Results file name under benchmarks/results/ (no suffix).")
    app.run(main)
