"""Tests of HierarchicalAttentionPooling against a NumPy version of Yang et al. (2016)."""

import keras
import numpy as np
import pytest

from keras_attention.layers import HierarchicalAttentionPooling
from tests import layer_checks

# Two documents of 3 sentences of 4 words: document 0 has an empty sentence in the
# middle, document 1 no words at all.
MASK = np.array([
    [[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
], bool)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _attention(pool, h, mask):
    """NumPy AttentionPooling: softmax over the valid steps of tanh(h W + b) u; zeros if none."""
    u = np.tanh(h @ _np(pool.projection_kernel) + _np(pool.projection_bias))
    scores = (u @ _np(pool.context_kernel))[..., 0]
    scores = np.where(mask, scores, -np.inf)
    top = np.max(np.where(mask, scores, -1e30), -1, keepdims=True)
    e = np.where(mask, np.exp(scores - top), 0.0)
    a = e / np.maximum(e.sum(-1, keepdims=True), 1e-30)
    return np.einsum("...t,...td->...d", a, h), a


def _reference(layer, x, mask):
    words = _attention(layer.word_attention, x, mask)
    sentences = _attention(layer.sentence_attention, words[0], mask.any(-1))
    return sentences[0], words[1], sentences[1]


def _randomise(layer, seed=1):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.7)


def _inputs(shape=(2, 3, 4, 5), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_matches_the_numpy_reference_with_padding():
    x = _inputs()
    mask = MASK.copy()
    mask[1, 0, :2] = True  # document 1: one sentence of two words
    layer = HierarchicalAttentionPooling(3, 2)
    layer(x, mask=mask)
    _randomise(layer)
    doc, words, sentences = layer(x, mask=mask, return_attention_scores=True)
    ref_doc, ref_words, ref_sentences = _reference(layer, x, mask)
    assert doc.shape == (2, 5) and words.shape == (2, 3, 4) and sentences.shape == (2, 3)
    np.testing.assert_allclose(_np(doc), ref_doc, atol=1e-5)
    np.testing.assert_allclose(_np(words), ref_words, atol=1e-6)
    np.testing.assert_allclose(_np(sentences), ref_sentences, atol=1e-6)


def test_weights_sum_to_one_per_real_sentence_and_document_zero_elsewhere():
    x = _inputs()
    layer = HierarchicalAttentionPooling(3, 3)
    layer(x, mask=MASK)
    _randomise(layer)
    doc, words, sentences = (_np(t) for t in layer(x, mask=MASK, return_attention_scores=True))
    real_sentence = MASK.any(-1)
    np.testing.assert_allclose(words.sum(-1)[real_sentence], 1.0, atol=1e-6)
    assert np.all(words[~MASK] == 0.0)  # padded words, empty sentences, the empty document
    np.testing.assert_allclose(sentences[0].sum(), 1.0, atol=1e-6)
    assert sentences[0, 1] == 0.0  # the empty sentence between two real ones
    assert np.all(sentences[1] == 0.0)  # a document without words: zeros, no NaN
    assert np.all(doc[1] == 0.0) and np.all(np.isfinite(doc))


def test_padded_words_do_not_change_the_output():
    x = _inputs()
    layer = HierarchicalAttentionPooling(3, 3)
    before = layer(x, mask=MASK, return_attention_scores=True)
    noise = np.random.default_rng(5).normal(size=x.shape).astype("float32") * 100
    after = layer(np.where(MASK[..., None], x, noise), mask=MASK, return_attention_scores=True)
    layer_checks.outputs_close(before, after)


def test_no_mask_means_every_word_is_real():
    x = _inputs()
    layer = HierarchicalAttentionPooling()
    layer_checks.outputs_close(layer(x, return_attention_scores=True),
                               layer(x, mask=np.ones(x.shape[:3], bool),
                                     return_attention_scores=True))
    assert tuple(layer.word_attention.projection_kernel.shape) == (5, 5)


def test_keras_mask_of_an_embedding_is_used():
    ids = np.array([[[3, 1, 0], [0, 0, 0]], [[2, 2, 2], [5, 0, 0]]])
    inputs = keras.Input((2, 3), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    layer = HierarchicalAttentionPooling(3, 3)
    outputs = layer(embedded, return_attention_scores=True)
    model = keras.Model(inputs, [*outputs, embedded])
    doc, words, sentences, h = model(ids)
    explicit = layer(h, mask=ids != 0, return_attention_scores=True)
    layer_checks.outputs_close((doc, words, sentences), explicit)
    assert _np(sentences)[0, 1] == 0.0


def test_encoders_run_per_sentence_and_over_sentences():
    x = _inputs()
    word_encoder = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))
    sentence_encoder = keras.layers.GRU(6, return_sequences=True)
    layer = HierarchicalAttentionPooling(4, 4, word_encoder=word_encoder,
                                         sentence_encoder=sentence_encoder)
    mask = MASK.copy()
    mask[1, 2, :3] = True
    doc, words, sentences = layer(x, mask=mask, return_attention_scores=True)
    assert doc.shape == (2, 6) and words.shape == (2, 3, 4) and sentences.shape == (2, 3)
    # The word encoder sees each sentence alone: the reference with its outputs.
    encoded = _np(word_encoder(x.reshape(6, 4, 5), mask=mask.reshape(6, 4))).reshape(2, 3, 4, 6)
    vectors, ref_words = _attention(layer.word_attention, encoded, mask)
    np.testing.assert_allclose(_np(words), ref_words, atol=1e-5)
    g = _np(sentence_encoder(vectors.astype("float32"), mask=mask.any(-1)))
    ref_doc, ref_sentences = _attention(layer.sentence_attention, g, mask.any(-1))
    np.testing.assert_allclose(_np(sentences), ref_sentences, atol=1e-5)
    np.testing.assert_allclose(_np(doc), ref_doc, atol=1e-5)
    assert len(layer.trainable_weights) == 6 + 3 + 3 + 3


def test_dropout_only_while_training():
    x = _inputs()
    layer = HierarchicalAttentionPooling(dropout=0.5, seed=3)
    layer_checks.outputs_close(layer(x), layer(x, training=False))
    assert not np.allclose(_np(layer(x, training=True)), _np(layer(x, training=False)))


@pytest.mark.parametrize("encoders", [False, True])
def test_layer_checks(encoders, tmp_path):
    x = _inputs((2, 3, 4, 5))
    mask = MASK.copy()
    mask[1, 0, 0] = True
    kwargs = dict(word_units=3, sentence_units=2, dropout=0.1, seed=4)
    if encoders:
        kwargs["word_encoder"] = keras.layers.serialize(
            keras.layers.GRU(3, return_sequences=True))
        kwargs["sentence_encoder"] = keras.layers.serialize(
            keras.layers.Dense(4, activation="tanh"))
    layer_checks.run_layer_test(
        HierarchicalAttentionPooling, kwargs, (x, mask),
        tmp_path=tmp_path,
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=(2, 4 if encoders else 5),
        expected_num_trainable_weights=6 + (3 + 2 if encoders else 0),
        expected_num_seed_generators=3 if encoders else 2,  # + the GRU's
    )


def test_runs_under_xla():
    x = _inputs()
    layer = HierarchicalAttentionPooling(3, 3)
    layer_checks.runs_under_xla(
        lambda h: layer(h, mask=MASK, return_attention_scores=True), x)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"word_units": 0}, "word_units"),
        ({"sentence_units": -1}, "sentence_units"),
        ({"dropout": 1.5}, "dropout"),
        ({"word_encoder": "gru"}, "word_encoder"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name}="):
        HierarchicalAttentionPooling(**kwargs)


def test_wrong_rank_and_non_sequence_encoder_raise():
    with pytest.raises(ValueError, match="inputs"):
        HierarchicalAttentionPooling()(np.zeros((2, 3, 4), "float32"))
    pooled = HierarchicalAttentionPooling(word_encoder=keras.layers.GRU(3))
    with pytest.raises(ValueError, match="word_encoder must map"):
        pooled(_inputs())


def test_only_the_two_units_are_positional():
    HierarchicalAttentionPooling(4, 4)
    with pytest.raises(TypeError, match="positional argument"):
        HierarchicalAttentionPooling(4, 4, 0.1)
