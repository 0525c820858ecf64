"""The lexicon without a model: VADER itself against the in-graph rule-based score.

For every VADER domain's test split (and, held out, every sentence of the
domain), scores

- `vader`: the `vaderSentiment` package itself (positive when its compound > 0);
- `rules`: `apps.sentiment.lexicon.score_texts`, the rule-based score the
  sentiment model adds as its prior (`LexiconScore`), on words as the model's
  tokenizer splits them, emoticons split in two;
- `rules_emoticons`: the same with the lexicon's emoticons kept whole and
  rated (`model.emoticons`, the default with the lexicon).

No training: a minute on two cores. A score of exactly 0 (no rated word) counts
as negative, as VADER's compound does.

    python benchmarks/sentiment_lexicon_rules.py

Writes `benchmarks/results/sentiment_lexicon_rules.{json,md}`.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common import data as common_data  # noqa: E402
from apps.sentiment import evaluation, lexicon, pipeline  # noqa: E402
from benchmarks import _common  # noqa: E402

NAME = "sentiment_lexicon_rules"
ARMS = ("vader", "rules", "rules_emoticons")


def score(split: pipeline.Split) -> dict:
    """Accuracy of each arm on `split`, and the share of its texts with an emoticon."""
    texts = list(split.texts)
    out = {"examples": len(split),
           "vader": evaluation.lexicon_baseline(split)["accuracy"]}
    for arm, emoticons in (("rules", False), ("rules_emoticons", True)):
        predicted = lexicon.score_texts(texts, emoticons=emoticons) > 0
        out[arm] = float(np.mean(predicted == (split.labels == 1)))
    emoticons = set(lexicon.vader_emoticons())
    out["with_emoticon"] = float(np.mean([
        any(w in emoticons for w in (t.decode("utf-8", "replace") if isinstance(t, bytes)
                                     else t).lower().split()) for t in texts]))
    return out


def markdown(record: dict) -> str:
    rows = [[r["domain"], r["split"], r["examples"], f"{r['with_emoticon']:.1%}",
             f"{r['vader']:.4f}", f"{r['rules']:.4f}", f"{r['rules_emoticons']:.4f}",
             f"{(r['rules_emoticons'] - r['rules']) * 100:+.1f}"] for r in record["rows"]]
    return "\n".join([
        f"Command: `{record['meta']['command']}`", "",
        f"Machine: {_common.machine_line(record['meta']['machine'])}.", "",
        "Accuracy with no model: VADER (the package) and the model's in-graph rule-based "
        "score, without and with the lexicon's emoticons kept whole.", "",
        _common.markdown_table(["domain", "sentences", "n", "with an emoticon", "VADER",
                                "rules", "rules + emoticons", "emoticons (points)"], rows),
    ]) + "\n"


def main(argv):
    del argv
    data_dir = common_data.data_dir(flags.FLAGS.data_dir)
    rows = []
    for domain in pipeline.DOMAINS:
        builder = pipeline.vader_builder(domain, data_dir)
        for split_name, split in (
                ("test", "test"), ("all (held out)", "train+validation+test")):
            data = pipeline._to_split(builder.as_dataset(split=split, shuffle_files=False),
                                      "text")
            row = {"domain": domain, "split": split_name, **score(data)}
            print(row, flush=True)
            rows.append(row)
    record = {"meta": {"command": "python benchmarks/sentiment_lexicon_rules.py "
                                  + " ".join(sys.argv[1:]),
                       "machine": _common.machine_info()},
              "rows": rows}
    table = markdown(record)
    print(table)
    print("Wrote", ", ".join(_common.write_results(NAME, record, table,
                                                   out_dir=flags.FLAGS.results_dir)))


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "tfds cache root (default: the project's cache).")
    flags.DEFINE_string("results_dir", _common.RESULTS_DIR, "Where the JSON and MD go.")
    app.run(main)
