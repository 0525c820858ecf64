"""The `emoji_scenes` tfds builder: objects, captions, splits by combination, features.

`emoji_scenes` composes scenes of two or three real emoji (Noto Color Emoji,
Apache-2.0, drawn by Google's designers) from a fixed set of 40 recognisable
objects, at random sizes and non-overlapping positions on a canvas with a
random background (a colour, a gradient, stripes, checks or noise; the drawing
is in `scenes.py`). Each scene is laid out along one axis (a row or a column)
and described by two or three generated captions that name the objects (from
their Unicode names, `unicodedata.name`, shortened to a word or two:
"DOG FACE" -> "dog") and their spatial relations:

    two objects, a row:     "the dog to the left of the red apple"
                            "the red apple to the right of the dog"
                            "the dog on the left and the red apple on the right"
    two objects, a column:  "the dog above the cat", "the cat below the dog",
                            "the dog at the top and the cat at the bottom"
    three objects:          "the dog, the cat and the grapes from left to right"
                            "the grapes, the cat and the dog from right to left"

Every object gets the article "the": with "a" / "an" / "some" the article
would already name the object (a model then looks at the object while emitting
the article and elsewhere while emitting its name), and the object's name is
the word whose attention we score.

The box of every object (its visible pixels) is stored, so the attention of a
captioning model can be scored against the truth.

**Splits by combination.** The 780 unordered pairs of objects are split (seeded)
into training, validation and test pairs: a training scene only holds training
pairs, and every validation / test scene holds at least one pair of its own
split (two-object scenes are exactly such a pair). So the test split measures
captions of object combinations never seen together in training; every object
itself is seen in training.

**The font** comes from `acquire.ensure_font` (Debian's `fonts-noto-color-emoji`,
installed with apt-get when missing and running as root; or `font_path=` /
`$NOTO_COLOR_EMOJI_FONT`). Its SHA-256 and the package version are recorded in
the dataset's metadata. Every scene is drawn from its own seed
`(config.seed, split, index)`: the same data on every machine with the same font.
"""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata

import numpy as np
import tensorflow_datasets as tfds

from apps.captioning import acquire
from apps.captioning.scenes import LAYOUTS, compose_scene, render_emoji

# The objects: one emoji each. Names come from `unicodedata.name`, shortened by
# `short_name` (the overrides below, else lower case without " face").
OBJECTS = (
    "🐶", "🐱", "🐰", "🐻", "🐸", "🐵", "🐷", "🐔", "🐧", "🐢",
    "🐟", "🦋", "🐘", "🐙", "🍎", "🍏", "🍌", "🍇", "🍋", "🍉",
    "🍒", "🥕", "🍄", "🍕", "🍩", "🎂", "🚗", "🚌", "🚲", "🚀",
    "⛵", "🏠", "⚽", "🔑", "⏰", "☔", "⭐", "🌙", "🌻", "🌲",
)
_SHORT_NAMES = {
    "SLICE OF PIZZA": "pizza",
    "BIRTHDAY CAKE": "cake",
    "AUTOMOBILE": "car",
    "HOUSE BUILDING": "house",
    "SOCCER BALL": "ball",
    "ALARM CLOCK": "clock",
    "UMBRELLA WITH RAIN DROPS": "umbrella",
    "WHITE MEDIUM STAR": "star",
    "CRESCENT MOON": "moon",
    "EVERGREEN TREE": "tree",
    "SAILBOAT": "boat",
}
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


def short_name(char: str) -> str:
    """The caption name of an emoji: `unicodedata.name`, shortened ("DOG FACE" -> "dog")."""
    name = unicodedata.name(char)
    if name in _SHORT_NAMES:
        return _SHORT_NAMES[name]
    name = name.lower()
    return name[: -len(" face")] if name.endswith(" face") else name


def noun_phrase(name: str) -> str:
    """`name` with its article, the same for every object: "the dog", "the grapes"."""
    return f"the {name}"


def captions_for(names: list[str], layout: str) -> list[str]:
    """The captions of objects `names` in order along `layout` (left->right, top->bottom).

    Three phrasings for two objects, two (both directions) for three.
    """
    p = [noun_phrase(n) for n in names]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    row = layout == "row"
    if len(p) == 2:
        if row:
            return [f"{p[0]} to the left of {p[1]}", f"{p[1]} to the right of {p[0]}",
                    f"{p[0]} on the left and {p[1]} on the right"]
        return [f"{p[0]} above {p[1]}", f"{p[1]} below {p[0]}",
                f"{p[0]} at the top and {p[1]} at the bottom"]
    if len(p) == 3:
        first, last = ("left", "right") if row else ("top", "bottom")
        return [f"{p[0]}, {p[1]} and {p[2]} from {first} to {last}",
                f"{p[2]}, {p[1]} and {p[0]} from {last} to {first}"]
    raise ValueError(f"Scenes have 2 or 3 objects, got {len(p)}.")


