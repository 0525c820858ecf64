"""The SavedModel contract: signature, outputs, bad inputs, limits, warmup, atomic export.

The module-scoped `served` answers come from a fresh interpreter that cannot
import this project (as TF Serving sees the export of the package's `trained` run).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from apps.common import export as common_export
from apps.sentiment import export as sentiment_export
from apps.sentiment import model, pipeline
from tests.apps.sentiment.fixtures import TINY, tiny_model
from tests.apps.serving_checks import replay_warmup, run_isolated

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow

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
    "too_many": None,
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
    "emoticons": [b"it is :)", b"it is :-(", b"it is <3 !"],
}
for name, texts in cases.items():
    out = fn(text=tf.constant(texts, dtype=tf.string, shape=[len(texts)]))
    RESULT["cases"][name] = {
        "probabilities": out["probabilities"].numpy().tolist(),
        "label": [x.decode() for x in out["label"].numpy()],
        "attention_weights": out["attention_weights"].numpy().tolist(),
        "tokens": [[t.decode() for t in row] for row in out["tokens"].numpy()],
        "lexicon_score": out["lexicon_score"].numpy().tolist(),
        "dtypes": {k: v.dtype.name for k, v in out.items()},
    }
try:  # one item over the limit: refused
    fn(text=tf.constant(["ok"] * 257))
except tf.errors.InvalidArgumentError as err:
    RESULT["too_many"] = err.message
"""


@pytest.fixture(scope="module")
def served(trained):
    return run_isolated(_SERVE, path=trained["result"].export_path)


def test_signature_names_dtypes_and_shapes(served):
    assert served["signatures"] == ["serving_default"]
    assert served["inputs"] == {"text": ["string", [None]]}
    assert served["outputs"] == {
        "probabilities": ["float32", [None, 2]],
        "label": ["string", [None]],
        "attention_weights": ["float32", [None, TINY["max_length"]]],
        "tokens": ["string", [None, TINY["max_length"]]],
        # The default run has the lexicon prior (model.lexicon=auto on words).
        "lexicon_score": ["float32", [None]],
    }
    for case in served["cases"].values():
        assert case["dtypes"] == {"probabilities": "float32", "label": "string",
                                  "attention_weights": "float32", "tokens": "string",
                                  "lexicon_score": "float32"}


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
    # The lexicon's own verdict: "wonderful" is rated positive, "dull, tedious" negative.
    score = case["lexicon_score"]
    assert 0 < score[0] < 1 and -1 < score[1] < 0


def test_bad_inputs_give_defined_results(served):
    T = TINY["max_length"]
    empty = served["cases"]["empty"]
    assert empty["tokens"] == [[""] * T]
    assert empty["attention_weights"] == [[0.0] * T]
    assert empty["lexicon_score"] == [0.0]
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


def test_the_lexicon_s_emoticons_are_tokens_with_their_ratings(served):
    # The default run has model.emoticons on (with the lexicon): ":)" stays one token, and
    # it alone moves the rule-based score of an otherwise unrated sentence.
    case = served["cases"]["emoticons"]
    assert [row[:4] for row in case["tokens"]] == [
        ["it", "is", ":)", ""], ["it", "is", ":-(", ""], ["it", "is", "<3", "!"]]
    happy, sad, heart = case["lexicon_score"]
    assert happy > 0 > sad and heart > 0


def test_request_limits(served):
    huge = served["cases"]["huge"]  # 1.5 MB: read up to 1 MiB, then the first T tokens
    assert huge["tokens"] == [["dull"] * TINY["max_length"]]
    assert "text holds 257 items; this model answers at most 256" in served["too_many"]


def test_saved_model_cli_shows_the_signature(trained):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "show", "--dir", trained["result"].export_path, "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    for name in ("text", "probabilities", "label", "attention_weights", "tokens"):
        assert f"['{name}']" in proc.stdout


@pytest.fixture
def small_parts():
    split = pipeline.Split(np.array([b"good film", b"bad plot", b"good good plot"],
                                    dtype=object), np.array([1, 0, 1]))
    tokenizer = pipeline.make_tokenizer(split, 50, 8)
    _, explainer = model.build_model(tiny_model(max_length=8, vocab_size=50))
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


def test_warmup_requests_replay_without_the_project(trained):
    answered = replay_warmup(trained["result"].export_path)
    assert [name for name, _ in answered] == ["serving_default"]
