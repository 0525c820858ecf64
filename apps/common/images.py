"""In-graph image decoding for SavedModels that take encoded image bytes.

`decode_images` turns a `[batch]` string tensor of JPEG / PNG / GIF / BMP files
(any size; grayscale, gray+alpha, RGB or RGBA; 8 or 16 bit) into a float32
`[batch, height, width, channels]` tensor in [0, 1], inside the graph with stock
TensorFlow ops only, so the same code runs in training-side tests and in TF Serving.

Rules (the contract every app that takes `image_bytes` documents). Every error
below is an `InvalidArgumentError` naming the input and the item's index, as in
`image_bytes[2] is truncated: ...`:
- Format is recognised from the file's magic bytes. Empty strings, other
  formats (WebP, JPEG XL, ...) and files too short to hold a header fail.
- The pixel size is read from the header *before* decoding; more than
  `max_pixels` (default 25 megapixels) fails with a clear error instead of
  allocating gigabytes (decompression bombs). Zero-sized headers fail too.
  The size is the stored one, before any EXIF rotation.
- Truncated files fail before decoding: a PNG must hold its IEND chunk, a JPEG
  its end-of-image marker (FF D9) after the start of its scan data, a BMP all
  the pixel rows its header declares. Data appended after those ends (a
  motion-photo video after a JPEG, padding after a BMP, ...) is ignored. A GIF
  must hold its trailer (00 3B) within its last 1024 bytes (a GIF's data cannot
  tell a trailer from image data, so at most 1 KiB may follow it).
- BMP: uncompressed 1, 4 and 8 bit (palette), 24 and 32 bit files with a
  Windows header (40, 52, 56, 108 or 124 bytes), top-down or bottom-up, and
  24/32-bit BITFIELDS files whose masks are whole bytes. Palette indices map
  through the colour table (indices past it give black, as in Pillow); the
  fourth byte of an uncompressed 32-bit pixel is ignored (as in Pillow), a
  BITFIELDS alpha mask gives alpha. Other BMPs (RLE, 16 bit, OS/2 headers,
  embedded JPEG/PNG, other masks) fail as a variant this model cannot decode
  rather than give wrong pixels.
- JPEG EXIF orientation (tag 0x0112 in IFD0 of the first APP1 "Exif" segment,
  values 2..8) is applied, as `PIL.ImageOps.exif_transpose` does. A missing or
  malformed EXIF block means no rotation, never an error.
- Corrupt data that passes these checks still fails in TensorFlow's decoder
  ("Invalid PNG data", "jpeg::Uncompress failed"), an `InvalidArgumentError`
  too, but without the item's index.
- Alpha is composited over black (colour × alpha); gray becomes RGB by
  repetition, colour becomes gray with ITU-R 601 luma; GIFs give their first
  frame.
- The image is resized to `height × width` with antialiasing, keeping its
  aspect ratio and padding with zeros (`keep_aspect=True`; the scaled side is
  at least one pixel, so a 4000×1 image gives one centred row) or stretching.
  A 1×1 image gives a constant image.
A failing item fails the whole batch (one request): clients send one image per
request when they want independent failures.

`check_images` guards signatures that take decoded images: float32
`[batch, height, width, channels]`, finite, within [0, 1].
"""

from __future__ import annotations

import tensorflow as tf

DEFAULT_MAX_PIXELS = 25_000_000
# A GIF's trailer must lie within its last TAIL_BYTES bytes (PNG and JPEG ends may
# lie anywhere after the data they close).
TAIL_BYTES = 1024
# Check tolerance of `check_images` around [0, 1] (values within it are clipped).
RANGE_TOLERANCE = 1e-3

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIF = b"GIF8"
_BMP = b"BM"
# Bytes needed to read the pixel size from each format's header (BMP: see _bmp_header).
_PNG_HEADER, _GIF_HEADER, _BMP_HEADER = 24, 10, 26
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole IEND chunk, CRC included
_JPEG_END = b"\xff\xd9"
_GIF_END = b"\x00\x3b"  # the last data block's terminator, then the trailer
# Bounds of the in-graph JPEG header walk and of the EXIF IFD0 scan.
_MAX_JPEG_SEGMENTS = 64
_MAX_IFD_ENTRIES = 256
_ORIENTATION_TAG = 0x0112
_BMP_INFO_SIZES = (40, 52, 56, 108, 124)
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames).
_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def _int(value):
    return tf.constant(value, tf.int64)


