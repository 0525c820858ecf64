"""In-graph decoding of image bytes: every format and mode, and every kind of bad input.

Decoded values are compared with Pillow. Tables of crafted inputs run in one test
each (a tf.function is re-instantiated per test, which costs more than a case).
"""

import functools
import io
import re
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from apps.common import images


def _encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    image.save(buffer, format=fmt, **kwargs)
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


@functools.cache
def _native(height, width):
    """Decoder to RGB at `height x width`, stretched: at the image's own size, its pixels."""
    return tf.function(lambda x: images.decode_images(x, height, width, 3, keep_aspect=False),
                       input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)


def _pillow(data):
    """Pillow's RGB in [0, 1] (EXIF orientation applied, alpha composited over black)."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255
        return rgba[..., :3] * rgba[..., 3:]
    return np.asarray(image.convert("RGB"), np.float32) / 255


def _error(decode, batch):
    """The error message decoding `batch` gives, or None."""
    try:
        decode(tf.constant(batch))
    except tf.errors.InvalidArgumentError as error:
        return str(error)
    return None


def _truncated(data, keep, ending):
    """`data[:keep]` and the error it must give as `image_bytes[1]`."""
    kept = data[:keep]
    return kept, rf"image_bytes\[1\] is truncated: its {len(kept)} bytes {ending}"


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


def test_extreme_aspect_ratios_resize_without_a_zero_side():
    # (height, width): the scaled side rounds down to zero pixels unless kept at one.
    value = 200 / 255
    for rows, cols in ((1, 4000), (4000, 1), (1, 1), (7000, 3), (3, 7000)):
        data = _encode(np.full((rows, cols), 200, np.uint8), "PNG")
        kept = _DECODE(tf.constant([data])).numpy()[0, ..., 0]
        stretched = _DECODE_RGB(tf.constant([data])).numpy()[0]
        np.testing.assert_allclose(stretched, value, atol=0.01, err_msg=f"{rows}x{cols}")
        expected = np.zeros((12, 12), np.float32)
        if rows == cols:
            expected[:] = value
        elif rows < cols:
            expected[5] = value  # one row, centred: (12 - 1) // 2
        else:
            expected[:, 5] = value
        np.testing.assert_allclose(kept, expected, atol=0.01, err_msg=f"{rows}x{cols}")


# ------------------------------------------------------------------------- BMP

_RNG = np.random.default_rng(0)
# 13 wide: rows span bytes and need padding in every depth.
_RGB = _RNG.integers(0, 256, (5, 13, 3), np.uint8)


def _bmp(pixels, bpp, palette=(), top_down=False, info=40, compression=0, masks=None,
         colours=None):
    """A BMP file. `pixels`: `[h, w]` palette indices (bpp <= 8) or `[h, w, bytes]` as stored."""
    height, width = pixels.shape[:2]
    if bpp <= 8:
        per_byte = 8 // bpp
        padded = np.zeros((height, -(-width // per_byte) * per_byte), np.int64)
        padded[:, :width] = pixels
        grouped = padded.reshape(height, -1, per_byte)
        shifts = bpp * np.arange(per_byte - 1, -1, -1)
        rows = (grouped << shifts).sum(-1).astype(np.uint8)
    else:
        rows = pixels.reshape(height, -1).astype(np.uint8)
    row_bytes = (bpp * width + 31) // 32 * 4
    body = np.zeros((height, row_bytes), np.uint8)
    body[:, :rows.shape[1]] = rows
    body = (body if top_down else body[::-1]).tobytes()
    table = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    header = struct.pack("<IiiHHIIiiII", info, width, -height if top_down else height, 1, bpp,
                         compression, len(body), 2835, 2835,
                         len(palette) if colours is None else colours, 0)
    extra = b"" if masks is None else struct.pack(f"<{len(masks)}I", *masks)
    header = (header + extra).ljust(info if info > 40 else len(header + extra), b"\0")
    offset = 14 + len(header) + len(table)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + header + table + body


def _pillow_p(indices, palette):
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette([channel for colour in palette for channel in colour])
    return _encode(image, "BMP")


_INDICES = _RNG.integers(0, 16, (5, 13))
_PALETTE16 = [tuple(int(c) for c in colour) for colour in _RNG.integers(0, 256, (16, 3))]
_BGRX = np.concatenate([_RGB[..., ::-1], _RNG.integers(1, 256, (5, 13, 1), np.uint8)], -1)
# Decoded like Pillow does, pixel for pixel (float rounding aside).
_BMP_GOOD = {
    # Pixel values 0, 4, 8, ... through the palette 255 - i, as the fuzz found them.
    "8bit_inverted_gray_palette": _pillow_p(_INDICES * 4, [(255 - i,) * 3 for i in range(256)]),
    "8bit_colour_palette_pillow": _encode(Image.fromarray(_RGB).quantize(16), "BMP"),
    "8bit_colour_palette_top_down": _bmp(_INDICES, 8, _PALETTE16, top_down=True),
    "8bit_gray_identity": _encode(_RGB[..., 0], "BMP"),
    "8bit_indices_past_palette_are_black": _bmp(_INDICES, 8, _PALETTE16[:5]),
    "4bit_colour_palette": _bmp(_INDICES, 4, _PALETTE16),
    "4bit_palette_count_zero_means_16": _bmp(_INDICES, 4, _PALETTE16, colours=0),
    "1bit_pillow": _encode(Image.fromarray(_RGB[..., 0] > 127), "BMP"),
    "1bit_colour_palette_top_down": _bmp(_INDICES % 2, 1, [(200, 0, 0), (0, 0, 90)],
                                         top_down=True),
    "24bit_bottom_up": _encode(_RGB, "BMP"),
    "24bit_top_down": _bmp(_RGB[..., ::-1], 24, top_down=True),
    "24bit_padding_appended": _encode(_RGB, "BMP") + b"\0\0",
    "32bit_fourth_byte_ignored": _bmp(_BGRX, 32),
    "32bit_pillow_rgba_alpha_ignored": _encode(Image.fromarray(
        np.concatenate([_RGB, _BGRX[..., 3:]], -1)), "BMP"),
    "32bit_bitfields_xbgr": _bmp(np.roll(_BGRX, 1, axis=-1), 32, compression=3,
                                 masks=(0xFF000000, 0xFF0000, 0xFF00)),
    "32bit_v5_bitfields_bgra_alpha": _bmp(_BGRX, 32, info=124, compression=3,
                                          masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)),
    "24bit_v4_header": _bmp(_RGB[..., ::-1], 24, info=108),
}


def test_bmp_variants_decode_like_pillow():
    names = sorted(_BMP_GOOD)
    out = _native(5, 13)(tf.constant([_BMP_GOOD[name] for name in names])).numpy()
    for name, decoded in zip(names, out, strict=True):
        np.testing.assert_allclose(decoded, _pillow(_BMP_GOOD[name]), atol=1e-5, err_msg=name)


_VARIANT = r"image_bytes\[1\] is a BMP variant this model cannot decode"
_BMP_BAD = {
    "rle8": (_bmp(_INDICES, 8, _PALETTE16, compression=1),
             _VARIANT + r" \(40-byte header, 8 bits per pixel, compression 1,"),
    "16bit": (_bmp(np.zeros((5, 13, 2)), 16), _VARIANT + r" \(40-byte header, 16 bits per pixel"),
    "16bit_bitfields": (_bmp(np.zeros((5, 13, 2)), 16, compression=3,
                             masks=(0xF800, 0x7E0, 0x1F)), _VARIANT),
    "32bit_bitfields_not_whole_bytes": (
        _bmp(_BGRX, 32, compression=3, masks=(0x3FF00000, 0xFFC00, 0x3FF)), _VARIANT),
    "32bit_bitfields_repeated_byte": (
        _bmp(_BGRX, 32, compression=3, masks=(0xFF, 0xFF, 0xFF00)), _VARIANT),
    "os2_core_header": (b"BM" + struct.pack("<IHHIIHHHH", 26 + 5 * 40, 0, 0, 26, 12, 13, 5, 1, 24)
                        + bytes(5 * 40), _VARIANT + r" \(12-byte header"),
    "palette_without_entries": (_bmp(_INDICES, 8, []), _VARIANT),
    # 54 header bytes, then 5 rows of 13 x 3 bytes padded to 40.
    "cut_in_pixels": _truncated(_encode(_RGB, "BMP"), -10, r"cannot hold the BMP pixel data "
                                r"\(5 rows of 40 bytes from byte 54\)"),
    "cut_in_header": _truncated(_encode(_RGB, "BMP"), 40, "cannot hold the image header"),
}


def test_bmp_variants_that_cannot_be_decoded_are_named():
    good = _encode(_RGB, "BMP")
    for name, (data, message) in _BMP_BAD.items():
        error = _error(_native(5, 13), [good, data])
        assert error and re.search(message, error), f"{name}: {error}"


# ------------------------------------------------------------------ EXIF (JPEG)

# 16x24, six 8x8 blocks of distinct colours: every orientation of it differs.
_BLOCKS = np.kron(np.array([[[250, 20, 20], [20, 250, 20], [20, 20, 250]],
                            [[250, 250, 20], [20, 250, 250], [130, 130, 130]]], np.uint8),
                  np.ones((8, 8, 1), np.uint8))
_PLAIN_JPEG = _encode(_BLOCKS, "JPEG", quality=95, subsampling=0)


def _exif_jpeg(orientation, **kwargs):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_BLOCKS, "JPEG", quality=95, subsampling=0, exif=exif.tobytes(), **kwargs)


def _tiff(order=b"II", entries=((0x0112, 3, 1, 6),), ifd=8, count=None):
    """A TIFF block with one IFD of `(tag, type, count, value)` entries (value left-justified)."""
    end = "<" if order == b"II" else ">"
    body = struct.pack(end + "H", len(entries) if count is None else count)
    for tag, kind, number, value in entries:
        packed = struct.pack(end + "H", value) + b"\0\0" if kind == 3 else struct.pack(
            end + "I", value)
        body += struct.pack(end + "HHI", tag, kind, number) + packed
    return order + struct.pack(end + "HI", 42, ifd) + body + b"\0\0\0\0"


def _with_app1(payload, jpeg=_PLAIN_JPEG, before=b""):
    """`jpeg` with an APP1 segment holding `payload` right after SOI (`before` it: fill bytes)."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + before + segment + jpeg[2:]


