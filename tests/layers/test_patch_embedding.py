"""Tests of PatchEmbedding against Dosovitskiy et al. (2021), Eq. 1."""

import keras
import numpy as np
import pytest

from keras_attention.layers import PatchEmbedding
from tests import layer_checks
from tests.layers import cnn_reference as ref


def _images(shape=(2, 8, 8, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _reference(layer, images):
    """z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos, patches in row-major order."""
    ph, pw = layer.projection.kernel.shape[:2]
    b, h, w, c = images.shape
    patches = images.reshape(b, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(b, (h // ph) * (w // pw), ph * pw * c)
    kernel = ref.numpy(layer.projection.kernel).reshape(ph * pw * c, -1)
    tokens = patches @ kernel + ref.numpy(layer.projection.bias)
    if layer.use_class_token:
        cls = np.broadcast_to(ref.numpy(layer.class_token), (b, 1, tokens.shape[-1]))
        tokens = np.concatenate([cls, tokens], axis=1)
    return tokens + ref.numpy(layer.position_embedding)


@pytest.mark.parametrize(
    "patch_size, use_class_token, shape, length",
    [
        (4, True, (2, 8, 8, 3), 5),
        (4, False, (2, 8, 8, 3), 4),
        ((2, 4), True, (2, 8, 8, 3), 9),
        (3, True, (1, 6, 12, 1), 9),
    ],
)
def test_matches_paper_equation(patch_size, use_class_token, shape, length):
    images = _images(shape)
    layer = PatchEmbedding(patch_size, hidden_dim=6, use_class_token=use_class_token)
    layer.build(images.shape)
    ref.randomise(layer)
    tokens = layer(images)
    assert tokens.shape == (shape[0], length, 6)
    assert layer.compute_output_shape(shape) == (shape[0], length, 6)
    np.testing.assert_allclose(ref.numpy(tokens), _reference(layer, images), atol=1e-5)


def test_initialisation_class_token_zero_positions_small():
    layer = PatchEmbedding(4, hidden_dim=16)
    layer.build((None, 16, 16, 3))
    assert layer.num_patches == 16
    np.testing.assert_array_equal(ref.numpy(layer.class_token), 0.0)
    positions = ref.numpy(layer.position_embedding)
    assert positions.shape == (1, 17, 16) and 0.0 < positions.std() < 0.05


@pytest.mark.parametrize(
    "kwargs, shape", [(dict(patch_size=(2, 4), use_class_token=False), (2, 8, 6)),
                      (dict(patch_size=4), (2, 5, 6))]
)
def test_layer_checks(kwargs, shape, tmp_path):
    layer_checks.run_layer_test(
        PatchEmbedding,
        dict(kwargs, hidden_dim=6),
        _images(),
        tmp_path=tmp_path,
        expected_output_shape=shape,
        expected_num_trainable_weights=4 if kwargs.get("use_class_token", True) else 3,
    )


def test_functional_shape_config_and_xla():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, PatchEmbedding((2, 4), hidden_dim=6)(inputs))
    assert model.output_shape == (None, 9, 6)
    assert PatchEmbedding(4, hidden_dim=6).get_config()["patch_size"] == 4
    layer = PatchEmbedding(4, hidden_dim=8)
    layer_checks.runs_under_xla(layer, _images())


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 10, 8, 3), r"height \(10\) must be divisible by the patch size \(4\)"),
        ((1, 8, 6, 3), r"width \(6\) must be divisible by the patch size \(4\)"),
    ],
)
def test_indivisible_image_size_names_the_sizes(shape, message):
    with pytest.raises(ValueError, match=message):
        PatchEmbedding(4, hidden_dim=8)(_images(shape))


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="patch_size=0"):
        PatchEmbedding(0, hidden_dim=8)
    with pytest.raises(ValueError, match=r"patch_size=\(2, 2, 2\)"):
        PatchEmbedding((2, 2, 2), hidden_dim=8)
    with pytest.raises(ValueError, match="hidden_dim=0"):
        PatchEmbedding(4, hidden_dim=0)
    with pytest.raises(ValueError, match=r"images.shape=\(2, 8, 8\)"):
        PatchEmbedding(4, hidden_dim=8)(np.zeros((2, 8, 8), "float32"))
    with pytest.raises(ValueError, match="static image size"):
        PatchEmbedding(4, hidden_dim=8)(keras.Input((None, None, 3)))
