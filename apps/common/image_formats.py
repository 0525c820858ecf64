"""Reading image file structure in the graph: formats, sizes, JPEG EXIF orientation, BMP.

The parsers behind `apps.common.images.decode_image`, apart so that module
stays about decoding: magic bytes (`image_format`), the pixel size from each
format's header without decoding (`header_size`), the JPEG segment walk that
finds the frame size, the scan and the EXIF orientation (`jpeg_structure`,
`orient`), and an uncompressed-BMP decoder that applies palettes
(`bmp_header`, `decode_bmp`; TensorFlow's own returns palette indices).
Stock TensorFlow ops only: this runs inside SavedModels served by TF Serving.
"""

from __future__ import annotations

import tensorflow as tf

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIF = b"GIF8"
_BMP = b"BM"
# Bytes needed to read the pixel size from each format's header (BMP: see bmp_header).
PNG_HEADER, GIF_HEADER, _BMP_HEADER = 24, 10, 26
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole IEND chunk, CRC included
JPEG_END = b"\xff\xd9"
GIF_END = b"\x00\x3b"  # the last data block's terminator, then the trailer
# Bounds of the in-graph JPEG header walk and of the EXIF IFD0 scan.
_MAX_JPEG_SEGMENTS = 64
_MAX_IFD_ENTRIES = 256
_ORIENTATION_TAG = 0x0112
_BMP_INFO_SIZES = (40, 52, 56, 108, 124)
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames).
_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def int64(value):
    return tf.constant(value, tf.int64)


def byte_length(data):
    return tf.cast(tf.strings.length(data), tf.int64)


def _read_bytes(data, start, count: int):
    """int64 `[count]`: bytes `start .. start + count` of the scalar string `data`.

    Never fails: positions outside the string read as zero, so callers check
    `start >= 0 and start + count <= length` themselves where it matters.
    """
    start = tf.clip_by_value(tf.cast(start, tf.int64), 0, byte_length(data))
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


def holds(data, start, pattern: bytes, count=None):
    """Whether `data[start:start + count]` (to the end by default) holds the bytes `pattern`."""
    length = byte_length(data)
    start = tf.clip_by_value(tf.cast(start, tf.int64), 0, length)
    window = tf.strings.substr(data, start, length - start if count is None else int64(count))
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
    # One SHORT (or two: Pillow takes the first, both lie in the entry) or one LONG.
    inline = tf.logical_or(tf.logical_and(short, tf.logical_or(tf.equal(values, 1),
                                                               tf.equal(values, 2))),
                           tf.logical_and(long, tf.equal(values, 1)))
    match = tf.logical_and(match, inline)
    last = tf.reduce_max(tf.where(match, k, int64(-1)))  # Pillow keeps the last of repeated tags
    value = tf.gather(value, tf.maximum(last, 0))
    valid = [
        start >= 0, tf.logical_or(little, big), tf.equal(magic, 42), ifd >= start + 8,
        ifd + 2 <= end, last >= 0, value >= 1, value <= 8,
    ]
    return tf.where(tf.reduce_all(tf.stack(valid)), value, tf.constant(1, tf.int64))


def jpeg_structure(data):
    """Walks a JPEG's marker segments from SOI up to its first SOS (bounded).

    Returns int64 `(sof_height, sof_width, sos_position, orientation)` and a bool
    `ends_early` (the file ends inside its header segments); positions and sizes
    are -1 where not found.
    """
    length = byte_length(data)
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


def orient(image, orientation):
    """Applies EXIF orientation 1..8 to `[h, w, c]`, as PIL.ImageOps.exif_transpose.

    5..8 transpose first; then 3, 4, 7, 8 reverse the rows and 2, 3, 6, 7 the columns.
    """
    orientation = tf.clip_by_value(orientation, 1, 8)
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    flips = tf.stack([tf.reduce_any(tf.equal(orientation, [3, 4, 7, 8])),
                      tf.reduce_any(tf.equal(orientation, [2, 3, 6, 7]))])
    return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), flips))


# ---------------------------------------------------------------------- BMP


def bmp_header(data):
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
    header_end = 14 + info + tf.where(masks_after, int64(12), int64(0))
    needed = tf.where(known_info, header_end, int64(_BMP_HEADER))
    masks = tf.stack([field(54, 4), field(58, 4), field(62, 4),
                      tf.where(info >= 56, field(66, 4), int64(0))])
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


def decode_bmp(data, bmp):
    """uint8 `[rows, cols, 1|3|4]` of a BMP that `bmp_header` accepted."""
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
        table = tf.where(tf.range(256, dtype=tf.int64)[:, None] < bmp["count"], table, int64(0))
        table = tf.cast(table, tf.uint8)  # entries past the palette are black, as in Pillow
        gray = tf.reduce_all(tf.logical_and(tf.equal(table[:, 0], table[:, 1]),
                                            tf.equal(table[:, 1], table[:, 2])))
        table = tf.cond(gray, lambda: table[:, :1], lambda: table)
        return tf.gather(table, tf.cast(indices, tf.int32))

    def direct():
        size = bpp // 8
        values = tf.reshape(pixels[:, :size * cols], tf.stack([rows, cols, size]))
        return tf.cond(tf.equal(bmp["compression"], 0),
                       lambda: tf.reverse(values[..., :3], [2]),  # BGR(X), faster than gather
                       lambda: tf.gather(values, bmp["channel_bytes"], axis=2))

    image = tf.cond(bpp <= 8, indexed, direct)
    image.set_shape([None, None, None])
    return image


# ------------------------------------------------------------------ pixels