_EXIF_CASES = {
    # (file, the orientation our decoder must apply; Pillow must agree)
    **{f"pillow_orientation_{k}": (_exif_jpeg(k), k) for k in range(1, 9)},
    "progressive_6": (_exif_jpeg(6, progressive=True), 6),
    "big_endian_6": (_with_app1(b"Exif\0\0" + _tiff(b"MM")), 6),
    "after_fill_bytes": (_with_app1(b"Exif\0\0" + _tiff(), before=b"\xff\xff"), 6),
    "several_tags": (_with_app1(b"Exif\0\0" + _tiff(entries=(
        (0x010F, 2, 4, 0), (0x0110, 2, 4, 0), (0x0112, 3, 1, 8), (0x011A, 5, 1, 0)))), 8),
    "long_type": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 4, 1, 3),))), 3),
    "two_values_first_used": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 3, 2, 6),))), 6),
    # Malformed: ignored.
    "ifd_past_segment": (_with_app1(b"Exif\0\0" + _tiff(ifd=4000)), 1),
    "ifd_inside_header": (_with_app1(b"Exif\0\0" + _tiff(ifd=2)), 1),
    "entry_count_past_segment": (_with_app1(b"Exif\0\0" + _tiff(entries=(), count=60000)), 1),
    "entry_cut_by_segment_end": (_with_app1(b"Exif\0\0" + _tiff()[:-10]), 1),
    "wrong_type_ascii": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 2, 1, 6),))), 1),
    "three_values": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 3, 3, 6),))), 1),
    "value_nine": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 3, 1, 9),))), 1),
    "value_zero": (_with_app1(b"Exif\0\0" + _tiff(entries=((0x0112, 3, 1, 0),))), 1),
    "bad_byte_order": (_with_app1(b"Exif\0\0" + b"XX" + _tiff()[2:]), 1),
    "bad_magic": (_with_app1(b"Exif\0\0" + _tiff()[:2] + b"\x2b\x00" + _tiff()[4:]), 1),
    "empty_exif": (_with_app1(b"Exif\0\0"), 1),
    "not_exif_id": (_with_app1(b"Exif\0\1" + _tiff()), 1),
}


