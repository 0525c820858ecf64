"""`run` end to end on the fixture archive, and the command line's configuration."""

from __future__ import annotations

import json
import os

import pytest
from absl import flags

from apps.common import config as common_config
from apps.common import export as common_export
from apps.common import text as common_text
from apps.common.metrics import RunResult
from apps.sentiment import train
from tests.apps.sentiment.fixtures import TINY, kept

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


def test_run_writes_metrics_plots_and_export(trained):
    result, config = trained["result"], trained["config"]
    metrics = result.metrics
    assert isinstance(result, RunResult)
    assert (result.app, result.dataset, result.variant, result.metric) == (
        "sentiment", "vader_sentiment/movies", "bilstm_attention", "test_accuracy")
    assert result.value == metrics["test_accuracy"] and metrics["epochs"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["params"] > 0 and result.train_seconds > 0
    ood = metrics["out_of_domain"]
    assert set(ood) == {"tweets", "amazon", "nyt"}
    for domain, scores in ood.items():
        assert scores["examples"] == len(kept(trained["tables"][domain]))
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["lexicon_accuracy"] <= 1.0
        # Scored again at other weights of the lexicon prior: at the weight it is served
        # with, the accuracy itself.
        by_weight = scores["accuracy_by_prior_weight"]
        own = f"{config.model.lexicon_prior_inference:g}"
        assert list(by_weight) == ["0", own, "100"]
        assert by_weight[own] == pytest.approx(scores["accuracy"])
    by_domain = metrics["test_by_domain"]
    assert set(by_domain) == {"movies"} and by_domain["movies"]["accuracy"] == result.value
    assert 0.0 <= metrics["lexicon_test_accuracy"] <= 1.0
    assert result.metrics_path == os.path.join(config.model_dir, "metrics.json")
    with open(result.metrics_path, encoding="utf-8") as f:
        written = json.load(f)
    assert written["app"] == "sentiment"
    assert written["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    for key in ("dataset", "variant", "metric", "value", "train_seconds", "export_path"):
        assert written[key] == getattr(result, key), key
    assert RunResult.read(result.metrics_path).export_path == result.export_path
    line = train.results_line(result)
    assert line.startswith(result.line) and "test_accuracy=" in line and "tweets=" in line
    assert "/lexicon=" in line

    with open(metrics["attention_html"], encoding="utf-8") as f:
        page = f.read()
    assert page.count('<div class="s">') == 5 and 'class="w"' in page
    with open(metrics["attention_png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert result.export_path == os.path.join(config.export_dir, "1")
    assert common_export.existing_versions(config.export_dir) == [1]
    vocab = common_text.Tokenizer.load(os.path.join(config.model_dir, "vocabulary.json"))
    assert "wonderful" in vocab.vocabulary and vocab.max_length == TINY["max_length"]


def _parse(*args) -> train.TrainConfig:
    """The TrainConfig a command line gives, as `main` builds it; absl's flags reset after."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["train", *args])
        return common_config.from_flags(train.TrainConfig)
    finally:
        flags.FLAGS.unparse_flags()


def test_the_app_defines_no_flags_of_its_own():
    modules = flags.FLAGS.flags_by_module_dict()
    assert not [m for m in modules if m.startswith("apps.sentiment")]


def test_flags_map_to_the_config():
    config = _parse("--variant=transformer", "--config=model.max_length=40", "--epochs=3",
                    "--dataset=vader_sentiment/tweets", "--config=archive=/tmp/v.tar.gz",
                    "--config=attention_examples=2", "--config=model.vocab_size=64",
                    "--config=verbose=2", "--export_dir=/tmp/e")
    assert config.model.variant == "transformer" and config.model.max_length == 40
    assert config.model.vocab_size == 64 and config.attention_examples == 2
    assert config.epochs == 3 and config.dataset == "vader_sentiment/tweets"
    assert config.archive == "/tmp/v.tar.gz" and config.verbose == 2
    assert config.export_dir == "/tmp/e" and config.seed == 42
    assert _parse("--config=export_dir=None").export_dir is None
    assert _parse().verbose == "auto" and _parse() == train.TrainConfig()


@pytest.mark.parametrize("args, message", [
    (["--variant=cnn"], r"--variant=cnn: 'cnn' is not one of \['bilstm_attention'"),
    (["--dataset=imdb"], r"--dataset: dataset='imdb' is not one of"),
    (["--epochs=0"], r"--epochs: .*epochs=0"),
    (["--config=model.max_length=0"], r"--config=model.max_length: .*max_length=0"),
    (["--config=max_words=40"], r"TrainConfig has no field 'max_words'"),
    (["--config=model.dropout=1.5"], r"dropout=1.5"),
    (["--config=attention_examples=-1"], r"attention_examples=-1"),
    (["--config=verbose=3"], r"verbose"),
])
def test_bad_command_lines_name_the_key(args, message):
    with pytest.raises(flags.ValidationError, match=message):
        _parse(*args)


@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("epochs", -1), ("seed", -1), ("attention_examples", -2),
    ("strategy", "gpu"), ("verbose", 3), ("dataset", "imdb"),
])
def test_train_config_names_a_bad_field_and_value(field, value):
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        train.TrainConfig(**{field: value})
