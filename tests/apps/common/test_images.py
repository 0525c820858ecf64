"""In-graph decoding of image bytes: every format and mode, and every kind of bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.common import images


def _encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header(width, height):
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I",
                                                                           zlib.crc32(body))


_DECODE = tf.function(
    lambda x: images.decode_images(x, 12, 12, 1, max_pixels=10_000_000),
    input_signature=[tf.TensorSpec([None], tf.string)],
)
_DECODE_RGB = tf.function(
    lambda x: images.decode_images(x, 12, 12, 3, keep_aspect=False),
    input_signature=[tf.TensorSpec([None], tf.string)],
)


def test_every_format_and_mode_decodes_to_the_same_picture():
    # A white square on black, 24x24: every encoding must give about the same 12x12 gray image.
    gray = np.zeros((24, 24), np.uint8)
    gray[6:18, 6:18] = 255
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rgba = np.concatenate([rgb, np.full((24, 24, 1), 255, np.uint8)], axis=-1)
    gray_alpha = np.stack([gray, np.full((24, 24), 255, np.uint8)], axis=-1)
    encoded = [
        _encode(gray, "PNG"), _encode(rgb, "PNG"), _encode(rgba, "PNG"),
        _encode(gray_alpha, "PNG"), _encode(gray, "JPEG", quality=95),
        _encode(rgb, "JPEG", quality=95), _encode(gray, "GIF"), _encode(rgb, "BMP"),
        _encode(gray.astype(np.uint16) * 257, "PNG"),
    ]
    out = _DECODE(tf.constant(encoded)).numpy()
    assert out.shape == (len(encoded), 12, 12, 1)
    reference = out[0, ..., 0]  # lossless gray PNG
    assert reference[4:8, 4:8].min() > 0.99 and reference[:2].max() < 0.01
    assert reference[:, :2].max() < 0.01
    for decoded in out[1:]:
        np.testing.assert_allclose(decoded[..., 0], reference, atol=0.1)
    rgb_out = _DECODE_RGB(tf.constant(encoded[:3])).numpy()
    assert rgb_out.shape == (3, 12, 12, 3)
    np.testing.assert_allclose(rgb_out[0], rgb_out[1], atol=1e-6)


def test_alpha_is_composited_over_black_and_aspect_is_kept():
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:, :10, 3] = 255  # left half opaque white, right half transparent white
    out = _DECODE(tf.constant([_encode(rgba, "PNG")])).numpy()[0, ..., 0]
    # 10x20 -> 6x12 centred vertically between 3 rows of padding on each side.
    assert out[:3].max() == 0.0 and out[9:].max() == 0.0
    assert out[4:8, :5].min() > 0.95 and out[4:8, 7:].max() < 0.05


def test_one_pixel_large_and_empty_batches_are_defined():
    one = _encode(np.full((1, 1, 3), 128, np.uint8), "PNG")
    large = _encode(np.full((1500, 2500), 255, np.uint8), "PNG")
    out = _DECODE(tf.constant([one, large])).numpy()
    np.testing.assert_allclose(out[0], 128 / 255, atol=0.01)
    assert out[1].max() == pytest.approx(1.0, abs=0.01)
    assert _DECODE(tf.constant([], tf.string)).shape == (0, 12, 12, 1)


_GOOD = _encode(np.zeros((8, 8, 3), np.uint8), "PNG")
_BAD = {
    "empty": (b"", r"image_bytes\[1\] is not a JPEG, PNG, GIF or BMP file \(0 bytes"),
    "text": (b"definitely not an image", "is not a JPEG, PNG, GIF or BMP"),
    "webp": (_encode(np.zeros((8, 8, 3), np.uint8), "WEBP"), "is not a JPEG, PNG, GIF or BMP"),
    "signature_only": (_GOOD[:8], r"image_bytes\[1\] is truncated"),
    "truncated_png": (_GOOD[: len(_GOOD) // 2], "PNG"),
    "truncated_jpeg": (_encode(np.zeros((64, 64, 3), np.uint8), "JPEG")[:120], "JPEG"),
    "huge": (_png_header(100_000, 100_000), r"declares 100000x100000 pixels"),
    "zero_width": (_png_header(0, 5), r"declares 5x0 pixels"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_bytes_give_a_clear_error(case):
    data, message = _BAD[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _DECODE(tf.constant([_GOOD, data]))


def test_channels_must_be_one_or_three():
    with pytest.raises(ValueError, match="channels"):
        images.decode_image(tf.constant(_GOOD), 8, 8, channels=4)
