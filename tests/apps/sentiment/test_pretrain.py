"""MLM pretraining (issue 16): masking, a loss that falls, the artefact, `init_from`, and the
subword export answered where the project cannot be imported."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from apps.common import subword
from apps.sentiment import model as sentiment_model
from apps.sentiment import pretrain, train
from tests.apps.sentiment.fixtures import tiny_model
from tests.apps.serving_checks import replay_warmup, run_isolated

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow

TINY_ENCODER = dict(variant="transformer", vocab_size=700, max_length=16, embedding_dim=16,
                    num_layers=1, num_heads=2, intermediate_dim=16, embedding_dropout=0.0,
                    transformer_dropout=0.0, learning_rate=1e-2)
_WORDS = ("the film was good bad great dull plot actor story scene music long short "
          "funny boring moving slow quick and but not very quite a an of in it this "
          "that is was review movie director cast ending").split()


def _corpus(path, lines=300, seed=0):
    rng = np.random.RandomState(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join(rng.choice(_WORDS, size=rng.randint(4, 12))) + " .\n")
    return str(path)


# ----------------------------------------------------------------------------- masking
def test_masking_follows_bert_proportions_on_a_large_batch():
    rng = np.random.RandomState(0)
    batch, length, vocab, first = 4000, 40, 600, len(subword.RESERVED)
    ids = rng.randint(first, vocab, size=(batch, length)).astype(np.int32)
    lengths = rng.randint(0, length + 1, size=batch)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0  # padding
    ids[:, 0] = np.where(lengths > 0, 2, 0)  # [START]: reserved, never chosen
    mask_id = subword.RESERVED.index(subword.MASK)
    inputs, positions, labels, weights = (x.numpy() for x in pretrain.mask_pieces(
        ids, tf.constant([3, 4]), vocab_size=vocab, mask_id=mask_id, first_piece=first,
        rate=0.15, max_predictions=6))
    assert positions.shape == labels.shape == weights.shape == (batch, 6)
    eligible = (ids >= first).sum(axis=1)
    want = np.minimum(np.maximum(np.round(0.15 * eligible), np.minimum(eligible, 1)), 6)
    np.testing.assert_array_equal(weights.sum(axis=1), want)
    rows = np.repeat(np.arange(batch)[:, None], 6, axis=1)
    used = weights > 0
    assert (ids[rows[used], positions[used]] >= first).all()  # never padding nor reserved
    np.testing.assert_array_equal(labels[used], ids[rows[used], positions[used]])
    assert (labels[~used] == 0).all()
    for r in range(50):  # distinct positions within a row
        assert len(set(positions[r][used[r]])) == int(used[r].sum())
    after = inputs[rows[used], positions[used]]
    n = used.sum()
    masked, kept = np.mean(after == mask_id), np.mean(after == labels[used])
    replaced = np.mean((after != mask_id) & (after != labels[used]))
    # 80/10/10 within 4 standard errors (n is about 17,000); a random piece equal to the
    # original (1/595) counts as kept.
    for got, p in ((masked, 0.8), (kept, 0.1 + 0.1 / (vocab - first)),
                   (replaced, 0.1 * (1 - 1 / (vocab - first)))):
        assert abs(got - p) < 4 * np.sqrt(p * (1 - p) / n), (got, p)
    assert ((after >= first) | (after == mask_id)).all()  # random pieces are real pieces
    chosen = np.zeros_like(ids, dtype=bool)
    chosen[rows[used], positions[used]] = True
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # the rest untouched


def test_the_vocabulary_reads_lines_from_the_whole_corpus_not_its_first_source():
    # The corpus is stored source by source; the first lines would be one source only.
    texts = [f"debian {i}" for i in range(900)] + [f"brown {i}" for i in range(100)]
    sample = pretrain.vocabulary_sample(texts, 200, seed=3)
    assert len(sample) == len(set(sample)) == 200
    assert 5 < sum(t.startswith("brown") for t in sample) < 40  # about 20 expected
    assert sample == sorted(sample, key=texts.index)  # corpus order kept
    assert sample == pretrain.vocabulary_sample(texts, 200, seed=3)
    assert sample != pretrain.vocabulary_sample(texts, 200, seed=4)
    assert pretrain.vocabulary_sample(texts[:50], 200, seed=3) == texts[:50]


def test_masking_is_seeded():
    ids = np.random.RandomState(1).randint(5, 100, size=(8, 20)).astype(np.int32)
    kwargs = dict(vocab_size=100, mask_id=4, first_piece=5, rate=0.15, max_predictions=3)
    a = [x.numpy() for x in pretrain.mask_pieces(ids, tf.constant([1, 1]), **kwargs)]
    b = [x.numpy() for x in pretrain.mask_pieces(ids, tf.constant([1, 1]), **kwargs)]
    c = [x.numpy() for x in pretrain.mask_pieces(ids, tf.constant([1, 2]), **kwargs)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])


# ----------------------------------------------------------------------------- training
def test_a_tiny_mlm_pretraining_lowers_its_loss(tmp_path):
    texts = open(_corpus(tmp_path / "c.txt", 200), encoding="utf-8").read().splitlines()
    tokenizer = subword.SubwordTokenizer(subword.train_vocabulary(texts, 600), 16)
    config = pretrain.PretrainConfig(
        corpus="unused", batch_size=32, steps_per_epoch=1, warmup_steps=0,
        model=sentiment_model.ModelConfig(**{**TINY_ENCODER,
                                             "vocab_size": tokenizer.vocabulary_size}))
    batches = list(pretrain.make_dataset(texts, tokenizer, config).take(4))
    mlm, _ = pretrain.build_mlm_model(config.model, config.predictions)
    pretrain.compile_mlm(mlm, config, total_steps=60)
    x, y, w = _stack(batches)
    first = mlm.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["loss"]
    for _ in range(15):
        for bx, by, bw in batches:
            mlm.train_on_batch(bx, by, sample_weight=bw)
    last = mlm.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(first) and last < first - 1.0, (first, last)


def _stack(batches):
    x = {k: tf.concat([b[0][k] for b in batches], 0) for k in batches[0][0]}
    return (x, tf.concat([b[1] for b in batches], 0),
            tf.concat([b[2] for b in batches], 0))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    config = pretrain.PretrainConfig(
        corpus=_corpus(root / "corpus.txt"), out=str(root / "artifacts" / "pretrained"),
        model_dir=str(root / "run"), epochs=2, steps_per_epoch=3, batch_size=16,
        warmup_steps=1, verbose=0, model=sentiment_model.ModelConfig(**TINY_ENCODER))
    return {"meta": pretrain.run(config), "config": config, "root": root}


def test_pretrain_writes_a_complete_artifact(checkpoint):
    out = checkpoint["config"].out
    assert checkpoint["meta"]["out"] == os.path.abspath(out)
    assert sorted(os.listdir(out)) == sorted(
        ["vocab.txt", "tokenizer.json", "encoder.weights.h5", "mlm.weights.h5", "pretrain.json"])
    assert os.listdir(os.path.dirname(out)) == ["pretrained"]  # no temporary left behind
    with open(os.path.join(out, "pretrain.json"), encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["steps"] == 6 and meta["batch_size"] == 16 and meta["max_predictions"] == 3
    assert meta["corpus"]["sentences_read"] == 300 and meta["corpus"]["words_read"] > 1200
    assert len(meta["history"]["loss"]) == 2
    loaded = pretrain.read_checkpoint(out)
    assert loaded["config"].vocab_size == loaded["tokenizer"].vocabulary_size == len(
        subword.load_vocabulary(os.path.join(out, "vocab.txt")))
    assert subword.MASK in loaded["tokenizer"].vocabulary


def test_pretrain_refuses_a_run_directory_of_another_configuration(checkpoint):
    other = dataclasses.replace(checkpoint["config"], batch_size=8)
    with pytest.raises(ValueError, match="another configuration"):
        pretrain.run(other)


# ----------------------------------------------------------------------------- fine-tuning
def _fine_tune_config(trained, checkpoint, name, **overrides):
    root = checkpoint["root"]
    model = overrides.pop("model", tiny_model(variant="transformer", vocab_size=16000,
                                              **{k: TINY_ENCODER[k] for k in (
                                                  "max_length", "embedding_dim",
                                                  "num_heads", "intermediate_dim")}))
    return train.TrainConfig(
        dataset="vader_sentiment/movies", data_dir=str(trained["root"] / "data"),
        archive=trained["sdist"], model_dir=str(root / name), export_dir=str(root / "export"),
        epochs=1, batch_size=16, verbose=0, attention_examples=0, out_of_domain=False,
        **{"init_from": checkpoint["config"].out, "model": model, **overrides})


def test_load_encoder_copies_the_pretrained_weights(checkpoint):
    loaded = pretrain.read_checkpoint(checkpoint["config"].out)
    mc = pretrain.fine_tuning_config(tiny_model(variant="transformer"), loaded, "x")
    models = sentiment_model.build_model(mc)
    before = models.classifier.get_layer("token_embedding").get_weights()[0].copy()
    names = pretrain.load_encoder(models.classifier, loaded, "x")
    assert names == ["token_embedding", "position_embedding", "encoder_0"]
    encoder = pretrain.build_encoder(loaded["config"])
    encoder.load_weights(loaded["encoder_weights"])
    for name in names:
        for got, want in zip(models.classifier.get_layer(name).get_weights(),
                             encoder.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(before, encoder.get_layer("token_embedding").get_weights()[0])


@pytest.fixture(scope="module")
def fine_tuned(trained, checkpoint):
    config = _fine_tune_config(trained, checkpoint, "fine_tune")
    return {"result": train.run(config), "config": config}


def test_fine_tuning_from_the_checkpoint_trains_and_exports(fine_tuned, checkpoint):
    metrics = fine_tuned["result"].metrics
    assert metrics["init_from"] == checkpoint["config"].out
    assert metrics["vocabulary"] == "subword" and metrics["variant"] == "transformer"
    assert metrics["config"]["embedding_dim"] == TINY_ENCODER["embedding_dim"]
    assert metrics["config"]["vocab_size"] == checkpoint["meta"]["model"]["vocab_size"]
    assert np.isfinite(metrics["history"]["loss"][0]) and 0 <= metrics["test_accuracy"] <= 1
    saved = os.path.join(fine_tuned["config"].model_dir, "subword", "vocab.txt")
    assert subword.load_vocabulary(saved) == subword.load_vocabulary(
        os.path.join(checkpoint["config"].out, "vocab.txt"))


_SERVE = """
model = tf.saved_model.load(ARGS["path"])
fn = model.signatures["serving_default"]
out = fn(text=tf.constant(["the film was boringfilmscenes", "", "\\xff"]))

def plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value

RESULT = {k: plain(v.numpy().tolist()) for k, v in out.items()}
"""

def test_the_subword_export_answers_without_the_project(fine_tuned):
    path = fine_tuned["result"].export_path
    out = run_isolated(_SERVE, path=path)
    assert set(out) == {"probabilities", "label", "tokens", "attention_weights"}
    tokens = [t for t in out["tokens"][0] if t]
    assert tokens[:3] == ["the", "film", "was"]
    unseen = tokens[3:]
    assert len(unseen) > 1 and all(t.startswith("##") for t in unseen[1:])
    assert "".join(t.removeprefix("##") for t in unseen) == "boringfilmscenes"
    assert "[UNK]" not in tokens
    assert out["tokens"][1] == [""] * TINY_ENCODER["max_length"]
    assert out["label"][0] in ("negative", "positive")
    np.testing.assert_allclose(np.sum(out["attention_weights"][0]), 1.0, atol=1e-5)
    replay_warmup(path)


def test_init_from_errors_name_the_path(trained, checkpoint, tmp_path):
    good = checkpoint["config"].out
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train.run(_fine_tune_config(trained, checkpoint, "e1",
                                    **{"init_from": str(tmp_path / "nowhere")}))
    partial = tmp_path / "partial"
    shutil.copytree(good, partial)
    os.remove(partial / "encoder.weights.h5")
    with pytest.raises(FileNotFoundError, match=r"partial.*encoder\.weights\.h5"):
        pretrain.read_checkpoint(str(partial))
    cut = tmp_path / "cut"
    shutil.copytree(good, cut)
    lines = open(cut / "vocab.txt", encoding="utf-8").read().splitlines()
    with open(cut / "vocab.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:-3]) + "\n")
    with pytest.raises(ValueError, match=rf"cut.*{len(lines) - 3} pieces.*vocab_size="
                                         rf"{len(lines)}"):
        pretrain.read_checkpoint(str(cut))
    wide = tiny_model(variant="transformer", embedding_dim=24)
    with pytest.raises(ValueError, match=r"model\.embedding_dim=24 does not match.*=16"):
        train.run(_fine_tune_config(trained, checkpoint, "e2", model=wide))
    with pytest.raises(ValueError, match="variant=transformer"):
        train.TrainConfig(init_from=good, model=tiny_model(variant="bilstm_attention"))
    with pytest.raises(ValueError, match="vocabulary=word"):
        train.TrainConfig(init_from=good, vocabulary="word",
                          model=tiny_model(variant="transformer"))


def test_subword_vocabulary_without_pretraining(trained, checkpoint):
    config = dataclasses.replace(
        _fine_tune_config(trained, checkpoint, "subword_only"), init_from=None,
        vocabulary="subword", export_dir=None,
        model=tiny_model(variant="bilstm_attention", vocab_size=600))
    result = train.run(config)
    assert result.metrics["vocabulary"] == "subword" and result.metrics["init_from"] is None
    vocabulary = subword.load_vocabulary(os.path.join(config.model_dir, "subword", "vocab.txt"))
    assert len(vocabulary) <= 600 and vocabulary[:5] == list(subword.RESERVED)
    with pytest.raises(ValueError, match="variant=han"):
        train.TrainConfig(vocabulary="subword", model=tiny_model(variant="han"))


class _Crash(Exception):
    pass


def test_a_killed_pretraining_resumes_with_its_vocabulary(tmp_path, monkeypatch):
    import keras

    from apps.common import training

    class CrashAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Crash(f"killed after epoch {epoch}")

    config = pretrain.PretrainConfig(
        corpus=_corpus(tmp_path / "corpus.txt", 120), out=str(tmp_path / "out"),
        model_dir=str(tmp_path / "run"), epochs=3, steps_per_epoch=2, batch_size=16,
        warmup_steps=0, verbose=0, model=sentiment_model.ModelConfig(**TINY_ENCODER))
    original = training.callbacks
    # The checkpoint is written at the end of the epoch, then the "kill".
    monkeypatch.setattr(training, "callbacks",
                        lambda model_dir: original(model_dir) + [CrashAfterFirstEpoch()])
    with pytest.raises(_Crash, match="after epoch 0"):
        pretrain.run(config)
    assert not os.path.exists(config.out)  # nothing published by a killed run
    vocabulary = subword.load_vocabulary(str(tmp_path / "run" / "tokenizer" / "vocab.txt"))
    trained = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trained.append(epoch)

    monkeypatch.setattr(training, "callbacks", lambda model_dir: original(model_dir) + [Count()])
    meta = pretrain.run(config)
    assert trained == [1, 2]  # resumed after the finished epoch
    assert len(meta["history"]["loss"]) == 3  # epoch 0 from the killed run, then 1 and 2
    assert subword.load_vocabulary(os.path.join(config.out, "vocab.txt")) == vocabulary


def test_init_encoder_false_takes_the_vocabulary_but_not_the_weights(trained, checkpoint,
                                                                     monkeypatch):
    calls = []
    monkeypatch.setattr(pretrain, "load_encoder", lambda *args: calls.append(args))
    config = dataclasses.replace(_fine_tune_config(trained, checkpoint, "scratch"),
                                 init_encoder=False, export_dir=None)
    metrics = train.run(config).metrics
    assert calls == [] and metrics["init_encoder"] is False
    assert metrics["config"]["embedding_dim"] == TINY_ENCODER["embedding_dim"]
    assert subword.load_vocabulary(os.path.join(config.model_dir, "subword", "vocab.txt")) == \
        subword.load_vocabulary(os.path.join(checkpoint["config"].out, "vocab.txt"))
