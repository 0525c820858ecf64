"""In-graph image decoding for SavedModels that take encoded image bytes.

`decode_images` turns a `[batch]` string tensor of JPEG / PNG / GIF / BMP files
(any size; grayscale, gray+alpha, RGB or RGBA; 8 or 16 bit) into a float32
`[batch, height, width, channels]` tensor in [0, 1], inside the graph with stock
TensorFlow ops only, so the same code runs in training-side tests and in TF Serving.

Rules (the contract every app that takes `image_bytes` documents). Each check
fails with an `InvalidArgumentError` naming the input and the item's index
(`image_bytes[2] is truncated: ...`):
- Format is recognised from the file's magic bytes. Empty strings, other
  formats (WebP, JPEG XL, ...) and files too short to hold a header fail.
- The pixel size is read from the header *before* decoding; more than
  `max_pixels` (default 25 megapixels) fails with a clear error instead of
  allocating gigabytes (decompression bombs). Zero-sized headers fail too.
  The size checked is the stored one, before any EXIF rotation.
- Truncated files fail before decoding ("is truncated"): a PNG must hold its
  IEND chunk; a JPEG's header segments must lie within the file and an
  end-of-image marker (FF D9) must follow the start of its scan data; a BMP
  must hold all the pixel rows its header declares. Bytes appended after those
  ends (a motion-photo video after a JPEG, padding after a BMP) are ignored. A
  GIF must hold its trailer (00 3B) within its last 1024 bytes: GIF data has
  no end marker that image data cannot imitate, so at most 1 KiB may follow.
- BMP: uncompressed 1, 4 and 8 bit (palette), 24 and 32 bit files with a
  Windows info header (40, 52, 56, 108 or 124 bytes), bottom-up or top-down,
  and 24/32-bit BITFIELDS files whose masks are whole, distinct bytes. Palette
  indices map through the colour table to RGB (gray when every entry is gray;
  indices past the table give black, as in Pillow); the fourth byte of an
  uncompressed 32-bit pixel is ignored (as in Pillow); a BITFIELDS alpha mask
  gives alpha. Any other BMP (RLE, 16 bit, OS/2 headers, embedded JPEG/PNG,
  other masks, an empty palette) fails as "a BMP variant this model cannot
  decode" rather than give wrong pixels.
- JPEG EXIF orientation 2..8 (tag 0x0112, one SHORT (or two: the first counts)
  or one LONG, in IFD0 of the first APP1 "Exif" segment) is applied as
  `PIL.ImageOps.exif_transpose` applies it. A missing or malformed EXIF block,
  or another value, means no rotation, never an error. Other formats' EXIF
  (PNG eXIf) is not read.
- Corrupt data that passes these checks still fails, in TensorFlow's decoder
  ("Invalid PNG data", "jpeg::Uncompress failed"): an `InvalidArgumentError`
  too, but one that does not name the item.
- Alpha is composited over black (colour × alpha); gray becomes RGB by
  repetition, colour becomes gray with ITU-R 601 luma; GIFs give their first
  frame.
- The image is resized to `height × width` with antialiasing, stretched
  (`keep_aspect=False`) or keeping its aspect ratio (`keep_aspect=True`): the
  side that sets the scale fills the output, the other gets
  `floor(side × scale)` pixels but at least one (a 4000×1 image gives one row),
  centred between zero padding (the odd row or column after). Any size from 1×1
  to `max_pixels` works for any output size; a 1×1 image gives a constant image.
A failing item fails the whole batch (one request): clients send one image per
request when they want independent failures.

`check_images` guards signatures that take decoded images: float32
`[batch, height, width, channels]`, finite, within [0, 1].
"""

from __future__ import annotations

import tensorflow as tf

from apps.common.image_formats import (
    GIF_END,
    GIF_HEADER,
    JPEG_END,
    PNG_END,
    PNG_HEADER,
    bmp_header,
    byte_length,
    decode_bmp,
    header_size,
    holds,
    image_format,
    int64,
    jpeg_structure,
    orient,
)

