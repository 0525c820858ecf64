"""benchmarks/translation_eval_order.py: both orders timed, their translations compared."""

import tensorflow as tf

from apps.common import flags as common_flags  # noqa: F401  (its flags are defined too)
from benchmarks import translation_eval_order


class _Upper:
    def translate(self, text):
        n = len(text)
        return {"translation": tf.constant([t.upper() for t in text]),
                "attention_weights": tf.zeros((n, 1, 1)),
                "source_tokens": tf.constant([[t] for t in text]),
                "target_tokens": tf.constant([[t.upper()] for t in text])}


def test_both_orders_give_the_same_translations_and_are_timed(tmp_path):
    tsv = tmp_path / "translations.tsv"
    rows = [f"w{i} " * (1 + i % 7) for i in range(150)]
    tsv.write_text("source\treference\ttranslation\tmodel_output\n"
                   + "".join(f"{r.strip()}\tx\ty\tz\n" for r in rows), encoding="utf-8")
    sentences = translation_eval_order.read_sentences(str(tsv), 0, 100)
    assert sentences == [r.strip() for r in rows[:100]]
    out = translation_eval_order.compare(_Upper(), sentences, rounds=2)
    assert out["same_translations"] == out["sentences"] == 100
    for arm in ("file order", "by length"):
        assert len(out[arm]["turns"]) == 2 and out[arm]["seconds_per_step"] > 0
