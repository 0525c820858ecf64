"""The sentiment app: builder, variants, end-to-end run, SavedModel contract.

Everything runs on a tiny fixture archive made here (no network, no pip). One
module-scoped end-to-end run (1 epoch, a small model) feeds the metrics, plot
and SavedModel tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from apps.common import export as common_export
from apps.common import text as common_text
from apps.sentiment import data, model, plots, train
from apps.sentiment import export as sentiment_export
from tests.apps.sentiment import fixture_archive
from tests.apps.serving_checks import replay_warmup, run_isolated
from tests.layer_checks import one_training_step_changes_weights

TINY = dict(vocab_size=200, max_length=16, embedding_dim=16, lstm_units=8, attention_units=8,
            num_heads=2, intermediate_dim=16, embedding_dropout=0.1, dropout=0.1,
            learning_rate=1e-2)


def _kept(table):
    return [r for r in table if abs(r[1]) >= 0.5]


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("vader")
    sdist, inner, tables = fixture_archive.make(str(root / "archive"))
    return {"root": root, "sdist": sdist, "inner": inner, "tables": tables}


@pytest.fixture(scope="module")
def trained(fixture):
    """One end-to-end `run` on the fixture: 1 epoch of a small BiLSTM + attention."""
    root = fixture["root"]
    config = train.TrainConfig(
        data_dir=str(root / "data"),
        archive=fixture["sdist"],
        model_dir=str(root / "run"),
        export_dir=str(root / "export"),
        epochs=1,
        batch_size=16,
        verbose=0,
        attention_examples=5,
        model=model.ModelConfig(**TINY),
    )
    metrics = train.run(config)
    return {"metrics": metrics, "config": config, **fixture}


# ----------------------------------------------------------------------------- data


def test_builder_splits_labels_and_metadata(trained):
    table = trained["tables"]["movies"]
    kept = _kept(table)
    # `run` prepared it already; tfds.load finds it by name like any tfds dataset.
    ds = tfds.load("vader_sentiment/movies", data_dir=trained["config"].data_dir,
                   download=False, split=["train", "validation", "test"])
    seen = {}
    for split, part in zip(("train", "validation", "test"), ds, strict=True):
        for ex in tfds.as_numpy(part):
            key = ex["id"].decode()
            assert key not in seen, f"{key} is in two splits"
            seen[key] = (split, int(ex["label"]), ex["text"].decode(), float(ex["mean_rating"]))
    expected = {i: (m, t) for i, m, t in kept}
    assert set(seen) == set(expected)  # near-neutral sentences dropped, nothing else
    for key, (split, label, text, mean) in seen.items():
        assert label == int(expected[key][0] > 0)
        assert text == expected[key][1]  # CRLF stripped, UTF-8 (café) intact
        assert mean == pytest.approx(expected[key][0], abs=1e-5)
        assert split == data.split_of("movies", key)
    counts = {s: sum(v[0] == s for v in seen.values()) for s in ("train", "validation", "test")}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0

    builder = data.vader_builder("movies", trained["config"].data_dir, trained["sdist"])
    meta = builder.info.metadata
    assert meta["sentences"] == len(table) and meta["kept"] == len(kept)
    assert meta["positive"] == sum(m > 0 for _, m, _ in kept)
    assert meta["split_sizes"] == counts
    assert meta["archive_found_by"] == "archive argument"


def test_split_of_is_a_stable_function_of_the_sentence():
    ids = [str(i) for i in range(2000)]
    first = [data.split_of("movies", i) for i in ids]
    assert first == [data.split_of("movies", i) for i in reversed(ids)][::-1]
    share = {s: first.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert 0.76 < share["train"] < 0.84 and 0.07 < share["test"] < 0.13
    # Another domain's sentence "1" is a different item.
    assert [data.split_of("tweets", i) for i in ids] != first


def test_inner_tarball_and_sdist_read_the_same(fixture):
    for domain, filename in fixture_archive.FILES.items():
        a = data.read_ground_truth(fixture["sdist"], filename)
        b = data.read_ground_truth(fixture["inner"], filename)
        assert a == b == [(i, m, t) for i, m, t in fixture["tables"][domain]]


def test_manual_dir_is_used(fixture, tmp_path):
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    os.link(fixture["sdist"], manual / data.ARCHIVE_NAME)
    builder = data.vader_builder("nyt", str(tmp_path))
    assert builder.info.metadata["archive_found_by"] == "manual dir"
    assert builder.info.splits.total_num_examples == len(_kept(fixture["tables"]["nyt"]))


def test_pip_failure_says_what_was_tried_and_what_to_do(tmp_path, monkeypatch):
    calls = []

    def failing_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(data.subprocess, "run", failing_run)
    monkeypatch.delenv(data.ARCHIVE_ENV, raising=False)
    with pytest.raises(RuntimeError) as err:
        data.vader_builder("movies", str(tmp_path))
    message = str(err.value)
    assert calls and calls[0][:3] == [sys.executable, "-m", "pip"]
    assert "--no-binary :all:" in message and data.PACKAGE in message
    assert "No matching distribution" in message
    assert data.ARCHIVE_ENV in message and "downloads/manual" in message
    assert "--vader_archive" in message
    assert not os.path.exists(tmp_path / "vader_sentiment" / "movies" / "1.0.0")


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'imdb'"):
        data.load_splits("imdb", str(tmp_path))


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "variant, extra",
    [(v, {}) for v in model.VARIANTS]
    + [("bilstm_attention", {"attention_hops": 3, "attention_penalty": 0.1})],
)
def test_variant_builds_trains_and_explains(variant, extra):
    config = model.ModelConfig(variant=variant, **TINY, **extra)
    classifier, explainer = model.build_models(config)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, config.vocab_size, size=(6, config.max_length)).astype("int32")
    lengths = np.array([16, 9, 3, 1, 12, 0])
    ids[np.arange(16)[None, :] >= lengths[:, None]] = 0
    labels = np.array([0, 1, 0, 1, 1, 0])
    one_training_step_changes_weights(classifier, ids, labels,
                                      loss="sparse_categorical_crossentropy")
    out = explainer(ids, training=False)
    probs = np.asarray(out["probabilities"])
    weights = np.asarray(out["attention_weights"])
    assert probs.shape == (6, 2) and weights.shape == (6, config.max_length)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, classifier(ids, training=False), atol=1e-6)  # shared
    assert np.all(weights[ids == 0] == 0)
    np.testing.assert_allclose(weights.sum(-1), (lengths > 0).astype(float), atol=1e-5)
    if variant == "mean_pooling":
        np.testing.assert_allclose(weights[1, :9], 1 / 9, atol=1e-6)
    else:
        assert not np.allclose(weights[0], 1 / 16)  # learned, not uniform


def test_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="variant='cnn'.*bilstm_attention"):
        model.ModelConfig(variant="cnn")


@pytest.mark.parametrize("field, value", [
    ("attention_hops", 0), ("lstm_units", 2.5), ("dropout", 1.0), ("attention_dropout", -0.1),
    ("learning_rate", 0.0), ("attention_penalty", -1.0), ("learning_rate", True),
])
def test_bad_model_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        model.ModelConfig(**{field: value})


# ----------------------------------------------------------------------------- run


def test_run_writes_metrics_plots_and_export(trained):
    metrics, config = trained["metrics"], trained["config"]
    assert metrics["variant"] == "bilstm_attention" and metrics["epochs"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["params"] > 0 and metrics["train_seconds"] > 0
    ood = metrics["out_of_domain"]
    assert set(ood) == {"tweets", "amazon", "nyt"}
    for domain, result in ood.items():
        assert result["examples"] == len(_kept(trained["tables"][domain]))
        assert 0.0 <= result["accuracy"] <= 1.0
    with open(metrics["metrics_json"], encoding="utf-8") as f:
        written = json.load(f)
    assert written["app"] == "sentiment"
    assert written["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert "test_accuracy=" in metrics["results_line"] and "tweets=" in metrics["results_line"]

    with open(metrics["attention_html"], encoding="utf-8") as f:
        page = f.read()
    assert page.count('<div class="s">') == 5 and 'class="w"' in page
    with open(metrics["attention_png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert metrics["export"] == os.path.join(config.export_dir, "1")
    assert common_export.existing_versions(config.export_dir) == [1]
    vocab = common_text.Tokenizer.load(os.path.join(config.model_dir, "vocabulary.json"))
    assert "wonderful" in vocab.vocabulary and vocab.max_length == TINY["max_length"]


def test_attention_plots_shade_by_weight(tmp_path):
    tokens = np.array([[b"a", b"fine", b"film", b""], [b"", b"", b"", b""]])
    weights = np.array([[0.2, 0.7, 0.1, 0.0], [0, 0, 0, 0]])
    probs = np.array([[0.1, 0.9], [0.6, 0.4]])
    path = plots.attention_html(str(tmp_path / "a.html"), tokens, weights, [1, 0], probs)
    page = open(path, encoding="utf-8").read()
    assert 'title="0.700" style="background:rgba(220,60,30,1.000)">fine' in page
    assert 'title="0.100" style="background:rgba(220,60,30,0.143)">film' in page
    png = plots.attention_png(str(tmp_path / "a.png"), tokens, weights, [1, 0], probs)
    assert os.path.getsize(png) > 1000


# ----------------------------------------------------------------------------- SavedModel

_SERVE = """
model = tf.saved_model.load(ARGS["path"])
fn = model.signatures["serving_default"]
inputs = fn.structured_input_signature[1]
outputs = fn.structured_outputs
RESULT = {
    "signatures": sorted(model.signatures.keys()),
    "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
    "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in outputs.items()},
    "cases": {},
}
long_text = " ".join(["wonderful"] * 5000)
cases = {
    "normal": [b"The film was wonderful !", b"A dull , tedious plot ."],
    "empty": [b""],
    "long": [long_text.encode()],
    "bad_utf8": [b"\\xff\\xfe", b"good \\xc3\\x28 film"],
    "zero": [],
    "nul": [b"a gripping film \\x00 no wait , it was dull",
            b"a gripping film   no wait , it was dull"],
    "unicode_spaces": ["fine\\u00a0film\\u2003\\u3000!\\u2028ok\\t\\x0b".encode()],
    "spaces_only": ["  \\u00a0\\u2003\\n".encode()],
    "huge": [b"dull " * 300000],
}
for name, texts in cases.items():
    out = fn(text=tf.constant(texts, dtype=tf.string, shape=[len(texts)]))
    RESULT["cases"][name] = {
        "probabilities": out["probabilities"].numpy().tolist(),
        "label": [x.decode() for x in out["label"].numpy()],
        "attention_weights": out["attention_weights"].numpy().tolist(),
        "tokens": [[t.decode() for t in row] for row in out["tokens"].numpy()],
        "dtypes": {k: v.dtype.name for k, v in out.items()},
    }
