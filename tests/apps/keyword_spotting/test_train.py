"""The main job's `run` on the tiny corpus: trains, evaluates, plots, exports, writes metrics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from apps.keyword_spotting import train


def test_run_writes_metrics_plots_and_a_versioned_export(tiny_run):
    metrics = tiny_run
    assert metrics["variant"] == "attention_rnn"
    assert metrics["metric"] == "test_accuracy_unseen_voices"
    assert 0.0 <= metrics["value"] <= 1.0 and metrics["train_seconds"] > 0
    assert len(metrics["history"]["val_accuracy"]) == 1  # one epoch, per-epoch curve kept
    assert metrics["split_sizes"] == {"train": 46, "validation": 22, "test": 22}
    assert np.array(metrics["confusion_matrix"]).sum() == 22
    assert set(metrics["test_accuracy_per_speaker"]).isdisjoint(
        {"espeak-ng/m1", "flite/awb", "flite/slt"})  # Training voices are not in the test.
    assert 0.0 <= metrics["attention_mass_on_word"] <= 1.0
    assert os.path.getsize(metrics["confusion_matrix_png"]) > 1000
    assert len(metrics["attention_plots"]) == 2
    assert all(os.path.getsize(p) > 1000 for p in metrics["attention_plots"])
    assert os.path.basename(metrics["export_path"]) == "1"
    assert os.path.exists(os.path.join(metrics["export_path"], "saved_model.pb"))
    run_dir = os.path.dirname(metrics["confusion_matrix_png"])
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
        written = json.load(f)
    for key in ("dataset", "variant", "metric", "value", "train_seconds", "export_path"):
        assert written[key] == metrics[key]


def test_attention_on_word_counts_frames_inside_the_word():
    weights = np.zeros((2, 51))
    weights[0, 10:20] = 0.1  # Frames 10..19 are centered at 3200..6080 samples.
    weights[1, :] = 1 / 51
    on_word, uniform = train.attention_on_word(
        weights, np.array([3200, 3200]), np.array([6400, 6400]), frame_step=320)
    assert on_word == pytest.approx((1.0 + 10 / 51) / 2)
    assert uniform == pytest.approx(10 / 51)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="variant='rnn'"):
        train.run(train.TrainConfig(variant="rnn"))
    with pytest.raises(ValueError, match="dataset='timit'"):
        train.run(train.TrainConfig(dataset="timit"))


def test_command_line_defaults_are_the_train_config_defaults():
    from absl import flags
    from absl.testing import flagsaver

    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver():
        config = train.config_from_flags()
    # 12 epochs since corpus 1.1.0 (the command line said 20 until it read TrainConfig).
    assert config.epochs == train.TrainConfig.epochs == 12
    assert config.batch_size == train.TrainConfig.batch_size
    assert config.learning_rate == train.TrainConfig.learning_rate
    with flagsaver.flagsaver(quick=True):
        assert train.config_from_flags().epochs == 3
    with flagsaver.flagsaver(epochs=5):
        assert train.config_from_flags().epochs == 5
