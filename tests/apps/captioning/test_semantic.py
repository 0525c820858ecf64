"""Semantic attention captioning (You et al. 2016): attributes from captions, the input and
output attention over them, training, decoding, and the exported SavedModel."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.captioning import builder, evaluation, pipeline, semantic, train
from apps.captioning import model as model_lib
from apps.common import export as common_export
from tests.apps.captioning.fixtures import tiny_model, tiny_run
from tests.apps.serving_checks import replay_warmup, run_isolated

_CAPTIONS = [
    "the dog to the left of the red apple", "the red apple to the right of the dog",
    "the cat above the dog", "the dog, the cat and the green apple from left to right",
]
ATTRIBUTES = [4, 5, 6, 7, 8, 9]  # token ids of the tiny model's attributes


def _tokenizer(texts=_CAPTIONS, max_length=14):
    return pipeline.make_tokenizer(texts, 64, max_length)


def test_attribute_words_are_the_object_words_of_the_caption_templates():
    texts = [c for layout in builder.LAYOUTS
             for c in builder.captions_for(["dog", "red apple", "cat"], layout)]
    texts += builder.captions_for(["dog", "green apple"], "row")
    # "dog" and "apple" are in 7 captions, "cat" and "red" in 4, "green" in 3.
    assert semantic.attribute_words(texts) == ["apple", "dog", "cat", "red", "green"]
    assert semantic.attribute_words(texts, max_attributes=2) == ["apple", "dog"]
    names = [builder.short_name(c) for c in builder.OBJECTS]
    every = [c for a, b in zip(names, names[1:] + names[:1], strict=True)
             for c in builder.captions_for([a, b], "column")]
    words = semantic.attribute_words(every)
    assert sorted(words) == sorted({w for n in names for w in n.split()})
    assert len(words) == 41 and not set(words) & semantic.template_words()
    assert {"the", "left", "above", "bottom", ","} <= semantic.template_words()
    kept, ids = semantic.attribute_ids(["dog", "zebra", "apple"], _tokenizer())
    assert kept == ["dog", "apple"] and ids == [_tokenizer().vocabulary.index(w) for w in kept]


def test_attribute_targets_of_an_image_by_hand():
    tokenizer = _tokenizer()
    words = ["apple", "cat", "dog", "red", "green"]
    _, ids = semantic.attribute_ids(words, tokenizer)
    # Both captions of the first image name the dog and the red apple, not the cat.
    first = semantic.image_targets(tf.constant(_CAPTIONS[:2]), tokenizer, ids).numpy()
    np.testing.assert_array_equal(first, [1, 0, 1, 1, 0])
    # An image's targets are the union over its captions.
    union = semantic.image_targets(tf.constant(_CAPTIONS[2:]), tokenizer, ids).numpy()
    np.testing.assert_array_equal(union, [1, 1, 1, 0, 1])
    none = semantic.image_targets(tf.constant([], tf.string), tokenizer, ids).numpy()
    np.testing.assert_array_equal(none, [0, 0, 0, 0, 0])
    # Per caption, from token ids (what the model uses without "attributes" in its inputs).
    _, token_ids = tokenizer.tokenize(tf.constant(_CAPTIONS[2:]))
    np.testing.assert_array_equal(semantic.mentions(token_ids, ids), [[0, 1, 1, 0, 0],
                                                                      [1, 1, 1, 0, 1]])


def test_the_training_batches_hold_the_images_attribute_targets():
    tokenizer = _tokenizer()
    _, ids = semantic.attribute_ids(["dog", "cat", "red"], tokenizer)
    png = common_export.warmup_png(40, 40)
    split = tf.data.Dataset.from_tensor_slices({
        "image_bytes": [png, png], "captions": tf.ragged.constant(
            [_CAPTIONS[:2], _CAPTIONS[2:3]]).to_tensor(""),
    })
    (inputs, _), = pipeline.make_dataset(split, tokenizer, 32, 2, attribute_ids=ids).take(1)
    np.testing.assert_array_equal(inputs["attributes"], [[1, 0, 1], [1, 1, 0]])
    (plain, _), = pipeline.make_dataset(split, tokenizer, 32, 2).take(1)
    assert "attributes" not in plain


def _model(**overrides):
    config = tiny_model(variant="semantic_attention", attribute_top_k=3, **overrides)
    return model_lib.build_model(config, 2, 3, attribute_ids=ATTRIBUTES)


def _inputs(config, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, config.image_size, config.image_size, 3), dtype=np.float32)
    tokens = rng.integers(4, config.vocab_size, size=(batch, config.max_length - 1))
    tokens[:, 0] = 2  # START
    tokens[0, 3:] = 0  # padding
    return {"image": images, "tokens": tokens.astype("int32")}


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("attend_from", model_lib.ATTEND_FROM)
def test_the_attention_over_the_top_k_attributes_by_hand(attend_from):
    model = _model(attend_from=attend_from)
    x = _inputs(model.config, seed=1)
    features = model.encode(x["image"])
    logits = _np(model.predict_attributes(features))
    state = model.initial_state(features)
    scores = 1 / (1 + np.exp(-logits))
    best = np.argsort(-scores, axis=-1)[:, :3]
    np.testing.assert_array_equal(state["attribute_tokens"], np.asarray(ATTRIBUTES)[best])
    np.testing.assert_allclose(state["attribute_scores"], np.take_along_axis(scores, best, -1),
                               rtol=1e-5)
    tokens = x["tokens"][:, 1]
    _, new_state, alpha, in_w, out_w = model.semantic_step(tokens, state)
    for weights in (in_w, out_w, alpha):
        np.testing.assert_allclose(_np(weights).sum(-1), 1.0, rtol=1e-5)
    assert _np(in_w).shape == _np(out_w).shape == (3, 3)
    # α_t^i ∝ exp(E y_{t-1} Ũ [E y^i; s_i]),  β_t^i ∝ exp(h_t V [tanh(E y^i); s_i]).
    table = model.embedding.get_weights()[0]
    attr = table[_np(state["attribute_tokens"])]
    column = _np(state["attribute_scores"])[..., None]
    (u,), (v,) = model.input_attention.get_weights(), model.output_attention.get_weights()
    in_keys = np.concatenate([attr, column], -1)
    out_keys = np.concatenate([np.tanh(attr), column], -1)
    expected_in = _softmax(np.einsum("bm,mn,bkn->bk", table[tokens], u, in_keys))
    expected_out = _softmax(np.einsum("bm,mn,bkn->bk", _np(new_state["h"]), v, out_keys))
    np.testing.assert_allclose(in_w, expected_in, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out_w, expected_out, rtol=1e-4, atol=1e-6)


def test_the_output_attention_can_be_queried_by_the_state_and_the_spatial_context():
    model = _model(attribute_query="hidden_and_context")  # attend_from="current"
    x = _inputs(model.config, seed=5)
    state = model.initial_state(model.encode(x["image"]))
    _, new_state, _, _, out_w = model.semantic_step(x["tokens"][:, 1], state)
    h = _np(new_state["h"])
    context = model.attention(new_state["h"], state["features"], projected_keys=state["keys"])
    context = _np(model.gate(new_state["h"]) * context)
    (v,) = model.output_attention.get_weights()
    assert v.shape == (model.config.units + model.config.feature_dim, model.config.embed_dim + 1)
    keys = np.concatenate([np.tanh(model.embedding.get_weights()[0][
        _np(state["attribute_tokens"])]), _np(state["attribute_scores"])[..., None]], -1)
    expected = _softmax(np.einsum("bm,mn,bkn->bk", np.concatenate([h, context], -1), v, keys))
    np.testing.assert_allclose(out_w, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="attribute_query must be one of"):
        tiny_model(attribute_query="context")


def test_teacher_forcing_equals_the_steps_and_adds_the_attribute_loss():
    model = _model(doubly_stochastic=0.0, attribute_loss_weight=0.5)
    x = _inputs(model.config, seed=2)
    logits = _np(model(x))
    (loss,) = model.losses
    features = model.encode(x["image"])
    attribute_logits = _np(model.predict_attributes(features))
    targets = (x["tokens"][:, :, None] == np.asarray(ATTRIBUTES)[None, None]).any(1)
    p = 1 / (1 + np.exp(-attribute_logits))
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean()
    np.testing.assert_allclose(float(loss), 0.5 * bce, rtol=1e-4)
    state = model.initial_state(features)
    for t in range(x["tokens"].shape[1]):
        step_logits, state, _ = model.step(x["tokens"][:, t], state)
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-4, atol=1e-5)
    # Given targets replace the ones read from the caption.
    given = np.ones((3, len(ATTRIBUTES)), np.float32)
    model(dict(x, attributes=given))
    expected = -np.log(p).mean()
    np.testing.assert_allclose(float(model.losses[0]), 0.5 * expected, rtol=1e-4)


def test_a_training_step_lowers_the_loss():
    model = _model()
    config = dataclasses.replace(model.config, learning_rate=1e-2)
    model_lib.compile_model(model, config, jit_compile=False)
    x = _inputs(config, seed=3)
    y = np.roll(x["tokens"], -1, axis=1)
    before = [w.numpy().copy() for w in model.trainable_weights]
    first = float(model.evaluate(x, y, verbose=0)[0])
    for _ in range(5):
        model.train_on_batch(x, y)
    after = float(model.evaluate(x, y, verbose=0)[0])
    assert np.isfinite(after) and after < first - 0.1, (first, after)
    changed = {w.path for w, b in zip(model.trainable_weights, before, strict=True)
               if not np.allclose(w.numpy(), b)}
    for name in ("attribute_logits", "input_attention", "output_attention", "W_x_A", "L_a"):
        assert any(name in path for path in changed), name


@pytest.mark.parametrize("beam_width", [1, 3])
def test_decoding_returns_the_attributes_and_their_attention_per_word(beam_width):
    model = _model()
    images = _inputs(model.config, batch=2, seed=4)["image"]

    @tf.function
    def caption(images):
        return model.decode(images, beam_width=beam_width)._asdict()

    result = {k: v.numpy() for k, v in caption(images).items()}
    steps = model.config.max_length - 1
    assert result["attention"].shape == (2, steps, 4, 4)
    assert result["input_attention"].shape == result["output_attention"].shape == (2, steps, 3)
    live = np.arange(steps)[None] < result["lengths"][:, None]
    for key in ("input_attention", "output_attention"):
        np.testing.assert_allclose(result[key].sum(-1)[live], 1.0, rtol=1e-5)
        np.testing.assert_allclose(result[key].sum(-1)[~live], 0.0)
    np.testing.assert_allclose(result["attention"].sum((2, 3))[live], 1.0, rtol=1e-5)
    state = model.initial_state(model.encode(images))
    np.testing.assert_array_equal(result["attributes"], state["attribute_tokens"])
    if beam_width == 1:  # the greedy path replays as semantic_step's argmax, weights and all
        tokens = np.full([2], 2, np.int32)
        for t in range(steps):
            logits, state, alpha, in_w, out_w = model.semantic_step(tokens, state)
            tokens = np.argmax(_np(logits), -1).astype(np.int32)
            rows = live[:, t]
            np.testing.assert_array_equal(result["sequences"][rows, t], tokens[rows])
            np.testing.assert_allclose(result["input_attention"][rows, t], _np(in_w)[rows],
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(result["output_attention"][rows, t], _np(out_w)[rows],
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(result["attention"][rows, t].reshape(-1, 16),
                                       _np(alpha)[rows], rtol=1e-5, atol=1e-6)


def test_bad_attribute_settings_are_reported():
    config = tiny_model(variant="semantic_attention", attribute_top_k=3)
    with pytest.raises(ValueError, match="needs attribute_ids"):
        model_lib.build_model(config, 2, 3)
    with pytest.raises(ValueError, match="attribute_ids are for variant='semantic_attention'"):
        model_lib.build_model(tiny_model(), 2, 3, attribute_ids=ATTRIBUTES)
    with pytest.raises(ValueError, match="holds 2 attributes; attribute_top_k=3"):
        model_lib.build_model(config, 2, 3, attribute_ids=[4, 5])
    with pytest.raises(ValueError, match="distinct"):
        model_lib.build_model(config, 2, 3, attribute_ids=[4, 4, 5])
    with pytest.raises(ValueError, match=r"word ids in \[4, vocab_size=24\).*\[3, 30\]"):
        model_lib.build_model(config, 2, 3, attribute_ids=[3, 5, 6, 30])
    with pytest.raises(ValueError, match="attribute_loss_weight"):
        tiny_model(attribute_loss_weight=-1.0)
    with pytest.raises(ValueError, match="attribute_top_k"):
        tiny_model(attribute_top_k=0)


def test_attribute_attention_score_by_hand():
    words = [["the", "dog", "and", "the", "apple"], ["the", "cat"]]
    attributes = [["dog", "apple", "cat"], ["dog", "red", "apple"]]
    weights = [np.array([[1, 0, 0], [0.7, 0.2, 0.1], [1, 0, 0], [1, 0, 0], [0.5, 0.4, 0.1]]),
               np.array([[0, 1, 0], [1, 0, 0]])]
    scored = evaluation.attribute_attention(words, attributes, weights, {"dog", "apple", "cat"})
    # dog 0.7, apple 0.4, cat not in its image's top-k: 0.
    assert scored["steps"] == 3
    assert scored["mean_mass"] == pytest.approx((0.7 + 0.4 + 0.0) / 3)
    assert scored["share_at_least_half"] == pytest.approx(1 / 3)
    assert scored["in_top_k"] == pytest.approx(2 / 3)
    recall = evaluation.attribute_recall(attributes, [["dog", "red apple"], ["cat", "pig"]],
                                         ["dog", "red", "apple", "cat"])
    # Found: dog, apple; missed: red (not in the first top-k), cat; pig is no attribute.
    assert recall == pytest.approx(2 / 4)


# ---------------------------------------------------------------- the app, end to end
_OUTPUTS = ["attention_weights", "attribute_scores", "attributes", "caption",
            "input_attribute_attention", "output_attribute_attention", "tokens"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, RunResult) of one tiny semantic-attention run."""
    return tiny_run(tmp_path_factory, "captioning_semantic", variant="semantic_attention",
                    attribute_top_k=3)


