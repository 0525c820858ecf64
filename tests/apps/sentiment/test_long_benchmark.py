"""benchmarks/sentiment_long.py without training: run configs, pairing, intervals, table."""

from __future__ import annotations

import dataclasses
import json

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
        assert config.model_dir.startswith(str(tmp_path / f"spam_assassin-{variant}-seed3-"))
    # The same configuration gets the same directory (an interrupted run resumes there),
    # another configuration another one.
    again = sentiment_long.run_config(base, "spam_assassin", "han", 3, str(tmp_path))
    assert again.model_dir == config.model_dir.replace("mean_pooling", "han")
    other = sentiment_long.run_config(dataclasses.replace(base, epochs=7),
                                      "spam_assassin", "han", 3, str(tmp_path))
    assert other.model_dir != again.model_dir


def test_the_lexicon_is_off_for_every_variant_unless_asked():
    """The benchmark compares pooling, so every run has the lexicon off unless --config
    sets it, whatever the app's `auto` would pick (here: `resolve_lexicon` as for
    sentences, where `auto` gives flat variants the lexicon)."""
    from apps.sentiment import model as sentiment_model

    base = train.TrainConfig(model=tiny_model())
    assert base.model.lexicon == "auto"
    off = sentiment_long.lexicon_off_unless_asked(base, ["model.lstm_units=4"])
    for variant in sentiment_long.VARIANTS:
        config = sentiment_long.run_config(off, "polarity_reviews", variant, 1, "runs")
        assert sentiment_model.resolve_lexicon(config.model, subword=False).lexicon == "none"
    flat = sentiment_long.run_config(base, "polarity_reviews", "mean_pooling", 1, "runs")
    assert sentiment_model.resolve_lexicon(flat.model, subword=False).lexicon == "vader"
    asked = sentiment_long.lexicon_off_unless_asked(base, [" model.lexicon = auto"])
    assert asked == base
    assert sentiment_long.identity(off) != sentiment_long.identity(base)


def test_a_stopped_benchmark_keeps_its_recorded_runs(tmp_path, monkeypatch):
    """Stopped after three runs, the same call trains only the other three; another
    configuration, or --noresume, trains them all again."""
    trained = []

    def fake_run(config):
        if len(trained) == 3 and stop:
            raise KeyboardInterrupt
        trained.append((config.model.variant, config.seed, config.model_dir))
        return {"dataset": config.dataset, "variant": config.model.variant,
                "seed": config.seed, "test_accuracy": 0.7 + 0.01 * config.seed,
                "validation_accuracy": 0.7, "train_seconds": 1.0, "train_cpu_seconds": 1.0,
                "params": 10, "epochs": 1, "split_sizes": {"train": 1, "validation": 1,
                                                           "test": 1}}

    monkeypatch.setattr(sentiment_long, "_run_one", fake_run)
    base = train.TrainConfig(model=tiny_model())
    call = dict(datasets=["spam_assassin"], variants=["han", "mean_pooling"],
                seeds=["1", "2", "3"], base=base, runs=str(tmp_path / "runs"),
                out=str(tmp_path / "out"))
    stop = True
    with pytest.raises(KeyboardInterrupt):
        sentiment_long.benchmark(**call)
    assert [t[:2] for t in trained] == [("han", 1), ("mean_pooling", 1), ("han", 2)]
    written = json.loads((tmp_path / "out" / "sentiment_long.json").read_text())
    assert len(written["runs"]) == 3  # the record so far, written after each run
    stop = False
    record = sentiment_long.benchmark(**call)
    resumable_dirs = {t[2] for t in trained}
    assert [t[:2] for t in trained[3:]] == [("mean_pooling", 2), ("han", 3),
                                            ("mean_pooling", 3)]
    assert len(record["runs"]) == 6
    assert record["paired_with_mean_pooling"]["spam_assassin"]["han"]["won"] == 0
    del trained[:]
    sentiment_long.benchmark(**dict(call, base=dataclasses.replace(base, epochs=9)))
    assert len(trained) == 6
    del trained[:]
    sentiment_long.benchmark(**dict(call, resume=False))
    assert len(trained) == 6
    assert not {t[2] for t in trained} & resumable_dirs  # no backup there to resume


