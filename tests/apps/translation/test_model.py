"""Each variant builds, trains a step, and its step function matches teacher forcing."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from apps.common import losses
from apps.translation import model as translation_model
from keras_attention.decoding import beam_search, greedy_search

START, END = 2, 3


def tiny_config(variant, **kwargs):
    base = dict(variant=variant, source_vocab_size=30, target_vocab_size=25, embedding_dim=8,
                units=16, attention_units=8, window=2, num_layers=1, num_heads=2,
                intermediate_dim=16, max_target_length=6, dropout=0.1)
    base.update(kwargs)
    return translation_model.ModelConfig(**base)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, 30, (4, 7)).astype("int32")
    source[0, 3:] = 0
    source[1, 5:] = 0
    target_in = rng.integers(4, 25, (4, 5)).astype("int32")
    target_in[:, 0] = START
    target_out = np.concatenate([target_in[:, 1:], np.full((4, 1), END)], axis=1)
    target_out[0, 3:] = 0
    return source, target_in, target_out.astype("int32")


@pytest.mark.parametrize("variant, extra", [
    ("seq2seq", {}),
    ("bahdanau", {"input_feeding": True}),
    ("luong", {"score": "dot"}),
    ("luong_local", {"score": "concat", "input_feeding": False}),
    ("transformer", {}),
    ("bahdanau", {"copy": True, "target_vocab_size": 30}),
    ("luong_local", {"copy": True, "target_vocab_size": 30, "score": "dot"}),
    # Tied logits are the default; the untied ones of before, each family.
    ("bahdanau", {"copy": True, "target_vocab_size": 30, "tie_embeddings": False}),
    ("transformer", {"tie_embeddings": False}),
])
def test_variant_trains_and_decodes_with_its_training_step(variant, extra):
    model = translation_model.build_model(tiny_config(variant, **extra))
    model.compile(optimizer="adam", loss=losses.masked_cross_entropy(0.1),
                  metrics=[losses.masked_accuracy])
    source, target_in, target_out = batch()
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch((source, target_in), target_out, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["masked_accuracy"] <= 1.0
    after = model.trainable_weights
    changed = [not np.allclose(a, b.numpy()) for a, b in zip(before, after, strict=True)]
    assert sum(changed) >= len(changed) * 0.8, "most weights get gradients"

    # The step function used by decoding (with the tied kernel made once, as the
    # export does) reproduces the teacher-forced logits.
    logits, weights = model((source, target_in), return_attention=True)
    state = model.initial_state(model.encode(tf.constant(source)))
    step = model.decoding_step()
    stepped, attention = [], []
    for t in range(target_in.shape[1]):
        step_logits, state, step_weights = step(tf.constant(target_in[:, t]), state)
        stepped.append(step_logits.numpy())
        attention.append(step_weights.numpy())
    np.testing.assert_allclose(np.stack(stepped, 1), logits.numpy(), atol=1e-4)
    if extra.get("copy"):  # Log-probabilities of the pointer-generator mixture.
        np.testing.assert_allclose(np.exp(logits.numpy()).sum(-1), 1.0, atol=1e-4)
    att = np.stack(attention, 1)
    np.testing.assert_allclose(att, weights.numpy(), atol=1e-5)
    if variant == "seq2seq":
        assert np.all(att == 0)
    else:
        # Weights over the real (unpadded) source tokens only; they sum to 1 (to <= 1
        # for local-p, whose softmax is multiplied by a Gaussian around p_t).
        sums = att.sum(-1)
        if variant == "luong_local":
            assert np.all(sums <= 1 + 1e-5) and np.all(sums > 0)
        else:
            np.testing.assert_allclose(sums, 1.0, atol=1e-4)
        assert np.all(att[0, :, 3:] == 0) and np.all(att[1, :, 5:] == 0)

    # Beam search runs on the same step function.
    state = model.initial_state(model.encode(tf.constant(source)))
    beam = beam_search(step, state, tf.fill([4], START), END, 6, beam_width=2)
    greedy = greedy_search(step, state, tf.fill([4], START), END, 6)
    assert beam.sequences.shape == (4, 6) and beam.attention.shape == (4, 6, 7)
    assert np.all(beam.scores.numpy() >= greedy.scores.numpy() - 1e-4)


@pytest.mark.parametrize("variant", ["bahdanau", "transformer"])
def test_tied_logits_are_the_target_embedding_transposed(variant):
    config = tiny_config(variant, tie_embeddings=True)
    tied, untied = (translation_model.build_model(c)
                    for c in (config, dataclasses.replace(config, tie_embeddings=False)))
    # One (vocab, width) matrix fewer; the RNN family adds a units -> embedding_dim projection.
    # (The untied logits layer is a Dense of units -> vocab in both families.)
    projection = config.units * config.embedding_dim if variant == "bahdanau" else 0
    assert untied.count_params() - tied.count_params() == (
        config.units * config.target_vocab_size - projection)
    assert not any(tuple(w.shape) == (config.units, config.target_vocab_size)
                   for w in tied.weights)
    x = np.random.default_rng(0).normal(size=(3, config.units)).astype("float32")
    layer = tied.output_layer
    layer.bias.assign(np.arange(config.target_vocab_size, dtype="float32"))
    projected = x if layer.projection is None else x @ layer.projection.kernel.numpy()
    expected = projected @ tied.target_embedding.embeddings.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(tied.logits(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    # A change of the embedding is a change of the logits: one variable, not a copy.
    tied.target_embedding.embeddings.assign(tied.target_embedding.embeddings * 2.0)
    np.testing.assert_allclose(tied.logits(x).numpy() - layer.bias.numpy(),
                               2.0 * (expected - layer.bias.numpy()), rtol=1e-5, atol=1e-5)


def test_local_attention_window_is_respected():
    model = translation_model.build_model(tiny_config("luong_local", window=1))
    source, target_in, _ = batch(1)
    source[:] = np.arange(4, 11)
    _, weights = model((source, target_in), return_attention=True)
    nonzero = (weights.numpy() > 0).sum(-1)
    assert nonzero.max() <= 3  # 2D + 1 positions


def test_compiled_loss_ignores_padding_and_smooths():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5)), tf.float32)
    labels = tf.constant([[1, 2, 0], [3, 0, 0]])

    def compiled(variant="seq2seq", **kwargs):
        config = tiny_config(variant, **kwargs)
        return translation_model.compile_model(translation_model.build_model(config), config,
                                               decay_steps=100)

    plain = compiled(label_smoothing=0.0).loss(labels, logits)
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = -np.mean([log_probs[0, 0, 1], log_probs[0, 1, 2], log_probs[1, 0, 3]])
    assert float(plain) == pytest.approx(expected, rel=1e-5)
    smooth = compiled(label_smoothing=0.1).loss(labels, logits)
    assert float(smooth) != pytest.approx(float(plain))
    acc = losses.masked_accuracy(labels, tf.one_hot([[1, 4, 4], [3, 4, 4]], 5))
    assert float(acc) == pytest.approx(2 / 3)
    # A copying model outputs log-probabilities: its loss skips the log_softmax (an
    # identity on them) and gives the generic loss's value; on raw logits it would not.
    copying = compiled(copy=True, variant="bahdanau", label_smoothing=0.1,
                       target_vocab_size=5)
    generic = losses.masked_cross_entropy(0.1)
    normalized = tf.nn.log_softmax(logits)
    assert float(copying.loss(labels, normalized)) == pytest.approx(
        float(generic(labels, normalized)), rel=1e-5)
    assert float(copying.loss(labels, logits)) != pytest.approx(float(generic(labels, logits)))


def test_learning_rate_warms_up_to_the_variant_peak():
    for variant, peak in (("bahdanau", 2e-3), ("transformer", 1e-3)):
        config = tiny_config(variant)
        model = translation_model.compile_model(translation_model.build_model(config), config,
                                                decay_steps=1000)
        schedule = model.optimizer._learning_rate  # The schedule itself.
        assert float(schedule(0)) == 0.0
        assert float(schedule(100)) == pytest.approx(peak)
        assert float(schedule(1000)) == pytest.approx(peak * 0.1, rel=1e-3)


def test_copy_is_resolved_from_the_variant_and_the_vocabulary():
    assert translation_model.ModelConfig().copies(joint_vocabulary=True)
    assert not translation_model.ModelConfig().copies(joint_vocabulary=False)
    assert not translation_model.ModelConfig(variant="transformer").copies(True)
    assert not translation_model.ModelConfig(copy=False).copies(True)
    with pytest.raises(ValueError, match="one vocabulary for both languages"):
        translation_model.ModelConfig(copy=True).copies(joint_vocabulary=False)
    for variant in ("seq2seq", "transformer"):
        with pytest.raises(ValueError, match="copy=True needs one of the variants"):
            translation_model.ModelConfig(variant=variant, copy=True)


def test_copying_model_emits_a_source_token_its_softmax_never_learnt():
    # Train the gate only: the softmax (logits layer) is frozen at zero, so the one way
    # to put mass on the source's tokens is copying them.
    config = tiny_config("bahdanau", copy=True, target_vocab_size=30, dropout=0.0,
                         learning_rate=2e-2)
    model = translation_model.build_model(config)
    model.output_layer.set_weights([np.zeros_like(w) for w in model.output_layer.get_weights()])
    model.output_layer.trainable = False
    translation_model.compile_model(model, config, decay_steps=60)
    source, target_in, _ = batch(3)
    source[:, 1:] = 0  # one source token each: copying it is the answer
    target_in = np.concatenate([np.full((4, 1), START), source[:, :1]], 1).astype("int32")
    target_out = np.concatenate([source[:, :1], np.full((4, 1), END)], 1).astype("int32")
    target_out[:, 1] = 0  # only the copied token is scored
    for _ in range(60):
        model.train_on_batch((source, target_in), target_out)
    logits = model((source, target_in)).numpy()
    assert np.all(logits[:, 0].argmax(-1) == source[:, 0])
    assert np.all(np.exp(logits[np.arange(4), 0, source[:, 0]]) > 0.5)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="variant"):
        translation_model.ModelConfig(variant="rnn")
    with pytest.raises(ValueError, match="score"):
        translation_model.ModelConfig(score="cosine")
    with pytest.raises(ValueError, match="units must be even"):
        translation_model.ModelConfig(units=33)
    with pytest.raises(ValueError, match="num_heads"):
        translation_model.ModelConfig(variant="transformer", units=30, num_heads=4)
    for field, value in (("window", 0), ("target_vocab_size", -1), ("dropout", 1.0),
                         ("label_smoothing", -0.1), ("learning_rate", 0.0)):
        with pytest.raises(ValueError, match=field):
            translation_model.ModelConfig(**{field: value})


def test_input_feeding_follows_the_variant_until_set():
    config = translation_model.ModelConfig()
    assert (config.input_feeding, config.feeds_input) == (None, False)
    # A config made for one variant and switched to another keeps the paper defaults.
    luong = dataclasses.replace(config, variant="luong")
    assert luong.feeds_input
    assert not dataclasses.replace(luong, input_feeding=False).feeds_input