try:
    fn(text=tf.constant(["ok"] * 257))
    RESULT["too_many"] = None
except tf.errors.InvalidArgumentError as err:
    RESULT["too_many"] = err.message
"""


@pytest.fixture(scope="module")
def served(trained):
    return run_isolated(_SERVE, path=trained["metrics"]["export"])


def test_signature_names_dtypes_and_shapes(served):
    assert served["signatures"] == ["serving_default"]
    assert served["inputs"] == {"text": ["string", [None]]}
    assert served["outputs"] == {
        "probabilities": ["float32", [None, 2]],
        "label": ["string", [None]],
        "attention_weights": ["float32", [None, TINY["max_length"]]],
        "tokens": ["string", [None, TINY["max_length"]]],
    }
    for case in served["cases"].values():
        assert case["dtypes"] == {"probabilities": "float32", "label": "string",
                                  "attention_weights": "float32", "tokens": "string"}


def test_served_outputs_are_consistent(served):
    case = served["cases"]["normal"]
    assert case["tokens"][0][:6] == ["the", "film", "was", "wonderful", "!", ""]
    probs = np.array(case["probabilities"])
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert case["label"] == [["negative", "positive"][i] for i in probs.argmax(-1)]
    weights = np.array(case["attention_weights"])
    padding = np.array(case["tokens"]) == ""
    assert np.all(weights[padding] == 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_bad_inputs_give_defined_results(served):
    T = TINY["max_length"]
    empty = served["cases"]["empty"]
    assert empty["tokens"] == [[""] * T]
    assert empty["attention_weights"] == [[0.0] * T]
    assert empty["label"][0] in ("negative", "positive")
    np.testing.assert_allclose(np.sum(empty["probabilities"]), 1.0, atol=1e-5)

    long = served["cases"]["long"]
    assert long["tokens"] == [["wonderful"] * T]  # truncated to T tokens
    assert min(long["attention_weights"][0]) > 0
    np.testing.assert_allclose(np.sum(long["attention_weights"][0]), 1.0, atol=1e-5)

    bad = served["cases"]["bad_utf8"]
    # Invalid bytes become U+FFFD (a symbol token), not an error.
    assert bad["tokens"][0][:3] == ["\ufffd", "\ufffd", ""]
    assert bad["tokens"][1][:5] == ["good", "\ufffd", "(", "film", ""]
    assert np.all(np.isfinite(bad["probabilities"]))

    zero = served["cases"]["zero"]
    assert zero["probabilities"] == [] and zero["label"] == [] and zero["tokens"] == []


def test_nul_and_unicode_spaces_separate_words_and_cut_nothing(served):
    """A NUL once cut the text (tf.strings.lower stops there): the rest is read now."""
    nul = served["cases"]["nul"]
    assert nul["tokens"][0] == nul["tokens"][1]
    assert "dull" in nul["tokens"][0]
    np.testing.assert_allclose(nul["probabilities"][0], nul["probabilities"][1], atol=1e-6)
    spaced = served["cases"]["unicode_spaces"]["tokens"][0]
    assert spaced[:5] == ["fine", "film", "!", "ok", ""]
    blank = served["cases"]["spaces_only"]
    assert blank["tokens"] == [[""] * TINY["max_length"]]
    assert blank["probabilities"] == served["cases"]["empty"]["probabilities"]


def test_request_limits(served):
    huge = served["cases"]["huge"]  # 1.5 MB: read up to 1 MiB, then the first T tokens
    assert huge["tokens"] == [["dull"] * TINY["max_length"]]
    assert "text holds 257 items; this model answers at most 256" in served["too_many"]


def test_saved_model_cli_shows_the_signature(trained):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "show", "--dir", trained["metrics"]["export"], "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    for name in ("text", "probabilities", "label", "attention_weights", "tokens"):
        assert f"['{name}']" in proc.stdout


@pytest.fixture
def small_parts():
    split = data.Split(np.array([b"good film", b"bad plot", b"good good plot"], dtype=object),
                       np.array([1, 0, 1]))
    tokenizer = data.make_tokenizer(split, 50, 8)
    _, explainer = model.build_models(model.ModelConfig(**{**TINY, "max_length": 8,
                                                           "vocab_size": 50}))
    return tokenizer, explainer


def test_export_computes_what_the_keras_model_computes(small_parts, tmp_path):
    tokenizer, explainer = small_parts
    path = sentiment_export.export(tokenizer, explainer, str(tmp_path / "export"))
    assert path == str(tmp_path / "export" / "1")
    texts = tf.constant(["good film", "a bad , bad plot", "unseen words only"])
    served = tf.saved_model.load(path).signatures["serving_default"](text=texts)
    tokens, ids = tokenizer.tokenize(texts)
    expected = explainer(ids, training=False)
    np.testing.assert_allclose(served["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_allclose(served["attention_weights"], expected["attention_weights"],
                               atol=1e-6)
    assert served["tokens"].numpy().tolist() == tokens.numpy().tolist()


def test_interrupted_export_leaves_no_version(small_parts, tmp_path, monkeypatch):
    tokenizer, explainer = small_parts
    real_save = tf.saved_model.save

    def save_then_die(module, path, signatures=None):
        real_save(module, path, signatures=signatures)
        raise KeyboardInterrupt  # killed after writing, before the rename

    monkeypatch.setattr(tf.saved_model, "save", save_then_die)
    base = str(tmp_path / "export")
    with pytest.raises(KeyboardInterrupt):
        sentiment_export.export(tokenizer, explainer, base)
    assert common_export.existing_versions(base) == []
    assert os.listdir(base) == []


def test_flags_map_to_the_config():
    from absl import flags
    from absl.testing import flagsaver

    flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(variant="transformer", max_words=40, epochs=3,
                             dataset="vader_sentiment/tweets"):
        config = train.config_from_flags()
    assert config.model.variant == "transformer" and config.model.max_length == 40
    assert config.epochs == 3 and config.dataset == "vader_sentiment/tweets"
    with flagsaver.flagsaver(variant="cnn"), pytest.raises(flags.ValidationError,
                                                           match="--variant='cnn'"):
        train.config_from_flags()


def test_warmup_requests_replay_without_the_project(trained):
    answered = replay_warmup(trained["metrics"]["export"])
    assert [name for name, _ in answered] == ["serving_default"]
