"""How the test split's beam search is batched: in file order, or sentences of similar length.

    python -m benchmarks.translation_eval_order --export=saved_models/translation/1 \\
        --sentences=runs/translation/translations.tsv --limit=2000

Sends the first `--limit` source sentences of a run's `translations.tsv` (or of any
text file, one sentence a line, with `--sentences_column=-1`) through the export's
`serving_default`, batch 64, once in file order and once as `evaluation.translate_all`
batches them (sorted by words, results put back in order), in rotating rounds, and
reports each order's median seconds and whether the translations are the same. Writes
`benchmarks/results/translation_eval_order.{json,md}`.
"""

from __future__ import annotations

from absl import app, flags

from benchmarks import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("export", None, "A translation SavedModel version directory.")
flags.DEFINE_string("sentences", None, "translations.tsv of a run (source in column 0).")
flags.DEFINE_integer("sentences_column", 0, "Column of the source; -1: the whole line.")
flags.DEFINE_integer("limit", 2000, "Sentences to translate.")
flags.DEFINE_integer("rounds", 2, "Timed rounds per order.")
flags.DEFINE_string("order_output", "benchmarks/results/translation_eval_order.json",
                    "Where to write.")


class _Served:
    """A SavedModel's `serving_default` with the export module's `translate` convention."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.signature = tf.saved_model.load(path).signatures["serving_default"]

    def translate(self, text):
        import tensorflow as tf

        return self.signature(text=tf.constant(text))


def read_sentences(path: str, column: int, limit: int) -> list[str]:
    """The first `limit` sources of `path` (a translations.tsv, header skipped, or lines)."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    if column >= 0:
        lines = [line.split("\t")[column] for line in lines[1:]]
    return lines[:limit]


def compare(module, sentences: list[str], rounds: int) -> dict:
    """`{"file order": {...}, "by length": {...}, "same_translations": n, "sentences": n}`."""
    import numpy as np

    from apps.translation import evaluation

    def in_file_order():
        out = []
        for i in range(0, len(sentences), 64):
            result = module.translate(np.array(sentences[i:i + 64], dtype=object))
            out.extend(t.decode("utf-8") for t in result["translation"].numpy())
        return out

    def by_length():
        return evaluation.translate_all(module, sentences)["translation"]

    arms = {"file order": in_file_order, "by length": by_length}
    outputs = {name: fn() for name, fn in arms.items()}  # also the warm-up (tracing)
    timed = _common.time_interleaved(arms, repeats=rounds, warmup=0)
    same = sum(a == b for a, b in zip(outputs["file order"], outputs["by length"],
                                          strict=True))
    return {**{name: {"seconds_per_step": t["median_s"], "turns": t["times_s"]}
               for name, t in timed.items()},
            "same_translations": same, "sentences": len(sentences)}


def main(argv):
    del argv
    if not FLAGS.export or not FLAGS.sentences:
        raise app.UsageError("--export and --sentences are required.")
    sentences = read_sentences(FLAGS.sentences, FLAGS.sentences_column, FLAGS.limit)
    result = compare(_Served(FLAGS.export), sentences, FLAGS.rounds)
    arms = {k: v for k, v in result.items() if isinstance(v, dict)}
    meta = {"export": FLAGS.export, "sentences": result["sentences"],
            "same_translations": result["same_translations"], "rounds": FLAGS.rounds}
    _common.write_step_results("translation_eval_order", arms, meta, FLAGS.order_output,
                               unit="s for all sentences")
    print(f"same translations: {result['same_translations']} of {result['sentences']}")


if __name__ == "__main__":
    app.run(main)