def _length(data):
    return tf.cast(tf.strings.length(data), tf.int64)


def _read_bytes(data, start, count: int):
    """int64 `[count]`: bytes `start .. start + count` of the scalar string `data`.

    Never fails: positions outside the string read as zero, so callers check
    `start >= 0 and start + count <= length` themselves where it matters.
    """
    start = tf.clip_by_value(tf.cast(start, tf.int64), 0, _length(data))
    chunk = tf.strings.substr(data, start, tf.constant(count, tf.int64))
    chunk = tf.strings.substr(tf.strings.join([chunk, b"\0" * count]), 0, count)
    return tf.reshape(tf.cast(tf.io.decode_raw(chunk, tf.uint8), tf.int64), [count])


def _number(values, big_endian):
    """Unsigned integer from the byte values on the last axis (static size) of `values`.

    `big_endian` is a bool or a bool tensor (both orders are computed then).
    """
    little = [256**i for i in range(values.shape[-1])]
    if isinstance(big_endian, bool):
        weights = tf.constant(little[::-1] if big_endian else little, tf.int64)
    else:
        weights = tf.where(big_endian, tf.constant(little[::-1], tf.int64),
                           tf.constant(little, tf.int64))
    return tf.reduce_sum(values * weights, axis=-1)


def _holds(data, start, pattern: bytes, count=None):
    """Whether `data[start:start + count]` (to the end by default) holds the bytes `pattern`."""
    length = _length(data)
    start = tf.clip_by_value(tf.cast(start, tf.int64), 0, length)
    window = tf.strings.substr(data, start, length - start if count is None else _int(count))
    return tf.size(tf.strings.split(window, sep=pattern, maxsplit=1)) > 1


def image_format(data):
    """Scalar string -> int32 code: 0 unknown, 1 PNG, 2 JPEG, 3 GIF, 4 BMP."""
    head = tf.strings.substr(data, 0, 8)
    code = tf.constant(0, tf.int32)
    for value, prefix in ((4, _BMP), (3, _GIF), (2, _JPEG), (1, _PNG)):
        matches = tf.equal(tf.strings.substr(head, 0, len(prefix)), prefix)
        code = tf.where(matches, tf.constant(value, tf.int32), code)
    return code


def header_size(data, code, jpeg_size=None):
    """Height and width (int64 scalars) from the header of a file of format `code` (1..4).

    `jpeg_size`: `(height, width)` already read from a JPEG's start-of-frame
    segment, `-1` when not found (then TensorFlow's `extract_jpeg_shape` reads it).
    """
    head = _read_bytes(data, 0, _BMP_HEADER)
    # int32 BMP fields: a negative height means a top-down bitmap.
    bmp = tf.stack([_number(head[22:26], False), _number(head[18:22], False)])
    bmp = tf.where(bmp >= 2**31, bmp - 2**32, bmp)
    sizes = tf.stack([
        tf.stack([_number(head[20:24], True), _number(head[16:20], True)]),  # PNG
        tf.stack([_number(head[8:10], False), _number(head[6:8], False)]),  # GIF
        tf.stack([tf.abs(bmp[0]), bmp[1]]),
    ])
    size = tf.gather(sizes, tf.gather([0, 0, 0, 1, 2], code))

    def jpeg():
        extract = lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)  # noqa: E731
        if jpeg_size is None:
            return extract()
        found = tf.stack([tf.cast(v, tf.int64) for v in jpeg_size])
        return tf.cond(found[0] >= 0, lambda: found, extract)

    size = tf.cond(tf.equal(code, 2), jpeg, lambda: size)
    return size[0], size[1]


# --------------------------------------------------------------------- JPEG


