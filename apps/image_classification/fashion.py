"""Fashion-MNIST, plain and cluttered, as a builder of the `cluttered_digits` family (tfds).

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence): 70,000 grayscale
28x28 images of Zalando articles in 10 classes, 60,000 for training and 10,000
for test, light on a black background like MNIST. Source: Debian's
`dataset-fashion-mnist` package (`acquire.fashion_mnist_dir`: `apt-get
download`, `dpkg-deb -x`, every file's SHA-256 checked), or a directory holding
the four idx files (gzip or plain) given as the builder's `source_dir`.

Two registered configs, both drawn by `builder.draw_canvas` (so the box, the
clutter and the localization score work exactly as for `cluttered_digits`):

- `plain` (the app's `--dataset=fashion_mnist`): the 28x28 images as they are
  (a 28x28 canvas, no clutter, one canvas per garment);
- `cluttered` (`--dataset=cluttered_fashion_mnist`): each garment at a random
  place on a 60x60 canvas among 4-8 8x8 fragments cut from *other* garments of
  the same split, kept off the garment's box; one canvas per garment.

Splits: `test` is the official 10,000-image test file; `validation` is 10% of
each class of the official training file (600 per class), held out with the
config's seed; `train` is the other 54,000. `source_index` is the garment's
row in the training file, or 60,000 + its row in the test file. Any other
drawing (`fashion_config("cluttered", canvas_size=100)`) is a config of its
own, named after what it changes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

from apps.common import acquire as common_acquire
from apps.image_classification import acquire
from apps.image_classification import builder as canvas_lib

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
# The app's dataset names -> the builder config they load.
DATASETS = {"fashion_mnist": "plain", "cluttered_fashion_mnist": "cluttered"}
# The idx files of each official split (images, labels), as Zalando names them.
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# idx type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclasses.dataclass(eq=False)
class FashionConfig(canvas_lib.CanvasConfig):
    """How Fashion-MNIST's canvases are drawn (the defaults are the `cluttered` config's).

    The fields are `builder.CanvasConfig`'s; there is no `test_fraction`: the
    test split is the official test file.
    """

    train_canvases: int = 1  # canvases per training garment
    eval_canvases: int = 1  # canvases per validation / test garment
    seed: int = 2017  # the seed of the validation hold-out and of every canvas


PLAIN = FashionConfig(name="plain", canvas_size=canvas_lib.DIGIT_SIZE, min_clutter=0,
                      max_clutter=0,
                      description="The 28x28 images as they are (no clutter, no translation).")
CLUTTERED = FashionConfig(name="cluttered",
                          description="60x60 canvas, the garment at a random place, 4-8 8x8 "
                          "fragments of other garments off its box.")


def fashion_config(base: str, *, tag: str | None = None, **changes) -> FashionConfig:
    """The config `base` (`plain` or `cluttered`) with `changes` (None values ignored).

    The registered config when nothing changes; else a `FashionConfig` named
    `<base>_<tag>_<changed fields>` (see `builder.config_with`), so every
    variant gets its own cache directory.
    """
    configs = {c.name: c for c in FashionMnistCanvases.BUILDER_CONFIGS}
    if base not in configs:
        raise ValueError(f"Unknown Fashion-MNIST config {base!r}; expected one of "
                         f"{sorted(configs)}.")
    return canvas_lib.config_with(tag=tag, base=configs[base], **changes) or configs[base]


def _open(path: str) -> bytes:
    """The bytes of `path`, gunzipped when it is gzip; errors name the file."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: a corrupt or truncated gzip file ({err}).") from err
    return raw


def read_idx(path: str) -> np.ndarray:
    """An idx file (LeCun's MNIST format; gzip or plain) as a numpy array.

    The format: two zero bytes, a type code (0x08 = unsigned bytes, ...), the
    number of dimensions, each dimension as a big-endian uint32, then the
    values, row-major. Raises ValueError naming `path` and what was expected
    for a short header, a bad magic number or type code, or data whose size
    is not what the header declares (a truncated or padded file).
    """
    raw = _open(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: expected an idx header of at least 4 bytes, got {len(raw)}.")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an idx file (expected magic bytes 00 00, got "
                         f"{raw[0]:02x} {raw[1]:02x}).")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown idx type code 0x{code:02x} (expected one of "
                         f"{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)}).")
    if ndim == 0:
        raise ValueError(f"{path}: expected at least one dimension in the idx header, got 0.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: expected {ndim} dimension sizes after the magic number, "
                         f"but the file has {len(raw)} bytes (header needs {header}).")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        raise ValueError(f"{path}: the header declares shape {shape} of {dtype.name} "
                         f"({expected} bytes of data), but the file holds {found} "
                         f"({'truncated' if found < expected else 'trailing bytes'}).")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: str, name: str) -> str:
    for candidate in (f"{name}.gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise ValueError(f"{directory} has no {name}.gz (or {name}): Fashion-MNIST's idx files "
                     f"{[f + '.gz' for pair in FILES.values() for f in pair]} are expected.")


