"""Scoring captions: BLEU-1..4 (sacrebleu), attention correctness, and the attention figures.

`caption_split` captions every image of a split with the exported graph
(`export.CaptionerModule.caption_images`: beam search and detokenizing, as
served); `score` turns that into numbers and `evaluate` does both.

**BLEU** is sacrebleu's corpus BLEU (13a tokenization) of the decoded captions
against *all* reference captions of each image (a variable number per image),
with `max_ngram_order` n = 1..4, reported in [0, 1].

**Attention correctness** (after Liu et al. 2017, "Attention Correctness in
Neural Image Captioning"): whenever the decoder emits the words of an object
that is in the image ("dog", "red apple"), take the attention map of that step
and measure the share of its mass inside the object's true box
(`apps.common.boxes.mass_in_box`); a uniform map would put the box's share of
the image's area inside (`uniform_in_box`). We report the mean of both over all
emitted object words and their ratio ("how many times chance").
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from apps.captioning import pipeline
from apps.common import boxes as common_boxes
from apps.common import text as common_text
from keras_attention import plot


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 in [0, 1] of `hypotheses` against each one's list of references."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists.")
    if not hypotheses:
        return {f"bleu{n}": float("nan") for n in range(1, 5)}
    most = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(most)]
    return {
        f"bleu{n}": BLEU(max_ngram_order=n).corpus_score(list(hypotheses), streams).score / 100.0
        for n in range(1, 5)
    }


def object_positions(words: list[str], name: str) -> list[int]:
    """Positions in `words` of every occurrence of the (multi-word) object `name`."""
    parts = name.split()
    k = len(parts)
    out = []
    for i in range(len(words) - k + 1):
        if words[i : i + k] == parts:
            out.extend(range(i, i + k))
    return out


def attention_correctness(words_list, maps_list, boxes_list, names_list) -> dict:
    """Share of attention inside the true box when an object's words are emitted.

    Args:
        words_list: per image, the emitted words (END and after removed).
        maps_list: per image, attention maps `(T, h, w)` aligned with the words.
        boxes_list: per image, `(n, 4)` normalised boxes of its objects.
        names_list: per image, the `n` object names (as in captions).

    Returns:
        dict with `attention_in_box` (mean share), `uniform_in_box` (mean share
        of a uniform map), `ratio` (their quotient), `words_scored`,
        `objects_named` (share of the images' objects whose name was emitted)
        and `step_before_in_box`: the same share for the step *before* the
        object's name (the article), which shows a decoder that looks ahead.
    """
    inside, uniform, before = [], [], []
    named = total = 0
    for words, maps, boxes, names in zip(words_list, maps_list, boxes_list, names_list,
                                         strict=True):
        maps = np.asarray(maps)
        for name, box in zip(names, np.asarray(boxes).reshape(-1, 4), strict=True):
            total += 1
            positions = [p for p in object_positions(words, name) if p < len(maps)]
            if not positions:
                continue
            named += 1
            step_maps = maps[positions]
            step_boxes = np.repeat(box[None], len(positions), axis=0)
            inside.extend(common_boxes.mass_in_box(step_maps, step_boxes))
            uniform.extend(common_boxes.uniform_in_box(step_boxes))
            if positions[0] > 0:
                before.extend(common_boxes.mass_in_box(maps[positions[0] - 1][None], box[None]))
    mean_in = float(np.mean(inside)) if inside else float("nan")
    mean_uniform = float(np.mean(uniform)) if uniform else float("nan")
    return {
        "attention_in_box": mean_in,
        "uniform_in_box": mean_uniform,
        "ratio": mean_in / mean_uniform if uniform and mean_uniform > 0 else float("nan"),
        "words_scored": len(inside),
        "objects_named": named / total if total else float("nan"),
        "step_before_in_box": float(np.mean(before)) if before else float("nan"),
    }


def caption_words(tokens_row) -> list[str]:
    """Decoded token strings (bytes or str) up to END, without START / padding."""
    out = []
    for token in tokens_row:
        token = token.decode("utf-8") if isinstance(token, bytes) else str(token)
        if token == common_text.END:
            break
        if token in ("", common_text.PAD, common_text.START):
            continue
        out.append(token)
    return out


def plot_captions(images, words_list, maps_list, directory: str, references=None,
                  prefix: str = "caption") -> list[str]:
    """One PNG per image: the image, then the attention map of every emitted word."""
    paths = []
    for i, (image, words, maps) in enumerate(zip(images, words_list, maps_list, strict=True)):
        if not words:
            continue
        title = " ".join(words)
        if references:
            title += f"\n(reference: {references[i][0]})"
        path = os.path.join(directory, f"{prefix}_{i:02d}.png")
        paths.append(plot.attention_grid(image, np.asarray(maps)[: len(words)], words, path,
                                         title=title, columns=6))
    return paths


def caption_split(caption, ds, image_size: int, batch_size: int, limit: int | None = None,
                  keep: int = 0) -> dict:
    """Captions every image of `ds` (a `pipeline.Splits` split) with `caption`.

    Args:
        caption: images `(b, S, S, 3)` -> {caption, tokens, attention_weights}, as
            the export's `caption_images`.
        limit: the first `limit` images only (all when None).
        keep: how many of the images to keep for plots.

    Returns:
        lists, one entry per image: `hypotheses`, `references`, `words` (emitted),
        `maps` (one per word), `boxes`, `names` (of the objects), `images` (the
        first `keep`); and `seconds` spent in `caption`.
    """
    out = {"hypotheses": [], "references": [], "words": [], "maps": [], "boxes": [],
           "names": [], "images": []}
    seconds = 0.0
    for images, references, boxes, names in pipeline.evaluation_batches(
        ds, image_size, batch_size, limit
    ):
        start = time.perf_counter()
        result = caption(tf.constant(images))
        seconds += time.perf_counter() - start
        tokens = result["tokens"].numpy()
        text = result["caption"].numpy()
        maps = result["attention_weights"].numpy()
        for i in range(len(images)):
            words = caption_words(tokens[i])
            out["hypotheses"].append(text[i].decode("utf-8"))
            out["references"].append(references[i])
            out["words"].append(words)
            out["maps"].append(maps[i, : len(words)])
            out["boxes"].append(boxes[i])
            out["names"].append(names[i])
            if len(out["images"]) < keep:
                out["images"].append(images[i])
    out["seconds"] = seconds
    return out


def score(captioned: dict) -> dict:
    """BLEU-1..4, exact match, attention correctness and the image count of `caption_split`."""
    metrics = bleu(captioned["hypotheses"], captioned["references"])
    metrics["exact_match"] = float(np.mean(
        [h in refs for h, refs in zip(captioned["hypotheses"], captioned["references"],
                                      strict=True)]
    )) if captioned["hypotheses"] else float("nan")
    metrics["attention_correctness"] = attention_correctness(
        captioned["words"], captioned["maps"], captioned["boxes"], captioned["names"]
    )
    metrics["images"] = len(captioned["hypotheses"])
    return metrics


def evaluate(caption, ds, image_size: int, batch_size: int, limit: int | None = None) -> dict:
    """The scores (`score`) of the captions `caption` gives the images of `ds`."""
    return score(caption_split(caption, ds, image_size, batch_size, limit))
