"""The Show, Attend and Tell model: builds, steps, trains, and decodes like it trains."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.captioning import model as model_lib
from apps.common import losses
from tests.apps.captioning.fixtures import tiny_model


def _inputs(config, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, config.image_size, config.image_size, 3), dtype=np.float32)
    tokens = rng.integers(4, config.vocab_size, size=(batch, config.max_length - 1))
    tokens[:, 0] = 2  # START
    tokens[0, 3:] = 0  # padding in the first caption
    return {"image": images, "tokens": tokens.astype("int32")}


def test_model_builds_trains_a_step_and_exposes_the_grid():
    config = tiny_model()
    model = model_lib.build_model(config, start_id=2, end_id=3)
    assert model.grid_shape == (4, 4)
    x = _inputs(config)
    logits = model(x)
    assert tuple(logits.shape) == (3, config.max_length - 1, config.vocab_size)
    model_lib.compile_model(model, dataclasses.replace(config, learning_rate=1e-2),
                            jit_compile=False)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, np.roll(x["tokens"], -1, axis=1))
    assert np.isfinite(loss).all()
    after = [w.numpy() for w in model.trainable_weights]
    changed = sum(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    assert changed > 0.8 * len(after)


def _stepwise(model, x):
    """Teacher forcing written as a loop over `model.step`: (logits, alphas)."""
    state = model.initial_state(model.encode(x["image"]))
    logits, alphas = [], []
    for t in range(x["tokens"].shape[1]):
        step_logits, state, alpha = model.step(x["tokens"][:, t], state)
        logits.append(keras.ops.convert_to_numpy(step_logits))
        alphas.append(keras.ops.convert_to_numpy(alpha))
    return np.stack(logits, 1), np.stack(alphas, 1)


@pytest.mark.parametrize("attend_from", model_lib.ATTEND_FROM)
def test_training_call_equals_the_decoding_step_and_adds_the_penalty(attend_from):
    config = tiny_model(doubly_stochastic=0.5, attend_from=attend_from)
    model = model_lib.build_model(config, 2, 3)
    x = _inputs(config, seed=1)
    logits = keras.ops.convert_to_numpy(model(x))
    (penalty,) = model.losses
    step_logits, alphas = _stepwise(model, x)
    np.testing.assert_allclose(logits, step_logits, rtol=1e-5, atol=1e-5)
    assert alphas.shape == (3, config.max_length - 1, 16)
    np.testing.assert_allclose(alphas.sum(-1), 1.0, rtol=1e-5)
    # λ Σ_i (1 − Σ_t α_ti)² over the non-padding steps, averaged over the batch.
    mask = (x["tokens"] != 0)[..., None]
    expected = 0.5 * np.mean(np.sum((1 - (alphas * mask).sum(1)) ** 2, axis=-1))
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-5)
    no_penalty = model_lib.build_model(tiny_model(doubly_stochastic=0.0), 2, 3)
    no_penalty(x)
    assert not no_penalty.losses


def test_the_gate_scales_the_context():
    model = model_lib.build_model(tiny_model(), 2, 3)
    x = _inputs(tiny_model(), seed=2)
    state = model.initial_state(model.encode(x["image"]))
    tokens = x["tokens"][:, 0]
    before, _, _ = model.step(tokens, state)
    kernel, bias = model.gate.get_weights()
    model.gate.set_weights([np.zeros_like(kernel), np.full_like(bias, -50.0)])  # β ≈ 0
    closed, _, _ = model.step(tokens, state)
    model.out_context.set_weights([w * 3 for w in model.out_context.get_weights()])
    still, _, _ = model.step(tokens, state)
    # With β = 0 the context no longer reaches the output: L_z only sees zeros (+ its bias).
    assert not np.allclose(before, closed)
    bias_z = model.out_context.get_weights()[1]
    shift = bias_z - bias_z / 3
    np.testing.assert_allclose(keras.ops.convert_to_numpy(still),
                               keras.ops.convert_to_numpy(closed)
                               + shift @ model.out_logits.get_weights()[0], atol=1e-4)


def test_context_dropout_hides_the_context_from_the_lstm_only():
    config = tiny_model(context_dropout=0.999, attend_from="previous")
    model = model_lib.build_model(config, 2, 3)
    x = _inputs(config, seed=4)
    state = model.initial_state(model.encode(x["image"]))
    tokens = x["tokens"][:, 0]
    logits, new_state, _ = model.step(tokens, state, training=True)
    # By hand: the LSTM gets [E y; 0], the deep output still gets the gated context.
    embedded = model.embedding(tokens)
    context = model.attention(state["h"], state["features"], projected_keys=state["keys"])
    context = model.gate(state["h"]) * context
    zeros = keras.ops.zeros_like(context)
    h, (_, c) = model.lstm(keras.ops.concatenate([embedded, zeros], -1), [state["h"], state["c"]])
    expected = model.out_logits(embedded + model.out_hidden(h) + model.out_context(context))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["c"], c, rtol=1e-5, atol=1e-6)
    inference, _, _ = model.step(tokens, state, training=False)
    assert not np.allclose(inference, logits)
    with pytest.raises(ValueError, match="context_dropout"):
        model_lib.ModelConfig(context_dropout=1.0)


def test_greedy_decoding_follows_the_argmax_of_each_step():
    config = tiny_model()
    model = model_lib.build_model(config, 2, 3)
    images = _inputs(config, batch=2, seed=3)["image"]
    result = model.decode(images, beam_width=1)
    sequences = result.sequences.numpy()
    assert sequences.shape == (2, config.max_length - 1)
    assert tuple(result.attention.shape) == (2, config.max_length - 1, 4, 4)
    state = model.initial_state(model.encode(images))
    tokens = np.full([2], 2, np.int32)
    for t in range(3):
        logits, state, alpha = model.step(tokens, state)
        tokens = np.argmax(keras.ops.convert_to_numpy(logits), -1).astype(np.int32)
        live = result.lengths.numpy() > t
        np.testing.assert_array_equal(sequences[live, t], tokens[live])
        np.testing.assert_allclose(result.attention.numpy()[live, t].reshape(-1, 16),
                                   keras.ops.convert_to_numpy(alpha)[live], rtol=1e-5)


@pytest.mark.parametrize("attend_from", model_lib.ATTEND_FROM)
def test_beam_search_runs_in_a_tf_function(attend_from):
    config = tiny_model(attend_from=attend_from)
    model = model_lib.build_model(config, 2, 3)

    @tf.function
    def caption(images):
        result = model.decode(images, beam_width=3)
        return result.sequences, result.attention, result.lengths

    sequences, attention, lengths = caption(_inputs(config, batch=2)["image"])
    assert sequences.shape == (2, config.max_length - 1)
    sums = attention.numpy().sum(axis=(2, 3))
    steps = np.arange(config.max_length - 1)[None] < lengths.numpy()[:, None]
    np.testing.assert_allclose(sums[steps], 1.0, rtol=1e-5)
    np.testing.assert_allclose(sums[~steps], 0.0)


def test_an_applications_backbone_builds_with_random_weights():
    config = tiny_model(backbone="mobilenet_v2", image_size=32, feature_dim=8)
    model = model_lib.build_model(config, 2, 3)
    assert model.grid_shape == (1, 1)
    assert tuple(model(_inputs(config, batch=1)).shape) == (1, 5, config.vocab_size)


def test_bad_configs_are_reported():
    with pytest.raises(ValueError, match="backbone"):
        model_lib.ModelConfig(backbone="alexnet")
    with pytest.raises(ValueError, match="image_size"):
        model_lib.ModelConfig(image_size=100)
    with pytest.raises(ValueError, match="max_length"):
        model_lib.ModelConfig(max_length=2)
    with pytest.raises(ValueError, match="doubly_stochastic"):
        model_lib.ModelConfig(doubly_stochastic=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        model_lib.ModelConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="variant"):
        model_lib.ModelConfig(variant="hard_attention")
    with pytest.raises(dataclasses.FrozenInstanceError):
        model_lib.ModelConfig().units = 3


def test_compile_uses_the_shared_masked_loss_and_accuracy_and_a_cosine_decay():
    targets = np.array([[4, 5, 0, 0]], np.int32)
    logits = np.full((1, 4, 6), -10.0, np.float32)
    logits[0, 0, 4] = logits[0, 1, 1] = 10.0  # right, wrong, then padding
    logits[0, 2:, 0] = 10.0
    config = tiny_model(vocab_size=6)
    model = model_lib.build_model(config)
    model_lib.compile_model(model, config, decay_steps=10, jit_compile=False)
    loss = float(model.loss(targets, logits))
    full = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True))
    assert loss == pytest.approx(full[0, :2].mean(), rel=1e-5)
    assert float(losses.masked_accuracy(targets, logits)) == pytest.approx(0.5)
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["decay_steps"] == 10 and schedule["config"]["alpha"] == 0.02
    assert float(model.optimizer.learning_rate) == pytest.approx(config.learning_rate)
    x = _inputs(config, batch=2)
    logs = model.train_on_batch(x, np.roll(x["tokens"], -1, axis=1), return_dict=True)
    assert set(logs) == {"loss", "masked_accuracy"}  # EarlyStopping watches val_masked_accuracy
    constant = model_lib.build_model(config)
    model_lib.compile_model(constant, config)
    assert float(constant.optimizer.learning_rate) == pytest.approx(config.learning_rate)


def test_attention_from_the_current_state_is_queried_by_the_new_h():
    """attend_from="current": α_t comes from h_t (after the LSTM step), not from h_{t-1}."""
    model = model_lib.build_model(tiny_model(attend_from="current"), 2, 3)
    x = _inputs(model.config, batch=2, seed=5)
    state = model.initial_state(model.encode(x["image"]))
    _, new_state, alpha = model.step(x["tokens"][:, 0], state)
    _, from_new = model.attention(new_state["h"], state["features"],
                                  projected_keys=state["keys"], return_attention_scores=True)
    _, from_old = model.attention(state["h"], state["features"],
                                  projected_keys=state["keys"], return_attention_scores=True)
    np.testing.assert_allclose(alpha, from_new, rtol=1e-5, atol=1e-6)
    assert not np.allclose(alpha, from_old, atol=1e-4)
    with pytest.raises(ValueError, match="attend_from"):
        tiny_model(attend_from="next")
