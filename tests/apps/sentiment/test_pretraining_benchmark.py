"""benchmarks/sentiment_pretraining.py without training: plan, arms, pairing, table."""

from __future__ import annotations

import pytest
from absl import flags

from apps.sentiment import train
from apps.sentiment.builder import DOMAINS
from benchmarks import sentiment_pretraining as bench
from tests.apps.sentiment.fixtures import tiny_model


def test_importing_defines_no_flags():
    assert bench.__name__ not in flags.FLAGS.flags_by_module_dict()


def test_plan_covers_in_domain_and_every_held_out_domain():
    runs = bench.plan(("in_domain", "lodo"))
    assert runs[0] == ("in_domain", "vader_sentiment/all", DOMAINS)
    lodo = runs[1:]
    assert [scored for _, _, scored in lodo] == [(d,) for d in DOMAINS]
    for _, dataset, (held,) in lodo:
        trained = dataset.split("/", 1)[1].split("+")
        assert held not in trained and len(trained) == 3
    assert bench.plan(("lodo",)) == lodo


def test_the_arms_differ_only_in_the_encoder_weights(tmp_path):
    base = train.TrainConfig(model=tiny_model())
    configs = {arm: bench.run_config(base, arm, "vader_sentiment/all", 3, "/ckpt",
                                     str(tmp_path), None) for arm in bench.ARMS}
    pre, scratch = configs["pretrained"], configs["scratch"]
    assert (pre.init_encoder, scratch.init_encoder) == (True, False)
    for config in configs.values():
        assert (config.init_from, config.seed, config.model.variant) == (
            "/ckpt", 3, "transformer")
        assert config.subword and config.export_dir is None
    assert pre.model == scratch.model and pre.epochs == scratch.epochs
    assert pre.model_dir != scratch.model_dir
    with pytest.raises(ValueError, match="arm='frozen'"):
        bench.run_config(base, "frozen", "vader_sentiment/all", 3, "/ckpt", "r", None)


def _record():
    accuracy = {("in_domain", "movies"): {"pretrained": [0.82, 0.83, 0.84],
                                          "scratch": [0.80, 0.80, 0.81]},
                ("lodo", "nyt"): {"pretrained": [0.70, 0.66, 0.71],
                                  "scratch": [0.69, 0.68, 0.70]}}
    results = []
    for (setting, domain), arms in accuracy.items():
        for arm, values in arms.items():
            for seed, value in zip((1, 2, 3), values, strict=True):
                results.append({"setting": setting, "domain": domain, "arm": arm,
                                "seed": seed, "test_accuracy": value, "examples": 100,
                                "dataset": "d", "train_seconds": 1.0, "epochs": 6,
                                "params": 10})
    record = {"command": "python benchmarks/sentiment_pretraining.py --seeds=1,2,3",
              "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "cores_usable": 2},
              "init_from": "/ckpt", "pretraining": {"steps": 6000, "batch_size": 64,
                                                    "corpus": {"sentences_read": 1000,
                                                               "words_read": 20000}},
              "train_config": {"epochs": 6, "batch_size": 64, "quick": False},
              "results": results, "lexicon_test_accuracy": {"movies": 0.72, "nyt": 0.65}}
    record["paired"] = bench.paired(record)
    return record


def test_pairing_by_seed_and_the_table():
    record = _record()
    movies = record["paired"]["in_domain"]["movies"]
    assert movies["differences"] == pytest.approx([0.02, 0.03, 0.03])
    assert (movies["won"], movies["lost"]) == (3, 0) and movies["low"] > 0
    nyt = record["paired"]["lodo"]["nyt"]
    assert (nyt["won"], nyt["lost"]) == (2, 1)
    table = bench.markdown(record)
    assert "Test CPU 9000" in table and "6000 MLM steps of 64 on 1000 sentences" in table
    assert "| movies | 100 | 0.803 ± 0.006 | 0.830 ± 0.010 | +2.7 points |" in table
    assert "| 3 / 0 / 0 | 0.720 |" in table
    assert "**leave one domain out (trained on the other three)**" in table
    assert "| nyt | 100 |" in table and "| 2 / 0 / 1 | 0.650 |" in table