def _exif_orientation(data, start, end):
    """EXIF orientation (1..8) of the TIFF block `data[start:end]`; 1 when absent or malformed."""
    head = _read_bytes(data, start, 8)
    little = tf.logical_and(tf.equal(head[0], 0x49), tf.equal(head[1], 0x49))  # "II"
    big = tf.logical_and(tf.equal(head[0], 0x4D), tf.equal(head[1], 0x4D))  # "MM"
    magic = _number(head[2:4], big)
    ifd = start + _number(head[4:8], big)
    count = _number(_read_bytes(data, ifd, 2), big)
    entries = tf.reshape(_read_bytes(data, ifd + 2, 12 * _MAX_IFD_ENTRIES), [_MAX_IFD_ENTRIES, 12])
    k = tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    inside = tf.logical_and(k < count, ifd + 2 + 12 * (k + 1) <= end)
    tag = _number(entries[:, 0:2], big)
    kind = _number(entries[:, 2:4], big)
    values = _number(entries[:, 4:8], big)
    short, long = tf.equal(kind, 3), tf.equal(kind, 4)
    value = tf.where(short, _number(entries[:, 8:10], big), _number(entries[:, 8:12], big))
    match = tf.logical_and(inside, tf.equal(tag, _ORIENTATION_TAG))
    match = tf.logical_and(match, tf.logical_and(tf.equal(values, 1), tf.logical_or(short, long)))
    last = tf.reduce_max(tf.where(match, k, _int(-1)))  # Pillow keeps the last of repeated tags
    value = tf.gather(value, tf.maximum(last, 0))
    valid = [
        start >= 0, tf.logical_or(little, big), tf.equal(magic, 42), ifd >= start + 8,
        ifd + 2 <= end, last >= 0, value >= 1, value <= 8,
    ]
    return tf.where(tf.reduce_all(tf.stack(valid)), value, tf.constant(1, tf.int64))


def _jpeg_structure(data):
    """Walks a JPEG's marker segments from SOI up to its first SOS (bounded).

    Returns int64 `(sof_height, sof_width, sos_position, orientation)` and a bool
    `ends_early` (the file ends inside its header segments); positions and sizes
    are -1 where not found.
    """
    length = _length(data)
    minus_one = tf.constant(-1, tf.int64)

    def step(pos, done, ends_early, sof_h, sof_w, sos, exif_start, exif_end):
        head = _read_bytes(data, pos, 10)  # FF, marker, length, then up to 6 payload bytes
        marker = head[1]
        short = pos + 4 > length  # a marker before SOS is followed by more data
        junk = tf.not_equal(head[0], 0xFF)
        fill = tf.equal(marker, 0xFF)
        standalone = tf.logical_or(tf.equal(marker, 0x01),
                                   tf.logical_and(marker >= 0xD0, marker <= 0xD7))
        stop = tf.logical_or(tf.equal(marker, 0xD8), tf.equal(marker, 0xD9))
        seg_end = pos + 2 + _number(head[2:4], True)
        segment = tf.logical_not(tf.reduce_any(tf.stack([short, junk, fill, standalone, stop])))
        bad_length = tf.logical_and(segment, _number(head[2:4], True) < 2)
        past_end = tf.logical_and(segment, seg_end > length)
        is_sos = tf.logical_and(segment, tf.equal(marker, 0xDA))
        is_sof = tf.logical_and(segment, tf.reduce_any(tf.equal(marker, _SOF_MARKERS)))
        is_sof = tf.logical_and(is_sof, sof_h < 0)
        frame = head[5:9]  # after the precision byte: height, width
        exif_id = head[4:10]
        is_exif = tf.logical_and(segment, tf.equal(marker, 0xE1))
        is_exif = tf.logical_and(is_exif, tf.reduce_all(tf.equal(exif_id, list(b"Exif\0\0"))))
        is_exif = tf.logical_and(is_exif, exif_start < 0)
        ends_early = tf.logical_or(ends_early, tf.logical_or(short, past_end))
        done = tf.reduce_any(tf.stack([short, junk, stop, bad_length, past_end, is_sos]))
        next_pos = tf.where(fill, pos + 1, tf.where(standalone, pos + 2, seg_end))
        return (
            next_pos, done, ends_early,
            tf.where(is_sof, _number(frame[0:2], True), sof_h),
            tf.where(is_sof, _number(frame[2:4], True), sof_w),
            tf.where(is_sos, pos, sos),
            tf.where(is_exif, pos + 10, exif_start),
            tf.where(is_exif, seg_end, exif_end),
        )

    state = (tf.constant(2, tf.int64), tf.constant(False), tf.constant(False),
             minus_one, minus_one, minus_one, minus_one, minus_one)
    state = tf.while_loop(lambda pos, done, *rest: tf.logical_not(done), step, state,
                          maximum_iterations=_MAX_JPEG_SEGMENTS)
    _, _, ends_early, sof_h, sof_w, sos, exif_start, exif_end = state
    orientation = _exif_orientation(data, exif_start, exif_end)
    return sof_h, sof_w, sos, orientation, ends_early