def read_fashion(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"train": (images uint8 [N, 28, 28], labels [N]), "test": ...}` from the idx files
    in `directory`; ValueError naming the file for a wrong shape, type or label."""
    out = {}
    size = canvas_lib.DIGIT_SIZE
    for split, (image_name, label_name) in FILES.items():
        image_path, label_path = _find(directory, image_name), _find(directory, label_name)
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
            raise ValueError(f"{image_path}: expected uint8 images of shape (N, {size}, {size}), "
                             f"got {images.dtype.name} {images.shape}.")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{label_path}: expected {len(images)} labels (one per image of "
                             f"{os.path.basename(image_path)}), got shape {labels.shape}.")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
            raise ValueError(f"{label_path}: labels must be 0..{len(CLASS_NAMES) - 1}, got "
                             f"{labels.min()}..{labels.max()}.")
        out[split] = (images, labels.astype(np.int64))
    return out


def source_digest(directory: str) -> str:
    """One SHA-256 over the four files' digests (what the metadata records)."""
    parts = [common_acquire.sha256(_find(directory, name))
             for pair in FILES.values() for name in pair]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


class FashionMnistCanvases(canvas_lib.CanvasBuilder):
    """Fashion-MNIST as it is (`plain`) or on cluttered canvases (`cluttered`), with boxes.

    Builder kwargs: `source_dir` (optional) reads the four idx files from that
    directory instead of Debian's package; the tests use it with tiny fixtures.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1), "
        "validation = 10% of each class of the official train file, official test file."
    }
    BUILDER_CONFIGS = [PLAIN, CLUTTERED]
    DEFAULT_CONFIG_NAME = "plain"
    CLASS_NAMES = CLASS_NAMES
    DESCRIPTION = (
        "Fashion-MNIST (Zalando article images, 28x28, 10 classes), as it is or at a random "
        "place on a larger canvas among fragments cut from other garments of the same split; "
        "the garment's ink box is stored with each example."
    )
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    CITATION = (
        "@article{xiao2017fashion, title={Fashion-MNIST: a Novel Image Dataset for "
        "Benchmarking Machine Learning Algorithms}, author={Xiao, Han and Rasul, Kashif and "
        "Vollgraf, Roland}, journal={arXiv:1708.07747}, year={2017}}"
    )

    def __init__(self, *, source_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._source_dir = source_dir  # Read only when the splits are generated.

    def _split_generators(self, dl_manager):
        config = self.builder_config
        canvas_lib.check_config(config)
        if self._source_dir:
            directory, origin = self._source_dir, f"user directory {self._source_dir}"
        else:
            directory, origin = acquire.fashion_mnist_dir(os.fspath(dl_manager.download_dir))
        official = read_fashion(directory)
        (train_images, train_labels), (test_images, test_labels) = (official["train"],
                                                                    official["test"])
        images = np.concatenate([train_images, test_images])
        labels = np.concatenate([train_labels, test_labels])
        boxes = np.array([canvas_lib.ink_box(image) for image in images], np.int64)
        sources = canvas_lib.split_sources(train_labels, config)
        sources["test"] = np.arange(len(train_labels), len(labels), dtype=np.int64)
        classes = len(CLASS_NAMES)
        return self._canvas_splits(
            (images, labels, boxes), sources,
            source=origin,
            source_sha256=source_digest(directory),
            source_counts={k: int(len(v[1])) for k, v in official.items()},
            garments_per_split={k: int(len(v)) for k, v in sources.items()},
            class_names=list(CLASS_NAMES),
            # Garments (not canvases: times `canvases_per_digit`) of each class per split.
            garments_per_class={
                split: np.bincount(labels[indices], minlength=classes).tolist()
                for split, indices in sources.items()
            },
        )
