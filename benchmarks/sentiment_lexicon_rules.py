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
    python benchmarks/sentiment_lexicon_rules.py --export=saved_models/sentiment/1

With `--export`, a trained sentiment SavedModel (e.g. the default bert, which has
no lexicon inside) is also scored on every test split alone and in a product of
experts with each lexicon score: its log-odds plus `w * atanh(score)`, for each
`--weights` w (`evaluation.reweighed_margin`), the score being the package's
compound (`vader`) or the in-graph rules with emoticons (`rules_emoticons`), which
is what a SavedModel could compute itself. Held-out rows are not scored with it:
the export may have trained on those sentences.

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


def product(probabilities, scores, labels, weights) -> dict:
    """`{f"{w:g}": accuracy}` of the product of a model's `probabilities` `[n, 2]` and a
    lexicon's `scores` `[n]` in (-1, 1) at each weight in `weights` (0: the model alone)."""
    labels = np.asarray(labels) == 1
    return {f"{w:g}": float(np.mean(
        (evaluation.reweighed_margin(probabilities, scores, 0.0, w) > 0) == labels))
        for w in weights}


def export_probabilities(export_dir: str, texts, batch: int = 128) -> np.ndarray:
    """`serving_default` probabilities `[n, 2]` of a sentiment SavedModel for `texts`."""
    import tensorflow as tf

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    out = [serve(text=tf.constant(list(texts[i : i + batch]), tf.string))["probabilities"]
           .numpy() for i in range(0, len(texts), batch)]
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def score_product(export_dir: str, split: pipeline.Split, weights) -> dict:
    """The export alone and its product with each lexicon score, on `split`."""
    texts = list(split.texts)
    probabilities = export_probabilities(export_dir, texts)
    scores = {"vader": evaluation.vader_compound(texts),
              "rules_emoticons": lexicon.score_texts(texts, emoticons=True)}
    return {arm: product(probabilities, s, split.labels, weights) for arm, s in scores.items()}


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
        *_product_markdown(record),
    ]) + "\n"


def _product_markdown(record: dict) -> list[str]:
    rows = record.get("product_rows")
    if not rows:
        return []
    weights = list(rows[0]["vader"])
    table = [[r["domain"], r["examples"], arm, *(f"{r[arm][w]:.4f}" for w in weights)]
             for r in rows for arm in ("vader", "rules_emoticons")]
    return ["", f"The export `{record['meta']['export']}` on each test split, its log-odds "
            "plus w x atanh(lexicon score) (w = 0: the export alone).", "",
            _common.markdown_table(["domain", "n", "lexicon score",
                                    *(f"w={w}" for w in weights)], table)]


def main(argv):
    del argv
    data_dir = common_data.data_dir(flags.FLAGS.data_dir)
    rows, product_rows = [], []
    for domain in pipeline.DOMAINS:
        builder = pipeline.vader_builder(domain, data_dir)
        for split_name, split in (
                ("test", "test"), ("all (held out)", "train+validation+test")):
            data = pipeline._to_split(builder.as_dataset(split=split, shuffle_files=False),
                                      "text")
            row = {"domain": domain, "split": split_name, **score(data)}
            print(row, flush=True)
            rows.append(row)
            if flags.FLAGS.export and split_name == "test":
                weights = [float(w) for w in flags.FLAGS.weights]
                product_rows.append({"domain": domain, "examples": len(data),
                                     **score_product(flags.FLAGS.export, data, weights)})
                print(product_rows[-1], flush=True)
    record = {"meta": {"command": "python benchmarks/sentiment_lexicon_rules.py "
                                  + " ".join(sys.argv[1:]),
                       "machine": _common.machine_info(), "export": flags.FLAGS.export},
              "rows": rows, "product_rows": product_rows}
    _common.publish(flags.FLAGS.name, record, markdown(record), flags.FLAGS.results_dir)


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "tfds cache root (default: the project's cache).")
    flags.DEFINE_string("results_dir", _common.RESULTS_DIR, "Where the JSON and MD go.")
    flags.DEFINE_string("export", None, "A sentiment SavedModel version to score alone and "
                        "in a product with each lexicon score (test splits).")
    flags.DEFINE_list("weights", ["0", "0.25", "0.5", "1", "2"],
                      "The product's weights w of atanh(lexicon score).")
    flags.DEFINE_string("name", NAME, "The results' file name (without extension).")
    app.run(main)
