"""The `bert` variant: a pretrained BERT checkpoint (a tiny one made here, in Hugging Face's
layout) fine-tuned end to end, and its SavedModel served without the project."""

from __future__ import annotations

import os

import numpy as np
import pytest

from apps.common import bert
from apps.sentiment import model, train
from tests.apps.common import bert_fixture
from tests.apps.sentiment.fixtures import tiny_model
from tests.apps.serving_checks import replay_warmup, run_isolated

pytestmark = pytest.mark.slow

PIECES = 24


def bert_model(**overrides) -> model.ModelConfig:
    return tiny_model(**{"variant": "bert", "pieces": PIECES, "attention_units": 8,
                         **overrides})


@pytest.fixture(scope="module")
def bert_run(fixture, tmp_path_factory):
    root = tmp_path_factory.mktemp("bert_run")
    checkpoint = bert_fixture.make_checkpoint(str(root / "checkpoint"))
    config = train.TrainConfig(
        dataset="vader_sentiment/movies", data_dir=str(fixture["root"] / "data"),
        archive=fixture["sdist"], model_dir=str(root / "run"),
        export_dir=str(root / "export"), batch_size=8, verbose=0, attention_examples=3,
        pretrained=checkpoint, model=bert_model())
    return {"result": train.run(config), "config": config, "checkpoint": checkpoint}


def test_fine_tunes_the_checkpoint_and_records_it(bert_run):
    metrics = bert_run["result"].metrics
    assert metrics["vocabulary"] == "bert" and metrics["variant"] == "bert"
    assert metrics["pretrained"]["directory"] == bert_run["checkpoint"]
    # The variant's defaults: one epoch of 32 (no --epochs, --batch_size=8 given).
    assert metrics["epochs"] == 1 and metrics["batch_size"] == 8
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert set(metrics["out_of_domain"]) == {"tweets", "amazon", "nyt"}
    vocab = os.path.join(bert_run["config"].model_dir, "subword", "vocab.txt")
    assert open(vocab, encoding="utf-8").read().split("\n")[:3] == ["[PAD]", "[unused0]",
                                                                    "[UNK]"]


def test_built_model_starts_from_the_checkpoint_and_ignores_padding(bert_run):
    checkpoint = bert_run["checkpoint"]
    encoder_config = bert.EncoderConfig.from_json(os.path.join(checkpoint, "config.json"))
    tensors = bert.read_safetensors(os.path.join(checkpoint, "model.safetensors"))
    models = model.build_model(bert_model(), encoder_config=encoder_config)
    bert.load_weights(models.classifier, tensors, encoder_config)
    np.testing.assert_array_equal(
        models.classifier.get_layer("bert_layer_1").get_weights()[-1],
        tensors["encoder.layer.1.output.LayerNorm.bias"])
    tokenizer = bert.tokenizer(checkpoint, PIECES)
    _, ids = tokenizer.tokenize(["the film was wonderful !", "dull"])
    ids = ids.numpy()
    full = models.explainer.predict(ids, verbose=0)
    longest = int((ids != 0).sum(1).max())
    trimmed = models.explainer.predict(ids[:, :longest], verbose=0)
    np.testing.assert_allclose(full["probabilities"], trimmed["probabilities"], atol=1e-5)
    weights = full["attention_weights"]
    assert weights.shape == ids.shape
    assert np.all(weights[ids == 0] == 0)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    # Started at the mean (the checkpoint's own pooling): uniform over the pieces.
    np.testing.assert_allclose(weights[1, :3], 1 / 3, atol=1e-6)


def test_config_refuses_what_bert_cannot_take():
    with pytest.raises(ValueError, match="variant='bert' brings its checkpoint's own"):
        train.TrainConfig(model=bert_model(), vocabulary="subword")
    with pytest.raises(ValueError, match="lexicon='vader' is not available for variant='bert'"):
        bert_model(lexicon="vader")
    with pytest.raises(ValueError, match="pieces=2"):
        bert_model(pieces=2)
    assert train.TrainConfig(model=bert_model()).resolved_epochs == 1
    assert train.TrainConfig().resolved_batch_size == 32  # bert, the default
    assert train.TrainConfig(model=tiny_model()).resolved_batch_size == 64
    assert train.TrainConfig(model=tiny_model()).resolved_epochs == 6


_SERVE = """
model = tf.saved_model.load(ARGS["path"])
fn = model.signatures["serving_default"]
cases = {
    "normal": [b"The film was wonderful !", b"dull"],
    "empty": [b"", b" \\t\\u00a0 ".decode("unicode_escape").encode()],
    "long": [(" ".join(["wonderful"] * 3000)).encode()],
    "bad": [b"\\xff\\xfe caf\\xc3\\xa9 \\xc3\\x28", "great\\U0001F600 Caf\\u00c9".encode()],
}
RESULT = {"outputs": sorted(fn.structured_outputs)}
for name, texts in cases.items():
    out = fn(text=tf.constant(texts))
    RESULT[name] = {
        "tokens": [[t.decode() for t in row] for row in out["tokens"].numpy()],
        "weights": out["attention_weights"].numpy().tolist(),
        "probabilities": out["probabilities"].numpy().tolist(),
        "label": [x.decode() for x in out["label"].numpy()],
    }
"""


def test_export_serves_raw_text_without_the_project(bert_run):
    path = bert_run["result"].export_path
    served = run_isolated(_SERVE, path=path)
    assert served["outputs"] == ["attention_weights", "label", "probabilities", "tokens"]
    normal = served["normal"]
    assert normal["tokens"][0][:8] == ["[CLS]", "the", "film", "was", "wonderful", "!",
                                       "[SEP]", ""]
    for tokens, weights in zip(normal["tokens"], normal["weights"], strict=True):
        assert len(tokens) == len(weights) == PIECES
        assert all(w == 0 for t, w in zip(tokens, weights, strict=True) if t == "")
        assert abs(sum(weights) - 1) < 1e-5
    # No words: [CLS] [SEP] only, a defined answer.
    assert [t[:3] for t in served["empty"]["tokens"]] == [["[CLS]", "[SEP]", ""]] * 2
    assert served["empty"]["probabilities"][0] == pytest.approx(
        served["empty"]["probabilities"][1], abs=1e-6)
    # Over-long input is cut at `pieces`, [SEP] last.
    long = served["long"]["tokens"][0]
    assert long[0] == "[CLS]" and long[-1] == "[SEP]" and "" not in long
    # Invalid UTF-8 is dropped (BERT's cleaning), accents stripped, an emoji glued to a
    # word makes it [UNK] (as BERT).
    bad = served["bad"]["tokens"]
    assert bad[0][:5] == ["[CLS]", "cafe", "(", "[SEP]", ""]
    assert bad[1][:5] == ["[CLS]", "[UNK]", "cafe", "[SEP]", ""]
    assert all(np.isfinite(p).all() for p in served["bad"]["probabilities"])


def test_export_answers_every_loader(bert_run):
    assert replay_warmup(bert_run["result"].export_path) == [
        ["serving_default", ["attention_weights", "label", "probabilities", "tokens"]]]
