"""benchmarks/sentiment_long.py without training: run configs, pairing, intervals, table."""

from __future__ import annotations

import pytest
from absl import flags

from apps.sentiment import train
from benchmarks import sentiment_long
from tests.apps.sentiment.fixtures import tiny_model


def test_importing_defines_no_flags():
    assert sentiment_long.__name__ not in flags.FLAGS.flags_by_module_dict()


def test_every_variant_reads_the_same_number_of_words(tmp_path):
    base = train.TrainConfig(model=tiny_model(max_sentences=5, max_sentence_length=7))
    for variant in sentiment_long.VARIANTS:
        config = sentiment_long.run_config(base, "spam_assassin", variant, 3, str(tmp_path))
        assert config.model.variant == variant and config.model.max_length == 35
        assert (config.dataset, config.seed, config.export_dir) == ("spam_assassin", 3, None)
        assert config.model_dir.startswith(str(tmp_path / f"spam_assassin-{variant}-seed3"))


def _record():
    results = []
    accuracy = {"han": [0.80, 0.82, 0.84], "bilstm_attention": [0.78, 0.77, 0.79],
                "mean_pooling": [0.77, 0.78, 0.80]}
    for variant, values in accuracy.items():
        for seed, value in zip((1, 2, 3), values, strict=True):
            results.append({"dataset": "polarity_reviews", "variant": variant, "seed": seed,
                            "test_accuracy": value, "train_seconds": 10.0, "params": 100,
                            "split_sizes": {"train": 1200, "validation": 150, "test": 150}})
    record = {"command": "python benchmarks/sentiment_long.py --seeds=1,2,3",
              "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "cores_usable": 2},
              "train_config": {"epochs": 6, "quick": False},
              "model_config": {"max_sentences": 32, "max_sentence_length": 25},
              "words_per_document": 800, "results": results,
              "lexicon_test_accuracy": {"polarity_reviews": 0.69}}
    record["paired_with_mean_pooling"] = sentiment_long.paired(record)
    return record


def test_pairing_by_seed_and_the_table():
    record = _record()
    han = record["paired_with_mean_pooling"]["polarity_reviews"]["han"]
    assert han["differences"] == pytest.approx([0.03, 0.04, 0.04])
    assert (han["won"], han["tied"], han["lost"]) == (3, 0, 0)
    flat = record["paired_with_mean_pooling"]["polarity_reviews"]["bilstm_attention"]
    assert (flat["won"], flat["lost"]) == (1, 2)  # +1, -1, -1 points
    assert "mean_pooling" not in record["paired_with_mean_pooling"]["polarity_reviews"]
    table = sentiment_long.markdown(record)
    assert "`python benchmarks/sentiment_long.py --seeds=1,2,3`" in table
    assert "Test CPU 9000" in table
    assert "| han | 0.820 ± 0.020 | +3.7 points |" in table
    assert "met; interval excludes 0" in table
    assert "| bilstm_attention |" in table and "not met" in table
    assert "| VADER lexicon (vaderSentiment) | 0.690 |" in table
    assert "train/validation/test 1200/150/150" in table