def _orient(image, orientation):
    """Applies EXIF orientation 1..8 to `[h, w, c]`, as PIL.ImageOps.exif_transpose.

    5..8 transpose first; then 3, 4, 7, 8 reverse the rows and 2, 3, 6, 7 the columns.
    """
    orientation = tf.clip_by_value(orientation, 1, 8)
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    flips = tf.stack([tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8])),
                      tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))])
    return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), flips))


# ---------------------------------------------------------------------- BMP


def _bmp_header(data):
    """The fields of a BMP header (int64 / bool scalars; garbage for other formats)."""

    header = _read_bytes(data, 0, 70)

    def field(start, count):
        return _number(header[start:start + count], False)

    def signed(value):
        return tf.where(value >= 2**31, value - 2**32, value)

    info = field(14, 4)
    offset = field(10, 4)
    width, height = signed(field(18, 4)), signed(field(22, 4))
    bpp, compression, colours = field(28, 2), field(30, 4), field(46, 4)
    known_info = tf.reduce_any(tf.equal(info, _BMP_INFO_SIZES))
    bitfields = tf.equal(compression, 3)
    # BITFIELDS masks follow a 40-byte header, or lie inside a longer one (alpha from 56 on).
    masks_after = tf.logical_and(bitfields, tf.equal(info, 40))
    header_end = 14 + info + tf.where(masks_after, _int(12), _int(0))
    needed = tf.where(known_info, header_end, _int(_BMP_HEADER))
    masks = tf.stack([field(54, 4), field(58, 4), field(62, 4),
                      tf.where(info >= 56, field(66, 4), _int(0))])
    pixel_bytes = bpp // 8
    byte_masks = tf.constant([0xFF, 0xFF00, 0xFF0000, 0xFF000000], tf.int64)
    in_pixel = tf.range(4, dtype=tf.int64) < pixel_bytes
    matches = tf.logical_and(tf.equal(masks[:, None], byte_masks[None, :]), in_pixel[None, :])
    whole_byte = tf.reduce_any(matches, axis=1)
    position = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
    alpha = tf.logical_and(bitfields, tf.not_equal(masks[3], 0))
    used = tf.where(alpha, 4, 3)
    used_mask = tf.range(4) < used
    pairs = tf.logical_and(tf.logical_and(used_mask[:, None], used_mask[None, :]),
                           tf.logical_not(tf.eye(4, dtype=tf.bool)))
    distinct = tf.reduce_all(tf.logical_or(tf.logical_not(pairs),
                                           tf.not_equal(position[:, None], position[None, :])))
    masks_ok = tf.logical_and(tf.reduce_all(tf.logical_or(whole_byte, tf.logical_not(used_mask))),
                              distinct)
    channel_bytes = tf.where(bitfields, position, tf.constant([2, 1, 0, 3]))
    indexed = tf.reduce_any(tf.equal(bpp, [1, 4, 8]))
    direct = tf.reduce_any(tf.equal(bpp, [24, 32]))
    levels = tf.bitwise.left_shift(tf.constant(1, tf.int64), tf.minimum(bpp, 8))
    palette_start = 14 + info
    count = tf.where(colours > 0, tf.minimum(colours, levels), levels)
    count = tf.minimum(count, (offset - palette_start) // 4)  # entries before the pixels
    raw = tf.logical_and(tf.equal(compression, 0), tf.logical_or(indexed, direct))
    fields = tf.logical_and(bitfields, tf.logical_and(direct, masks_ok))
    supported = tf.reduce_all(tf.stack([
        known_info, tf.logical_or(raw, fields), offset >= header_end,
        tf.logical_or(tf.logical_not(indexed), count >= 1),
    ]))
    row_bytes = (bpp * width + 31) // 32 * 4
    return {
        "info": info, "offset": offset, "width": width, "height": height, "bpp": bpp,
        "compression": compression, "needed": needed, "supported": supported,
        "row_bytes": row_bytes, "end": offset + row_bytes * tf.abs(height),
        "palette_start": palette_start, "count": count,
        "channel_bytes": channel_bytes[:used],
    }


def _decode_bmp(data, bmp):
    """uint8 `[rows, cols, 1|3|4]` of a BMP that `_bmp_header` accepted."""
    rows, cols, bpp = tf.abs(bmp["height"]), bmp["width"], bmp["bpp"]
    pixels = tf.io.decode_raw(tf.strings.substr(data, bmp["offset"], bmp["row_bytes"] * rows),
                              tf.uint8)
    pixels = tf.reshape(pixels, tf.stack([rows, bmp["row_bytes"]]))
    pixels = tf.cond(bmp["height"] > 0, lambda: tf.reverse(pixels, [0]), lambda: pixels)

    def indexed():
        per_byte = 8 // bpp
        shifts = tf.cast(bpp * (per_byte - 1 - tf.range(per_byte, dtype=tf.int64)), tf.uint8)
        mask = tf.cast(tf.bitwise.left_shift(tf.constant(1, tf.int64), bpp) - 1, tf.uint8)
        indices = tf.bitwise.bitwise_and(tf.bitwise.right_shift(pixels[:, :, None], shifts), mask)
        indices = tf.reshape(indices, tf.stack([rows, bmp["row_bytes"] * per_byte]))[:, :cols]
        table = tf.reshape(_read_bytes(data, bmp["palette_start"], 4 * 256), [256, 4])  # BGR_
        table = tf.stack([table[:, 2], table[:, 1], table[:, 0]], axis=1)
        table = tf.where(tf.range(256, dtype=tf.int64)[:, None] < bmp["count"], table, _int(0))
        table = tf.cast(table, tf.uint8)  # entries past the palette are black, as in Pillow
        gray = tf.reduce_all(tf.logical_and(tf.equal(table[:, 0], table[:, 1]),
                                            tf.equal(table[:, 1], table[:, 2])))
        table = tf.cond(gray, lambda: table[:, :1], lambda: table)
        return tf.gather(table, tf.cast(indices, tf.int32))

    def direct():
        size = bpp // 8
        values = tf.reshape(pixels[:, :size * cols], tf.stack([rows, cols, size]))
        return tf.gather(values, bmp["channel_bytes"], axis=2)

    image = tf.cond(bpp <= 8, indexed, direct)
    image.set_shape([None, None, None])
    return image


# ------------------------------------------------------------------ pixels


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

    Like `tf.image.resize_with_pad` (same size and offsets, in integers), except
    that the scaled side never rounds down to zero pixels.
    """
    if not keep_aspect:
        return tf.image.resize(image, (height, width), antialias=True)
    shape = tf.shape(image, out_type=tf.int64)
    rows, cols = shape[0], shape[1]
    width_bound = cols * height >= rows * width
    new_rows = tf.where(width_bound, tf.maximum(rows * width // cols, 1), _int(height))
    new_cols = tf.where(width_bound, _int(width), tf.maximum(cols * height // rows, 1))
    image = tf.image.resize(image, tf.cast(tf.stack([new_rows, new_cols]), tf.int32),
                            antialias=True)
    return tf.image.pad_to_bounding_box(image, tf.cast((height - new_rows) // 2, tf.int32),
                                        tf.cast((width - new_cols) // 2, tf.int32), height, width)


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
    length = _length(data)
    code = image_format(data)
    is_png, is_jpeg, is_gif, is_bmp = (tf.equal(code, value) for value in (1, 2, 3, 4))

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
    bmp = _bmp_header(data)
    needed = tf.gather(tf.constant([0, _PNG_HEADER, 4, _GIF_HEADER, 0], tf.int64), code)
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
            is_jpeg, lambda: _jpeg_structure(data),
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
            lambda: _holds(data, 8, _PNG_END),
            lambda: _holds(data, tf.where(sos >= 0, sos + 2, _int(2)), _JPEG_END),
            lambda: _holds(data, length - TAIL_BYTES, _GIF_END, TAIL_BYTES),
            lambda: bmp["end"] <= length,
        ])
    ending = tf.gather(tf.constant([
        "", "no PNG IEND chunk", "no JPEG end-of-image marker (FF D9) after the image data",
        f"no GIF trailer (00 3B) in the last {TAIL_BYTES}", "",
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
            is_bmp, lambda: _decode_bmp(data, bmp),
            lambda: tf.io.decode_image(data, channels=0, expand_animations=False),
        )
    image = _orient(image, orientation)
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
    check_shape = tf.debugging.Assert(
        shape_ok, [tf.strings.format(f"{name} must have shape {wanted}, got {{}}.", shape)])
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
