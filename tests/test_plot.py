"""Tests of keras_attention.plot: PNGs written, readable, laid out as asked; bad input refused."""

import matplotlib.image as mpimg
import numpy as np
import pytest
import tensorflow as tf

from keras_attention import plot


def _read(path):
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[-1] in (3, 4) and image.size > 0
    return image


def test_heatmap_written_with_the_matrix_aspect(tmp_path):
    weights = tf.nn.softmax(tf.random.normal((2, 12)), axis=-1)  # tensors are accepted
    path = tmp_path / "new" / "dir" / "heatmap.png"
    result = plot.attention_heatmap(weights, list("abcdefghijkl"), ["x", "y"], path, title="t")
    assert result == str(path) and path.stat().st_size > 0
    wide = _read(path)
    tall = _read(plot.attention_heatmap(np.eye(12)[:, :2], None, None, tmp_path / "tall.png"))
    assert wide.shape[1] > wide.shape[0] and tall.shape[0] > tall.shape[1]
    # Distinct colours appear: the matrix is drawn, not an empty canvas.
    assert len(np.unique(wide[..., :3].reshape(-1, 3), axis=0)) > 20


@pytest.mark.parametrize(
    "weights, x_labels, y_labels, message",
    [
        (np.ones((1, 2, 3)), None, None, "2-D"),
        (np.ones((2, 3)), ["a", "b"], None, "x_labels.*expected 3, received 2"),
        (np.ones((2, 3)), None, ["a"], "y_labels.*expected 2, received 1"),
        (np.array([[0.5, np.nan]]), None, None, "NaN"),
        (np.zeros((0, 3)), None, None, "non-empty"),
    ],
)
def test_heatmap_rejects_bad_shapes(tmp_path, weights, x_labels, y_labels, message):
    with pytest.raises(ValueError, match=message):
        plot.attention_heatmap(weights, x_labels, y_labels, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_overlay_keeps_the_image_aspect_and_covers_it(tmp_path):
    gray = np.full((16, 48), 128, "uint8")
    attention = np.array([[1.0, 0.0], [1.0, 0.0]])  # left half attended, right half not
    out = _read(plot.attention_overlay(gray, attention, tmp_path / "overlay.png"))
    assert abs(out.shape[1] / out.shape[0] - 3.0) < 0.1
    width = out.shape[1]
    left, right = out[:, : width // 4, :3], out[:, -width // 4 :, :3]
    assert np.abs(left.mean((0, 1)) - right.mean((0, 1))).max() > 0.2
    assert left.std((0, 1)).max() < 0.05 and right.std((0, 1)).max() < 0.05


def test_overlay_alpha_zero_shows_the_image(tmp_path):
    image = np.zeros((20, 20, 3), "float32")
    image[..., 1] = 0.6  # flat green
    out = _read(plot.attention_overlay(image, np.random.rand(4, 4), tmp_path / "a.png", alpha=0))
    np.testing.assert_allclose(out[..., :3].mean((0, 1)), [0.0, 0.6, 0.0], atol=0.02)


@pytest.mark.parametrize(
    "image, attention",
    [
        (np.zeros((10, 12, 1), "uint8"), np.random.rand(3, 5)),
        (np.random.rand(9, 7, 3) * 255.0, np.random.rand(2, 2, 1)),
        (np.random.rand(8, 8, 4), np.random.rand(49)),
        (np.random.rand(8, 8), np.random.rand(20, 30)),
    ],
)
def test_overlay_accepts_gray_rgb_uint8_float_and_map_forms(tmp_path, image, attention):
    path = plot.attention_overlay(image, attention, tmp_path / "o.png", title="word")
    out = _read(path)
    assert out.shape[0] > out.shape[1] * image.shape[0] / image.shape[1] * 0.9  # title adds room


@pytest.mark.parametrize(
    "image, attention, alpha, message",
    [
        (np.zeros((8, 8, 2)), np.ones((2, 2)), 0.5, "image.shape=\\(8, 8, 2\\)"),
        (np.zeros((8,)), np.ones((2, 2)), 0.5, "image"),
        (np.zeros((8, 8)), np.ones((2, 2, 3)), 0.5, "attention_map.shape=\\(2, 2, 3\\)"),
        (np.zeros((8, 8)), np.ones(10), 0.5, "square"),
        (np.zeros((8, 8)), np.ones((2, 2)), 1.5, "alpha=1.5"),
    ],
)
def test_overlay_rejects_bad_inputs(tmp_path, image, attention, alpha, message):
    with pytest.raises(ValueError, match=message):
        plot.attention_overlay(image, attention, tmp_path / "bad.png", alpha=alpha)


def test_grid_has_one_panel_per_word_plus_the_image(tmp_path):
    image = (np.random.rand(32, 32, 3) * 255).astype("uint8")
    words = ["a", "dog", "runs", "on", "the", "grass", "<end>"]
    path = plot.attention_grid(image, np.random.rand(7, 16), words, tmp_path / "g.png", columns=4)
    grid = _read(path)
    # 8 panels in 4 columns: 2 rows of square panels, about twice as wide as tall.
    assert 1.6 < grid.shape[1] / grid.shape[0] < 2.4
    one_row = _read(plot.attention_grid(image, np.random.rand(3, 4, 4), words[:3], tmp_path / "r"))
    assert one_row.shape[1] / one_row.shape[0] > 3.0
    with pytest.raises(ValueError, match="expected 7, received 2"):
        plot.attention_grid(image, np.random.rand(7, 16), ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="maps.shape"):
        plot.attention_grid(image, np.random.rand(16), ["a"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="columns=0"):
        plot.attention_grid(image, np.random.rand(1, 4), ["a"], tmp_path / "bad.png", columns=0)


@pytest.mark.parametrize("source, target", [((2, 3), (8, 9)), ((7, 7), (32, 20)), ((4, 6), (4, 6))])
def test_map_resize_matches_tensorflow_bilinear(source, target):
    attention = np.random.default_rng(0).random(source).astype("float32")
    ours = plot._resize_bilinear(attention, *target)
    theirs = tf.image.resize(attention[None, ..., None], target, method="bilinear")[0, ..., 0]
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)