@dataclasses.dataclass(eq=False)
class EmojiScenesConfig(tfds.core.BuilderConfig):
    """How the scenes are drawn.

    Attributes:
        canvas_size: side of the square image in pixels.
        train_scenes, validation_scenes, test_scenes: scenes per split.
        three_fraction: share of scenes with three objects (the rest have two).
        two_sizes, three_sizes: (min, max) longest side of an object in pixels, in
            two- and three-object scenes.
        validation_pairs, test_pairs: share of the object pairs held out for
            validation / test.
        num_objects: the first `num_objects` of `OBJECTS` are used (tests use few).
        seed: the seed of the pair split and of every scene.
    """

    canvas_size: int = 96
    train_scenes: int = 16000
    validation_scenes: int = 500
    test_scenes: int = 1000
    three_fraction: float = 0.35
    two_sizes: tuple = (26, 40)
    three_sizes: tuple = (22, 30)
    validation_pairs: float = 0.05
    test_pairs: float = 0.2
    num_objects: int = len(OBJECTS)
    seed: int = 2015


def _check_config(config: EmojiScenesConfig) -> None:
    if not 3 <= config.num_objects <= len(OBJECTS):
        raise ValueError(f"num_objects must be in [3, {len(OBJECTS)}], got {config.num_objects}.")
    for name in ("two_sizes", "three_sizes"):
        low, high = getattr(config, name)
        if not 8 <= low <= high:
            raise ValueError(f"{name} must be (min, max) with 8 <= min <= max, got {(low, high)}.")
    if config.canvas_size < 3 * config.three_sizes[1] + 6 or (
        config.canvas_size < 2 * config.two_sizes[1] + 3
    ):
        raise ValueError(
            f"canvas_size={config.canvas_size} is too small for three objects of "
            f"{config.three_sizes[1]} px or two of {config.two_sizes[1]} px in a row."
        )
    if not 0 <= config.three_fraction <= 1:
        raise ValueError(f"three_fraction must be in [0, 1], got {config.three_fraction}.")
    held_out = config.validation_pairs + config.test_pairs
    if config.validation_pairs <= 0 or config.test_pairs <= 0 or held_out >= 0.6:
        raise ValueError(
            "validation_pairs and test_pairs must be > 0 with a sum below 0.6, got "
            f"{config.validation_pairs} and {config.test_pairs}."
        )
    for split in ("train", "validation", "test"):
        if getattr(config, f"{split}_scenes") < 1:
            raise ValueError(f"{split}_scenes must be >= 1.")


def split_pairs(num_objects: int, config: EmojiScenesConfig) -> dict[str, list[tuple[int, int]]]:
    """The unordered object pairs of each split (seeded); every object keeps training pairs."""
    pairs = list(itertools.combinations(range(num_objects), 2))
    rng = np.random.default_rng([config.seed, 7])
    order = rng.permutation(len(pairs))
    n_test = max(1, int(round(len(pairs) * config.test_pairs)))
    n_val = max(1, int(round(len(pairs) * config.validation_pairs)))
    out = {
        "test": [pairs[i] for i in order[:n_test]],
        "validation": [pairs[i] for i in order[n_test : n_test + n_val]],
        "train": [pairs[i] for i in order[n_test + n_val :]],
    }
    # Give back to training any pair whose objects would otherwise never be seen in training.
    for split in ("test", "validation"):
        for pair in list(out[split]):
            seen = {o for p in out["train"] for o in p}
            if not set(pair) <= seen:
                out[split].remove(pair)
                out["train"].append(pair)
    return {k: sorted(v) for k, v in out.items()}


def choose_objects(rng: np.random.Generator, split: str, pairs: dict, three: bool) -> list[int]:
    """Object ids of one scene: a pair of `split` plus, for three, a third one that only
    forms training pairs or pairs of `split` with them."""
    own = pairs[split]
    allowed = set(pairs["train"]) | set(own)
    if not three:
        return list(own[rng.integers(len(own))])
    for _ in range(100):
        a, b = own[rng.integers(len(own))]
        objects = {o for p in allowed for o in p}
        candidates = [c for c in sorted(objects - {a, b})
                      if tuple(sorted((a, c))) in allowed and tuple(sorted((b, c))) in allowed]
        if candidates:
            return [a, b, candidates[rng.integers(len(candidates))]]
    return list(own[rng.integers(len(own))])  # No third object fits: a two-object scene.