def _oriented(image, orientation):
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return image if method is None else image.transpose(method)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data", "ignore:Metadata Warning")
def test_exif_orientation_is_applied_like_pillow():
    plain = Image.open(io.BytesIO(_PLAIN_JPEG)).convert("RGB")
    candidates = {k: np.asarray(_oriented(plain, k), np.float32) / 255 for k in range(1, 9)}
    for shape in ((16, 24), (24, 16)):
        names = [name for name, (_, k) in _EXIF_CASES.items()
                 if candidates[k].shape[:2] == shape]
        out = _native(*shape)(tf.constant([_EXIF_CASES[name][0] for name in names])).numpy()
        for name, decoded in zip(names, out, strict=True):
            data, expected = _EXIF_CASES[name]
            error = np.abs(decoded - _pillow(data)).mean()
            assert error < 0.02, f"{name}: mean error {error:.3f} against Pillow"
            errors = {k: np.abs(decoded - c).mean() for k, c in candidates.items()
                      if c.shape == decoded.shape}
            assert min(errors, key=errors.get) == expected, f"{name}: {errors}"


# ---------------------------------------------------------------- truncation

_GOOD = _encode(np.zeros((8, 8, 3), np.uint8), "PNG")
_JPEG64 = _encode(_RNG.integers(0, 256, (64, 64, 3), np.uint8), "JPEG")
_GIF64 = _encode(Image.fromarray(_RNG.integers(0, 256, (64, 64, 3), np.uint8)).quantize(64),
                 "GIF")