DEFAULT_MAX_PIXELS = 25_000_000
# A GIF's trailer must lie within its last TAIL_BYTES bytes (PNG and JPEG ends may
# lie anywhere after the data they close).
TAIL_BYTES = 1024
# Check tolerance of `check_images` around [0, 1] (values within it are clipped).
RANGE_TOLERANCE = 1e-3

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


def _resize(image, height: int, width: int, keep_aspect: bool):
    """`[h, w, c]` float -> `[height, width, c]`, antialiased; padded with zeros to keep aspect.

    Sizes in integers: the side that sets the scale fills its target, the other
    gets `floor(side * scale)` pixels but at least one, centred (extra padding
    row or column after). `tf.image.resize_with_pad` computes the same in
    float32, which can floor to zero (an error) or, in a graph, to a pixel short.
    """
    if not keep_aspect:
        return tf.image.resize(image, (height, width), antialias=True)
    shape = tf.shape(image, out_type=tf.int64)
    rows, cols = shape[0], shape[1]
    width_bound = cols * height >= rows * width
    size = tf.where(width_bound, tf.stack([tf.maximum(rows * width // cols, 1), int64(width)]),
                    tf.stack([int64(height), tf.maximum(cols * height // rows, 1)]))
    padding = (tf.constant([height, width], tf.int64) - size) // 2
    image = tf.image.resize(image, tf.cast(size, tf.int32), antialias=True)
    return tf.image.pad_to_bounding_box(image, tf.cast(padding[0], tf.int32),
                                        tf.cast(padding[1], tf.int32), height, width)


@tf.autograph.experimental.do_not_convert
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
    length = byte_length(data)
    code = image_format(data)
    is_jpeg, is_bmp = tf.equal(code, 2), tf.equal(code, 4)

    def message(template, *values):
        return tf.strings.format(f"{name}[{{}}] " + template, (index, *values))

    def check(condition, text, after):
        with tf.control_dependencies(after):
            return [tf.debugging.Assert(condition, [text])]

    checks = check(
        code > 0,
        message("is not a JPEG, PNG, GIF or BMP file ({} bytes; empty, or another format?). "
                "Send the encoded bytes of such a file.", length),
        [],
    )
    bmp = bmp_header(data)
    needed = tf.gather(tf.constant([0, PNG_HEADER, 4, GIF_HEADER, 0], tf.int64), code)
    needed = tf.where(is_bmp, bmp["needed"], needed)
    checks = check(
        length >= needed,
        message("is truncated: its {} bytes cannot hold the image header.", length),
        checks,
    )
    checks = check(
        tf.logical_or(tf.logical_not(is_bmp), bmp["supported"]),
        message("is a BMP variant this model cannot decode ({}-byte header, {} bits per pixel, "
                "compression {}, pixels at byte {}). Send it as PNG or JPEG.",
                bmp["info"], bmp["bpp"], bmp["compression"], bmp["offset"]),
        checks,
    )
    with tf.control_dependencies(checks):
        minus_one = tf.constant(-1, tf.int64)
        sof_h, sof_w, sos, orientation, ends_early = tf.cond(
            is_jpeg, lambda: jpeg_structure(data),
            lambda: (minus_one, minus_one, minus_one, tf.constant(1, tf.int64),
                     tf.constant(False)),
        )
    checks = check(
        tf.logical_not(ends_early),
        message("is truncated: its {} bytes end inside the JPEG header segments. "
                "Send the whole file.", length),
        checks,
    )
    with tf.control_dependencies(checks):
        rows, cols = header_size(data, code, (sof_h, sof_w))
    checks = check(
        tf.logical_and(tf.logical_and(rows > 0, cols > 0), rows * cols <= max_pixels),
        message(f"declares {{}}x{{}} pixels; this model accepts 1 to {max_pixels} pixels. "
                "Send a smaller (or a valid) image.", rows, cols),
        checks,
    )
    with tf.control_dependencies(checks):
        complete = tf.switch_case(code - 1, [
            lambda: holds(data, 8, PNG_END),
            lambda: holds(data, tf.where(sos >= 0, sos + 2, int64(2)), JPEG_END),
            lambda: holds(data, length - TAIL_BYTES, GIF_END, TAIL_BYTES),
            lambda: bmp["end"] <= length,
        ])
    ending = tf.gather(tf.constant([
        "", "no PNG IEND chunk", "no JPEG end-of-image marker (FF D9) after the image data",
        f"no GIF trailer (00 3B) in their last {TAIL_BYTES}", "",
    ]), code)
    truncated = tf.strings.join([
        message("is truncated: its {} bytes hold ", length), ending, ". Send the whole file."])
    truncated = tf.where(is_bmp, message(
        "is truncated: its {} bytes cannot hold the BMP pixel data ({} rows of {} bytes from "
        "byte {}). Send the whole file.", length, rows, bmp["row_bytes"], bmp["offset"]),
        truncated)
    checks = check(complete, truncated, checks)
    with tf.control_dependencies(checks):
        image = tf.cond(
            is_bmp, lambda: decode_bmp(data, bmp),
            lambda: tf.io.decode_image(data, channels=0, expand_animations=False),
        )
    image = orient(image, orientation)
    image = _to_channels(image, channels)
    image = _resize(image, height, width, keep_aspect)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([height, width, channels])
    return image


@tf.autograph.experimental.do_not_convert
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


@tf.autograph.experimental.do_not_convert
def check_images(images, height: int, width: int, channels: int, name: str = "images"):
    """Checks decoded images: float32 `[batch, height, width, channels]`, finite, in [0, 1].

    The dynamic shape is asserted even when the signature states it. Values up to
    `RANGE_TOLERANCE` outside [0, 1] are accepted and clipped. Failures are
    `InvalidArgumentError`s naming `name` ("images has a NaN or Inf value", "images
    has values outside [0, 1] (min 0, max 255): scale pixels to [0, 1]", ...); a
    wrong dtype or static shape raises `TypeError` / `ValueError` when tracing.

    Returns:
        The images, clipped to [0, 1].
    """
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.float32:
        raise TypeError(f"{name} must be float32, got {images.dtype.name}.")
    expected = [int(height), int(width), int(channels)]
    wanted = f"[batch, {expected[0]}, {expected[1]}, {expected[2]}]"
    if not images.shape.is_compatible_with([None, *expected]):
        raise ValueError(f"{name} must have shape {wanted}, got {images.shape}.")
    shape = tf.shape(images)
    padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)[:4]
    shape_ok = tf.logical_and(tf.equal(tf.size(shape), 4),
                              tf.reduce_all(tf.equal(padded[1:], expected)))
    got = tf.strings.reduce_join(tf.strings.as_string(shape), separator=", ")
    check_shape = tf.debugging.Assert(
        shape_ok, [tf.strings.join([f"{name} must have shape {wanted}, got [", got, "]."])])
    with tf.control_dependencies([check_shape]):
        check_finite = tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(images)),
            [f"{name} has a NaN or Inf value. Send finite pixel values in [0, 1]."],
        )
    with tf.control_dependencies([check_finite]):
        in_range = tf.logical_and(images >= -RANGE_TOLERANCE, images <= 1 + RANGE_TOLERANCE)
        check_range = tf.debugging.Assert(tf.reduce_all(in_range), [tf.strings.format(
            f"{name} has values outside [0, 1] (min {{}}, max {{}}): scale pixels to [0, 1].",
            (tf.reduce_min(images), tf.reduce_max(images)))])
    with tf.control_dependencies([check_range]):
        return tf.clip_by_value(images, 0.0, 1.0)