class EmojiScenes(tfds.core.GeneratorBasedBuilder):
    """Scenes of 2-3 real emoji with generated captions and every object's box.

    Builder kwargs: `font_path` (optional) is the NotoColorEmoji.ttf to draw with.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: 40 Noto Color Emoji objects, 96x96 scenes of 2 (65%) or 3 "
        "objects in a row or a column, 3 (two objects) or 2 captions each; object pairs split "
        "75/5/20 between train/validation/test; 16,000 / 500 / 1,000 scenes.",
    }
    BUILDER_CONFIGS = [
        EmojiScenesConfig(
            name="default",
            description="96x96 scenes, 2-3 of 40 objects, test on unseen object pairs.",
        ),
    ]

    def __init__(self, *, font_path: str | None = None, **kwargs):
        self._font_path = font_path
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        names = [short_name(c) for c in OBJECTS[: config.num_objects]]
        size = config.canvas_size
        return self.dataset_info_from_configs(
            description=(
                "Scenes of two or three real emoji (Noto Color Emoji) at random places, sizes "
                "and backgrounds, with 2-3 generated captions naming the objects and their "
                "spatial relations, and the box of every object. The test split holds object "
                "pairs never seen together in training."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                "captions": tfds.features.Sequence(tfds.features.Text()),
                "objects": tfds.features.Sequence({
                    "label": tfds.features.ClassLabel(names=names),
                    "bbox": tfds.features.BBoxFeature(),
                }),
                "layout": tfds.features.ClassLabel(names=list(LAYOUTS)),
                "scene_id": np.int64,
            }),
            homepage="https://github.com/googlefonts/noto-emoji",
            citation=(
                "@inproceedings{xu2015show, title={Show, Attend and Tell: Neural Image Caption "
                "Generation with Visual Attention}, author={Xu, Kelvin and Ba, Jimmy and Kiros, "
                "Ryan and Cho, Kyunghyun and Courville, Aaron and Salakhutdinov, Ruslan and "
                "Zemel, Richard and Bengio, Yoshua}, booktitle={ICML}, year={2015}}"
            ),
            metadata=tfds.core.MetadataDict(),
            license="Apache-2.0 (Noto Color Emoji)",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the font comes from a Debian package.
        config = self.builder_config
        _check_config(config)
        font, how = acquire.ensure_font(self._font_path)
        chars = OBJECTS[: config.num_objects]
        tiles = render_emoji(chars, font)
        pairs = split_pairs(len(chars), config)
        self.info.metadata.update({
            "font_path": font,
            "font_found_by": how,
            "font_sha256": acquire.sha256(font),
            "font_package": acquire.FONT_PACKAGE,
            "font_package_version": acquire.font_package_version(),
            "objects": [{"emoji": c, "unicode_name": unicodedata.name(c),
                         "codepoint": f"U+{ord(c):04X}", "caption_name": short_name(c)}
                        for c in chars],
            "pairs_per_split": {k: len(v) for k, v in pairs.items()},
            "test_pairs": [[short_name(chars[a]), short_name(chars[b])]
                           for a, b in pairs["test"]],
            "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                       if f.name not in ("release_notes", "supported_versions", "tags")},
        })
        return {
            split: self._generate_examples(split, tiles, chars, pairs)
            for split in ("train", "validation", "test")
        }

    def _generate_examples(self, split, tiles, chars, pairs):
        config = self.builder_config
        count = getattr(config, f"{split}_scenes")
        for index in range(count):
            rng = np.random.default_rng([config.seed, _SPLIT_CODES[split], index])
            three = bool(rng.random() < config.three_fraction)
            objects = choose_objects(rng, split, pairs, three)
            objects = [objects[i] for i in rng.permutation(len(objects))]
            image, layout, boxes = compose_scene(tiles, objects, rng, config)
            names = [short_name(chars[o]) for o in objects]
            yield index, {
                "image": image,
                "captions": captions_for(names, layout),
                "objects": {
                    "label": objects,
                    "bbox": [tfds.features.BBox(*(float(v) for v in box)) for box in boxes],
                },
                "layout": layout,
                "scene_id": index,
            }
