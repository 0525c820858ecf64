"""The main job's `run` on the tiny corpus: trains, evaluates, plots, exports, writes metrics;
and its configuration from the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from apps.common.metrics import RunResult
from apps.keyword_spotting import builder, train
from apps.keyword_spotting.model import ModelConfig

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


def test_run_writes_metrics_plots_and_a_versioned_export(tiny_run):
    result = tiny_run
    metrics = result.metrics
    assert isinstance(result, RunResult) and result.app == "keyword_spotting"
    assert result.variant == "attention_rnn" and result.dataset == "synthetic_speech_commands"
    assert result.metric == "test_accuracy_unseen_voices"
    assert 0.0 <= result.value <= 1.0 and result.train_seconds > 0
    assert result.value == metrics["test_accuracy"]
    assert len(metrics["history"]["val_accuracy"]) == 1  # one epoch, per-epoch curve kept
    assert metrics["split_sizes"] == {"train": 46, "validation": 22, "test": 22}
    assert np.array(metrics["confusion_matrix"]).sum() == 22
    assert set(metrics["test_accuracy_per_speaker"]).isdisjoint(
        {"espeak-ng/m1", "flite/awb", "flite/slt"})  # Training voices are not in the test.
    assert 0.0 <= metrics["attention_mass_on_word"] <= 1.0
    assert metrics["model_config"]["rnn_units"] == 8 and metrics["model_config"]["seed"] == 42
    assert os.path.getsize(metrics["confusion_matrix_png"]) > 1000
    assert len(metrics["attention_plots"]) == 2
    assert all(os.path.getsize(p) > 1000 for p in metrics["attention_plots"])
    assert os.path.basename(result.export_path) == "1"
    assert os.path.exists(os.path.join(result.export_path, "saved_model.pb"))
    run_dir = os.path.dirname(metrics["confusion_matrix_png"])
    assert result.metrics_path == os.path.join(run_dir, "metrics.json")
    with open(result.metrics_path, encoding="utf-8") as f:
        written = json.load(f)
    for key in ("dataset", "variant", "metric", "value", "train_seconds", "export_path"):
        assert written[key] == getattr(result, key)
    assert RunResult.read(result.metrics_path).export_path == result.export_path
    # The default joins the speech-embedding model: each model's own accuracy is recorded.
    assert metrics["embedding_ensemble"] is True
    assert set(metrics["member_test_accuracy"]) == {"attention_rnn", "speech_embedding"}
    assert os.path.isdir(os.path.join(run_dir, "speech_embedding_head", "logs"))


def test_bad_configuration_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="variant='rnn'"):
        train.TrainConfig(model=ModelConfig(variant="rnn"))
    with pytest.raises(ValueError, match="dataset='timit'"):
        train.TrainConfig(dataset="timit")
    for field, value in (("epochs", 0), ("batch_size", -1), ("learning_rate", 0.0),
                         ("sample_clips", -1), ("corpus", "huge"),
                         ("speed_perturbation", (1.1, 0.9)), ("embedding_ensemble", "yes"),
                         ("embedding_passes", 0), ("embedding_epochs", 0),
                         ("embedding_learning_rate", -1.0), ("embedding_exponent", 0.0),
                         ("ema_momentum", 1.0), ("ema_momentum", -0.1)):
        with pytest.raises(ValueError, match=f"{field}="):
            train.TrainConfig(**{field: value})


def _from_command_line(*args) -> train.TrainConfig:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])
    try:
        return train.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()


def test_command_line_defaults_are_the_train_config_defaults():
    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver():
        config = train.config_from_flags()
    # 12 epochs since corpus 1.1.0 (the command line said 20 until it read TrainConfig).
    assert config == train.TrainConfig()
    assert config.epochs == train.TrainConfig.epochs == 12
    assert config.batch_size == train.TrainConfig.batch_size
    assert config.learning_rate == train.TrainConfig.learning_rate
    quick = _from_command_line("--quick")
    assert quick.epochs == train.QUICK_EPOCHS == 3 and quick.corpus_config == "quick"
    assert _from_command_line("--epochs=5").epochs == 5
    assert _from_command_line("--quick", "--epochs=5").epochs == 5
    assert _from_command_line("--quick", "--config=epochs=4").epochs == 4


def test_every_old_flag_is_a_config_key():
    config = _from_command_line(
        "--variant=kwt", "--config=model.rnn_units=32", "--config=model.kwt_depth=2",
        "--config=learning_rate=0.001", "--config=sample_clips=3", "--config=corpus=quick",
        "--config=speed_perturbation=", "--export_dir=/tmp/kws", "--config=export_dir=None",
        "--seed=7", "--config=embedding_ensemble=false", "--config=embedding_passes=3")
    assert config.model == ModelConfig(variant="kwt", rnn_units=32, kwt_depth=2)
    assert (config.learning_rate, config.sample_clips, config.corpus, config.seed) == (
        1e-3, 3, "quick", 7)
    assert config.speed_perturbation == () and config.export_dir is None
    assert config.embedding_ensemble is False and config.embedding_passes == 3
    assert dataclasses.replace(config, corpus=None).corpus_config == train.DEFAULT_CORPUS
    assert train.DEFAULT_CORPUS in builder.CONFIG_NAMES


@pytest.mark.parametrize("args, message", [
    (["--variant=rnn"], r"--variant.*'rnn' is not one of"),
    (["--config=model.rnn_unit=3"], "ModelConfig has no field 'rnn_unit'"),
    (["--config=model.kwt_heads=3"], "kwt_heads=3"),
    (["--config=corpus=huge"], "corpus='huge'"),
    (["--dataset=timit"], "'timit' is not one of"),
    (["--epochs=0"], "--epochs"),
])
def test_bad_command_line_names_the_key(args, message):
    with pytest.raises(flags.ValidationError, match=message):
        _from_command_line(*args)


def test_the_command_line_has_no_flags_of_its_own():
    proc = subprocess.run(
        [sys.executable, "-m", "apps.keyword_spotting.train", "--helpfull"],
        capture_output=True, text=True, check=False, timeout=600,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))),
    )
    shown = proc.stdout
    sections = {line[:-1] for line in shown.splitlines() if re.fullmatch(r"[\w.]+:", line)}
    assert "apps.common.flags" in sections and "--config" in shown, proc.stderr[-2000:]
    assert not {s for s in sections if s.startswith("apps.") or s == "__main__"} - {
        "apps.common.flags"}
    assert "--kws_" not in shown
