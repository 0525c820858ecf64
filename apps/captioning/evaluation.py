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

**Attribute attention** (the `semantic_attention` variant, `semantic.py`): at
every step that emits an attribute word, the share of the step's attribute
attention (input and output) on that same word among the top-k attributes (0
when the word is not among them), its mean and the share of steps with at
least 0.5 (`attribute_attention`); and how many of an image's object words
the top-k attributes hold (`attribute_recall`).
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
        first `keep`); and `seconds` spent in `caption`. When `caption` returns
        attributes (semantic attention): also `attributes` (the top-k words),
        `attribute_scores`, `input_attention` and `output_attention` (`(words, k)`).
    """
    out = {"hypotheses": [], "references": [], "words": [], "maps": [], "boxes": [],
           "names": [], "images": []}
    extra = {"attribute_scores": "attribute_scores", "input_attention": "input_attribute_attention",
             "output_attention": "output_attribute_attention"}
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
        semantic = "attributes" in result
        if semantic:
            attributes = result["attributes"].numpy()
            values = {key: result[name].numpy() for key, name in extra.items()}
        for i in range(len(images)):
            words = caption_words(tokens[i])
            out["hypotheses"].append(text[i].decode("utf-8"))
            out["references"].append(references[i])
            out["words"].append(words)
            out["maps"].append(maps[i, : len(words)])
            out["boxes"].append(boxes[i])
            out["names"].append(names[i])
            if semantic:
                out.setdefault("attributes", []).append([a.decode("utf-8") for a in attributes[i]])
                out.setdefault("attribute_scores", []).append(values["attribute_scores"][i])
                for key in ("input_attention", "output_attention"):
                    out.setdefault(key, []).append(values[key][i, : len(words)])
            if len(out["images"]) < keep:
                out["images"].append(images[i])
    out["seconds"] = seconds
    return out


def attribute_attention(words_list, attributes_list, weights_list, scored_words) -> dict:
    """How much attribute attention the step that emits an attribute word puts on that word.

    Args:
        words_list: per image, the emitted words.
        attributes_list: per image, its top-k attribute words.
        weights_list: per image, attention over those attributes `(T, k)`, one
            row per emitted word.
        scored_words: the words whose steps are scored (e.g. the attributes
            that are nouns).

    Returns:
        dict with `mean_mass` (the weight on the emitted word's attribute, 0 when
        it is not in the top-k), `share_at_least_half` (steps with mass >= 0.5),
        `in_top_k` (steps whose word is among the attributes) and `steps`.
    """
    scored_words = set(scored_words)
    masses, present = [], []
    for words, attributes, weights in zip(words_list, attributes_list, weights_list,
                                          strict=True):
        weights = np.asarray(weights)
        for t, word in enumerate(words[: len(weights)]):
            if word not in scored_words:
                continue
            hits = [j for j, a in enumerate(attributes) if a == word]
            masses.append(float(weights[t, hits].sum()) if hits else 0.0)
            present.append(bool(hits))
    if not masses:
        return {"mean_mass": float("nan"), "share_at_least_half": float("nan"),
                "in_top_k": float("nan"), "steps": 0}
    masses = np.asarray(masses)
    return {"mean_mass": float(masses.mean()), "share_at_least_half": float(np.mean(masses >= 0.5)),
            "in_top_k": float(np.mean(present)), "steps": int(len(masses))}


def attribute_recall(attributes_list, names_list, attribute_words) -> float:
    """Share of the images' object words (attribute words of their object names) that are
    among their top-k predicted attributes."""
    vocabulary = set(attribute_words)
    found = total = 0
    for attributes, names in zip(attributes_list, names_list, strict=True):
        wanted = {w for name in names for w in name.split() if w in vocabulary}
        total += len(wanted)
        found += len(wanted & set(attributes))
    return found / total if total else float("nan")


def score(captioned: dict, attribute_words=None) -> dict:
    """BLEU-1..4, exact match, attention correctness and the image count of `caption_split`.

    With attributes in `captioned` and their `attribute_words`, also
    `attribute_attention` (input and output, at the steps that emit a noun: the
    last word of an object name, e.g. "apple" of "red apple"; and at every
    attribute word) and `attribute_recall`.
    """
    metrics = bleu(captioned["hypotheses"], captioned["references"])
    metrics["exact_match"] = float(np.mean(
        [h in refs for h, refs in zip(captioned["hypotheses"], captioned["references"],
                                      strict=True)]
    )) if captioned["hypotheses"] else float("nan")
    metrics["attention_correctness"] = attention_correctness(
        captioned["words"], captioned["maps"], captioned["boxes"], captioned["names"]
    )
    metrics["images"] = len(captioned["hypotheses"])
    if "attributes" in captioned and attribute_words is not None:
        nouns = {name.split()[-1] for names in captioned["names"] for name in names}
        nouns &= set(attribute_words)
        metrics["attribute_attention"] = {
            f"{which}_{kind}": attribute_attention(captioned["words"], captioned["attributes"],
                                                   captioned[f"{which}_attention"], scored)
            for which in ("output", "input")
            for kind, scored in (("nouns", nouns), ("all", attribute_words))
        }
        metrics["attribute_recall"] = attribute_recall(captioned["attributes"],
                                                       captioned["names"], attribute_words)
    return metrics


def evaluate(caption, ds, image_size: int, batch_size: int, limit: int | None = None,
             attribute_words=None) -> dict:
    """The scores (`score`) of the captions `caption` gives the images of `ds`."""
    return score(caption_split(caption, ds, image_size, batch_size, limit),
                 attribute_words=attribute_words)