@pytest.mark.slow
def test_the_app_trains_scores_and_exports_the_semantic_variant(trained):
    config, result = trained
    names = [builder.short_name(c) for c in builder.OBJECTS[:8]]
    with open(os.path.join(config.model_dir, "attributes.json"), encoding="utf-8") as f:
        attributes = json.load(f)["attributes"]
    # The words of the objects named in the 12 training scenes: one-word names, all 8 or most.
    assert set(attributes) <= set(names) and len(attributes) >= 5
    assert result.variant == "small_cnn+lstm_semantic_attention"
    test = result.metrics["test"]
    assert result.metrics["attributes"] == attributes
    assert set(test["attribute_attention"]) == {"output_nouns", "output_all", "input_nouns",
                                                "input_all"}
    assert 0 <= test["attribute_recall"] <= 1
    assert "noun_attribute_mass=" in train.results_line(result)
    assert dict(replay_warmup(result.export_path)) == {"serving_default": _OUTPUTS,
                                                       "caption_images": _OUTPUTS}


_SERVE = """
serve = tf.saved_model.load(ARGS["path"]).signatures["serving_default"]
with open(ARGS["png"], "rb") as f:
    png = f.read()
out = {k: v.numpy() for k, v in serve(image_bytes=tf.constant([png, png])).items()}
empty = serve(image_bytes=tf.constant([], tf.string))
errors = {}
for name, raw in {"empty": b"", "text": b"this is not an image"}.items():
    try:
        serve(image_bytes=tf.constant([png, raw]))
        errors[name] = "no error"
    except tf.errors.InvalidArgumentError as err:
        errors[name] = err.message
RESULT = {
    "tokens": [[t.decode() for t in row] for row in out["tokens"]],
    "attributes": [[a.decode() for a in row] for row in out["attributes"]],
    "scores": out["attribute_scores"].tolist(),
    "input": out["input_attribute_attention"].tolist(),
    "output": out["output_attribute_attention"].tolist(),
    "empty": {k: list(v.shape) for k, v in empty.items()},
    "errors": errors,
}
"""


@pytest.mark.slow
def test_the_export_serves_attributes_without_the_project(trained, tmp_path):
    config, result = trained
    png = tmp_path / "scene.png"
    png.write_bytes(common_export.warmup_png(96, 96, seed=3))
    served = run_isolated(_SERVE, path=result.export_path, png=str(png))
    attributes = result.metrics["attributes"]
    steps = config.model.max_length - 1
    for row, scores in zip(served["attributes"], served["scores"], strict=True):
        assert len(row) == 3 and set(row) <= set(attributes) and len(set(row)) == 3
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    for key in ("input", "output"):
        weights = np.array(served[key])
        assert weights.shape == (2, steps, 3)
        emitted = np.array([[t != "" for t in row] for row in served["tokens"]])
        np.testing.assert_allclose(weights.sum(-1)[emitted], 1.0, rtol=1e-4)
        np.testing.assert_allclose(weights.sum(-1)[~emitted], 0.0)
    assert served["empty"]["attributes"] == [0, 3]
    assert served["empty"]["output_attribute_attention"] == [0, steps, 3]
    errors = served["errors"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file (0 bytes" in errors["empty"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file" in errors["text"]