def _record():
    results = []
    accuracy = {"han": [0.80, 0.82, 0.84], "bilstm_attention": [0.78, 0.77, 0.79],
                "mean_pooling": [0.77, 0.78, 0.80]}
    for variant, values in accuracy.items():
        for seed, value in zip((1, 2, 3), values, strict=True):
            results.append({"dataset": "polarity_reviews", "variant": variant, "seed": seed,
                            "test_accuracy": value, "train_seconds": 10.0, "params": 100,
                            "split_sizes": {"train": 1200, "validation": 150, "test": 150}})
    meta = {"command": "python benchmarks/sentiment_long.py --seeds=1,2,3",
            "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "cores_usable": 2},
            "train_config": {"epochs": 6, "quick": False},
            "model_config": {"max_sentences": 32, "max_sentence_length": 25},
            "words_per_document": 800}
    record = {"meta": meta, "runs": results,
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
    # han: +3.7 points, interval [+2.2, +5.1] lies above +2: holds. The flat variant's
    # interval [-3.2, +2.5] spans +2: undecided (its mean, -0.3, alone would say "not met").
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| holds |" in rows["| han"]
    assert "| undecided |" in rows["| bilstm_attention"]
    assert "| VADER lexicon (vaderSentiment) | 0.690 |" in table
    assert "train/validation/test 1200/150/150" in table


def test_folds_pair_by_fold_with_the_corrected_interval_in_a_record_of_their_own(
        tmp_path, monkeypatch):
    trained = []

    def fake_run(config):
        trained.append((config.model.variant, config.seed, config.fold, config.folds,
                        config.model_dir))
        bump = 0.02 + 0.01 * (config.fold % 2) if config.model.variant == "han" else 0.0
        return {"dataset": config.dataset, "variant": config.model.variant,
                "seed": config.seed, "fold": config.fold,
                "test_accuracy": 0.75 + 0.01 * config.fold + bump,
                "validation_accuracy": 0.7, "train_seconds": 1.0, "train_cpu_seconds": 1.0,
                "params": 10, "epochs": 1, "split_sizes": {"train": 1200, "validation": 150,
                                                           "test": 150}}

    monkeypatch.setattr(sentiment_long, "_run_one", fake_run)
    call = dict(datasets=["spam_assassin"], variants=["han", "mean_pooling"],
                seeds=["7", "8"], base=train.TrainConfig(model=tiny_model()),
                runs=str(tmp_path / "runs"), out=str(tmp_path / "out"), folds=4)
    record = sentiment_long.benchmark(**call)
    assert [t[:4] for t in trained] == [(v, 7, f, 4) for f in range(4)
                                        for v in ("han", "mean_pooling")]
    assert len({t[4] for t in trained}) == 8  # a directory per (variant, fold)
    assert (tmp_path / "out" / "sentiment_long_cv.json").exists()
    assert not (tmp_path / "out" / "sentiment_long.json").exists()
    han = record["paired_with_mean_pooling"]["spam_assassin"]["han"]
    assert han["seeds"] == [0, 1, 2, 3]  # the folds paired
    assert han["differences"] == pytest.approx([0.02, 0.03, 0.02, 0.03])
    # The corrected resampled t: sd * sqrt(1/4 + 150/1200), not sd / sqrt(4).
    from benchmarks import _common
    plain = _common.paired_t_interval(han["differences"])
    assert han["half_width"] == pytest.approx(
        plain["half_width"] * ((1 / 4 + 150 / 1200) / (1 / 4)) ** 0.5)
    table = sentiment_long.markdown(record)
    assert "paired by fold" in table and "folds 0, 1, 2, 3 of 4" in table
    del trained[:]
    sentiment_long.benchmark(**call)  # all recorded: nothing trained again
    assert trained == []
    # The fold is the benchmark's per run: a seed record's identity (and so the records and
    # run directories made before folds existed) does not depend on it.
    assert not {"fold", "folds"} & set(sentiment_long.identity(call["base"]))
    assert record["meta"]["identity"] == {**sentiment_long.identity(call["base"]), "folds": 4}