_BAD = {
    "empty": (b"", r"image_bytes\[1\] is not a JPEG, PNG, GIF or BMP file \(0 bytes"),
    "text": (b"definitely not an image", "is not a JPEG, PNG, GIF or BMP"),
    "webp": (_encode(np.zeros((8, 8, 3), np.uint8), "WEBP"), "is not a JPEG, PNG, GIF or BMP"),
    "signature_only": (_GOOD[:8], r"image_bytes\[1\] is truncated"),
    "truncated_png": _truncated(_GOOD, len(_GOOD) // 2, "hold no PNG IEND chunk"),
    "truncated_jpeg": _truncated(_JPEG64, 120, "end inside the JPEG header"),
    "huge": (_png_header(100_000, 100_000), r"declares 100000x100000 pixels"),
    "zero_width": (_png_header(0, 5), r"declares 5x0 pixels"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_bytes_give_a_clear_error(case):
    data, message = _BAD[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _DECODE(tf.constant([_GOOD, data]))


_TRUNCATION = {
    "png_without_iend": _truncated(_GOOD, -12, "hold no PNG IEND chunk"),
    "png_iend_crc_cut": _truncated(_GOOD, -1, "hold no PNG IEND chunk"),
    "jpeg_without_eoi": _truncated(_JPEG64, -2, r"hold no JPEG end-of-image marker \(FF D9\)"),
    "jpeg_mid_scan": _truncated(_JPEG64, 1500, "hold no JPEG end-of-image marker"),
    "jpeg_segment_past_end": _truncated(_with_app1(b"Exif\0\0" + _tiff()), 30,
                                        "end inside the JPEG header segments"),
    "gif_mid_data": _truncated(_GIF64, 2000, r"hold no GIF trailer \(00 3B\) in their last 1024"),
    "gif_without_trailer": _truncated(_GIF64, -1, "hold no GIF trailer"),
}
# Data appended after a complete file is ignored (motion photos append a video to a JPEG).
_APPENDED = {
    "png": (_GOOD, _RNG.bytes(3000)),
    "jpeg": (_JPEG64, _RNG.bytes(5000)),
    "gif": (_GIF64, bytes(100)),
}


def test_truncated_files_are_named_and_appended_data_is_ignored():
    for name, (data, message) in _TRUNCATION.items():
        error = _error(_DECODE, [_GOOD, data])
        assert error and re.search(message, error), f"{name}: {error}"
    for name, (data, appended) in _APPENDED.items():
        out = _DECODE_RGB(tf.constant([data, data + appended])).numpy()
        np.testing.assert_allclose(out[1], out[0], atol=1e-6, err_msg=name)


def test_channels_must_be_one_or_three():
    with pytest.raises(ValueError, match="channels"):
        images.decode_image(tf.constant(_GOOD), 8, 8, channels=4)


# -------------------------------------------------------------- check_images

_CHECK = tf.function(lambda x: images.check_images(x, 4, 4, 3),
                     input_signature=[tf.TensorSpec(None, tf.float32)])  # any rank


def test_check_images_accepts_unit_range_and_names_what_is_wrong():
    good = np.linspace(0, 1, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(_CHECK(good).numpy(), good)
    nearly = good.copy()
    nearly[0, 0, 0] = [-0.0005, 1.0005, 0.5]
    np.testing.assert_allclose(_CHECK(nearly).numpy()[0, 0, 0], [0.0, 1.0, 0.5])
    assert _CHECK(np.zeros((0, 4, 4, 3), np.float32)).shape == (0, 4, 4, 3)
    nan, inf = good.copy(), good.copy()
    nan[1, 2, 3, 0], inf[0, 0, 0, 0] = np.nan, -np.inf
    bad = {
        "scaled_to_255": (good * 255, r"images has values outside \[0, 1\] \(min 0, max 255\): "
                                      r"scale pixels to \[0, 1\]"),
        "negative": (good - 0.5, r"images has values outside \[0, 1\] \(min -0.5, max 0.5\)"),
        "nan": (nan, "images has a NaN or Inf value"),
        "inf": (inf, "images has a NaN or Inf value"),
        "one_channel": (good[..., :1], r"images must have shape \[batch, 4, 4, 3\], "
                                       r"got \[2, 4, 4, 1\]"),
        "cropped": (good[:, :3], r"images must have shape \[batch, 4, 4, 3\], got \[2, 3, 4, 3\]"),
        "rank_3": (good[0], r"images must have shape \[batch, 4, 4, 3\], got \[4, 4, 3\]"),
    }
    for name, (value, message) in bad.items():
        error = _error(_CHECK, value)
        assert error and re.search(message, error), f"{name}: {error}"
    with pytest.raises(ValueError, match=r"pixels must have shape \[batch, 4, 4, 3\]"):
        images.check_images(tf.zeros([1, 4, 4, 1]), 4, 4, 3, name="pixels")
    with pytest.raises(TypeError, match="images must be float32"):
        images.check_images(tf.zeros([1, 4, 4, 3], tf.uint8), 4, 4, 3)
