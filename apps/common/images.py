"""In-graph image decoding for SavedModels that take encoded image bytes.

`decode_images` turns a `[batch]` string tensor of JPEG / PNG / GIF / BMP files
(any size; grayscale, gray+alpha, RGB or RGBA; 8 or 16 bit) into a float32
`[batch, height, width, channels]` tensor in [0, 1], inside the graph, so the
same code runs in training-side tests and in TF Serving.

Rules (the contract every app that takes `image_bytes` documents):
- Format is recognised from the file's magic bytes. Empty strings, other
  formats (WebP, JPEG XL, ...) and files too short to hold a header fail with
  an `InvalidArgumentError` naming `image_bytes` and the item's index.
- The pixel size is read from the header *before* decoding; more than
  `max_pixels` (default 25 megapixels) fails with a clear error instead of
  allocating gigabytes (decompression bombs). Zero-sized headers fail too.
- Corrupt or truncated data fail with TensorFlow's decoder error ("Invalid PNG
  data", "jpeg::Uncompress failed"), an `InvalidArgumentError` as well.
- Alpha is composited over black (colour × alpha); gray becomes RGB by
  repetition, colour becomes gray with ITU-R 601 luma; GIFs give their first
  frame.
- The image is resized to `height × width` with antialiasing, keeping its
  aspect ratio and padding with zeros (`keep_aspect=True`) or stretching.
  A 1×1 image gives a constant image.
A failing item fails the whole batch (one request): clients send one image per
request when they want independent failures.
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_MAX_PIXELS = 25_000_000

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIF = b"GIF8"
_BMP = b"BM"
# Bytes needed to read the pixel size from each format's header.
_PNG_HEADER, _GIF_HEADER, _BMP_HEADER = 24, 10, 26


def _integer(data, start, count, big_endian):
    """The unsigned integer in bytes `start .. start + count` of the scalar string `data`."""
    values = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, count), tf.uint8), tf.int64)
    out = tf.constant(0, tf.int64)
    for i in range(count) if big_endian else reversed(range(count)):
        out = out * 256 + values[i]
    return out


def image_format(data):
    """Scalar string -> int32 code: 0 unknown, 1 PNG, 2 JPEG, 3 GIF, 4 BMP."""
    head = tf.strings.substr(data, 0, 8)
    code = tf.constant(0, tf.int32)
    for value, prefix in ((4, _BMP), (3, _GIF), (2, _JPEG), (1, _PNG)):
        matches = tf.equal(tf.strings.substr(head, 0, len(prefix)), prefix)
        code = tf.where(matches, tf.constant(value, tf.int32), code)
    return code


def header_size(data, code):
    """Height and width (int64 scalars) from the header of a file of format `code` (1..4)."""

    def png():
        width = _integer(data, 16, 4, big_endian=True)
        height = _integer(data, 20, 4, big_endian=True)
        return tf.stack([height, width])

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

    def gif():
        width = _integer(data, 6, 2, big_endian=False)
        height = _integer(data, 8, 2, big_endian=False)
        return tf.stack([height, width])

    def bmp():
        width = _integer(data, 18, 4, big_endian=False)
        height = _integer(data, 22, 4, big_endian=False)
        # int32 fields: a negative height means a top-down bitmap.
        width = tf.where(width >= 2**31, width - 2**32, width)
        height = tf.where(height >= 2**31, height - 2**32, height)
        return tf.stack([tf.abs(height), width])

    size = tf.switch_case(code - 1, [png, jpeg, gif, bmp])
    return size[0], size[1]


def _to_channels(image, channels):
    """uint8/float image with 1-4 channels -> float32 in [0, 1] with `channels` (1 or 3)."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    have = tf.shape(image)[-1]

    def gray():
        return image[..., :1]

    def gray_alpha():
        return image[..., :1] * image[..., 1:2]

    def rgb():
        return image[..., :3]

    def rgba():
        return image[..., :3] * image[..., 3:4]

    if channels == 1:
        branches = [gray, gray_alpha, lambda: tf.image.rgb_to_grayscale(rgb()),
                    lambda: tf.image.rgb_to_grayscale(rgba())]
    else:
        branches = [lambda: tf.tile(gray(), [1, 1, 3]), lambda: tf.tile(gray_alpha(), [1, 1, 3]),
                    rgb, rgba]
    out = tf.switch_case(tf.clip_by_value(have, 1, 4) - 1, branches)
    out.set_shape([None, None, channels])
    return out


def decode_image(data, height: int, width: int, channels: int = 3, keep_aspect: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS, index=None, name: str = "image_bytes"):
    """One encoded image (scalar string) -> float32 `[height, width, channels]` in [0, 1].

    See the module docstring for the rules. `index` (int scalar) and `name` go into
    error messages.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    data = tf.convert_to_tensor(data, tf.string)
    index = tf.constant(-1) if index is None else index
    length = tf.strings.length(data)
    code = image_format(data)

    def message(template, *values):
        return tf.strings.format(f"{name}[{{}}] " + template, (index, *values))

    check_format = tf.debugging.Assert(
        code > 0,
        [message("is not a JPEG, PNG, GIF or BMP file ({} bytes; empty, or another format?). "
                 "Send the encoded bytes of such a file.", length)],
    )
    with tf.control_dependencies([check_format]):
        needed = tf.gather([0, _PNG_HEADER, 4, _GIF_HEADER, _BMP_HEADER], code)
        check_length = tf.debugging.Assert(
            length >= needed,
            [message("is truncated: its {} bytes cannot hold the image header.", length)],
        )
    with tf.control_dependencies([check_length]):
        rows, cols = header_size(data, code)
        check_size = tf.debugging.Assert(
            tf.logical_and(tf.logical_and(rows > 0, cols > 0), rows * cols <= max_pixels),
            [message(f"declares {{}}x{{}} pixels; this model accepts 1 to {max_pixels} pixels. "
                     "Send a smaller (or a valid) image.", rows, cols)],
        )
    with tf.control_dependencies([check_size]):
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
    image = _to_channels(image, channels)
    if keep_aspect:
        image = tf.image.resize_with_pad(image, height, width, antialias=True)
    else:
        image = tf.image.resize(image, (height, width), antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([height, width, channels])
    return image


def decode_images(image_bytes, height: int, width: int, channels: int = 3,
                  keep_aspect: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                  name: str = "image_bytes"):
    """`[batch]` encoded images -> float32 `[batch, height, width, channels]` in [0, 1].

    Args:
        image_bytes: string tensor `[batch]` of JPEG / PNG / GIF / BMP files.
        height, width: output size.
        channels: 1 (grayscale) or 3 (RGB).
        keep_aspect: pad to keep the aspect ratio (True) or stretch (False).
        max_pixels: the largest declared image accepted (height x width).
        name: the input's name, for error messages.

    Returns:
        float32 `(batch, height, width, channels)`; a batch of zero gives zero rows.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    batch = tf.shape(image_bytes)[0]
    indices = tf.range(batch)
    return tf.map_fn(
        lambda item: decode_image(item[0], height, width, channels, keep_aspect, max_pixels,
                                  index=item[1], name=name),
        (image_bytes, indices),
        fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32),
    )
