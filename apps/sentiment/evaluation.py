"""Scores and pictures of a trained sentiment model on a split.

- `evaluate`: accuracy, and how often the truth / the model says positive.
- `pick_examples`: a dozen readable test sentences for the pictures.
- `attention_pictures`: runs the explainer on them and writes, under the run
  directory, `attention.html` and `attention.png`: a row per sentence with the
  true and the predicted label, the probability of "positive", then the words,
  each on a background whose darkness is its attention weight divided by the
  largest weight in that sentence (`attention_html`, `attention_png`).
"""

from __future__ import annotations

import html
import os

import keras
import numpy as np
import tensorflow as tf

from apps.common import text as common_text
from apps.sentiment import lexicon, pipeline
from apps.sentiment.builder import LABELS


def evaluate(model: keras.Model, split: pipeline.Split, tokenizer: common_text.Tokenizer,
             batch_size: int, prior_weights=()) -> dict:
    """Accuracy, and how often the truth / the model says positive (to see a skew).

    `model` is the classifier (probabilities) or the explainer (a dict of outputs).
    With `prior_weights`, also `accuracy_by_prior_weight`: the accuracy had the lexicon's
    prior weighed w' instead of w at inference, for each w' (the network's own margin is
    the output's log-odds minus w * atanh(score); see `reweighed_margin`). The score is
    the explainer's `lexicon_score` (a model with the lexicon prior, served at weight w)
    or, for a model without one (bert), the `vaderSentiment` package's compound (w = 0):
    a product of experts measured outside the graph.
    """
    if len(split) == 0:
        return {"accuracy": float("nan"), "examples": 0}
    ds = pipeline.make_dataset(split, tokenizer, batch_size).map(lambda ids, _: ids)
    out = model.predict(ds, verbose=0)
    probabilities = out["probabilities"] if isinstance(out, dict) else out
    predicted = np.argmax(probabilities, axis=-1)
    scores = {
        "accuracy": float(np.mean(predicted == split.labels)),
        "examples": len(split),
        "positive_share": float(np.mean(split.labels == 1)),
        "predicted_positive_share": float(np.mean(predicted == 1)),
    }
    if prior_weights:
        if isinstance(out, dict) and "lexicon_score" in out:
            score, weight = out["lexicon_score"], _prior_weight(model)
        else:  # no prior in the model (bert): the package's compound score, weighed 0 now
            score, weight = vader_compound(split.texts), 0.0
        scores["accuracy_by_prior_weight"] = {
            f"{w:g}": float(np.mean((reweighed_margin(probabilities, score, weight, w) > 0)
                                    == split.labels))
            for w in prior_weights}
    return scores


def _prior_weight(model: keras.Model) -> float:
    """The weight of `model`'s `lexicon.PriorSoftmax` layer at inference."""
    for layer in model.layers:
        if isinstance(layer, lexicon.PriorSoftmax):
            return layer.served_weight
    raise ValueError(f"{model.name} has no lexicon prior layer (lexicon.PriorSoftmax).")


def reweighed_margin(probabilities, score, weight: float, new_weight: float) -> np.ndarray:
    """The positive class's log-odds had `lexicon.PriorSoftmax` weighed the lexicon's
    `score` by `new_weight` instead of `weight`: the output's log-odds, less
    `weight * atanh(score)`, plus `new_weight * atanh(score)` (probabilities kept off 0
    and 1, so a saturated output stays on its side)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    atanh = np.arctanh(np.clip(np.asarray(score, np.float64).reshape(-1),
                               -lexicon.MAX_SCORE, lexicon.MAX_SCORE))
    return np.log(p[:, 1]) - np.log(p[:, 0]) + (new_weight - weight) * atanh


def lexicon_baseline(split: pipeline.Split) -> dict:
    """The VADER lexicon (Hutto & Gilbert 2014; the `vaderSentiment` package itself) on `split`.

    Rule-based, no training: a text is positive when VADER's compound score is
    above 0. The strongest simple alternative a user would pick instead of a
    trained model, so every sentiment table carries it as a row.
    """
    predicted = (vader_compound(split.texts) > 0).astype(np.int32)
    return {"accuracy": float(np.mean(predicted == split.labels)) if len(split) else float("nan"),
            "examples": len(split)}


def vader_compound(texts) -> np.ndarray:
    """The `vaderSentiment` package's compound score (-1..1) of each text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(
        t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t))["compound"]
        for t in texts], np.float64)


def pick_examples(split: pipeline.Split, tokenizer: common_text.Tokenizer,
                  n: int) -> pipeline.Split:
    """The first `n` sentences of 6..30 tokens (readable pictures), else any."""
    if n <= 0 or len(split) == 0:
        return split.head(0)
    _, ids = tokenizer.tokenize(tf.constant(list(split.texts), tf.string))
    lengths = np.sum(ids.numpy().reshape(len(split), -1) > 0, axis=1)  # han: [n, S, W]
    chosen = [i for i, k in enumerate(lengths) if 6 <= k <= 30][:n]
    if len(chosen) < n:
        chosen += [i for i in range(len(split)) if i not in chosen][: n - len(chosen)]
    return split.take(chosen)


def attention_pictures(explainer: keras.Model, examples: pipeline.Split,
                       tokenizer: common_text.Tokenizer, run_dir: str, title: str) -> dict:
    """Writes `attention.html` and `attention.png` of `examples` under `run_dir`;
    returns `{"attention_html": path, "attention_png": path}` (empty without examples)."""
    if len(examples) == 0:
        return {}
    tokens, ids = tokenizer.tokenize(tf.constant(list(examples.texts), tf.string))
    # A direct call, not `predict`: under MultiWorkerMirroredStrategy `predict`
    # gathers across workers, and only the chief is here.
    out = keras.tree.map_structure(np.asarray, explainer(ids, training=False))
    n = len(examples)  # han's [n, S, W] tokens and weights are drawn as one row of words
    args = (tokens.numpy().reshape(n, -1), out["attention_weights"].reshape(n, -1),
            examples.labels, out["probabilities"])
    return {
        "attention_html": attention_html(os.path.join(run_dir, "attention.html"), *args,
                                         title=title),
        "attention_png": attention_png(os.path.join(run_dir, "attention.png"), *args,
                                       title=title),
    }



def _rows(tokens, weights, labels, probabilities, label_names):
    out = []
    for toks, w, y, p in zip(tokens, weights, labels, probabilities, strict=True):
        toks = [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in toks]
        keep = [i for i, t in enumerate(toks) if t]
        words = [toks[i] for i in keep]
        w = np.asarray(w, dtype=np.float64)[keep]
        scale = w / w.max() if len(w) and w.max() > 0 else np.zeros_like(w)
        predicted = int(np.argmax(p))
        out.append(
            {
                "words": words,
                "weights": w,
                "shade": scale,
                "true": label_names[int(y)],
                "predicted": label_names[predicted],
                "p_positive": float(p[1]),
            }
        )
    return out


def attention_html(path, tokens, weights, labels, probabilities,
                   label_names=LABELS, title="Word attention") -> str:
    """Writes an HTML page of shaded words; returns `path`."""
    rows = _rows(tokens, weights, labels, probabilities, label_names)
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "div.s{margin:0.8em 0;line-height:1.9}span.w{padding:0.15em 0.2em;border-radius:3px}"
        "span.m{font-size:80%;color:#555;margin-right:0.6em}"
        "span.bad{color:#b00}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Each word's background is its attention weight relative to the sentence's "
        "largest (hover for the weight). true / predicted (P(positive)).</p>",
    ]
    for row in rows:
        ok = row["true"] == row["predicted"]
        meta = (
            f'<span class="m{"" if ok else " bad"}">{row["true"]} / {row["predicted"]} '
            f'({row["p_positive"]:.2f})</span>'
        )
        words = "".join(
            f'<span class="w" title="{w:.3f}" style="background:rgba(220,60,30,{s:.3f})">'
            f"{html.escape(word)}</span> "
            for word, w, s in zip(row["words"], row["weights"], row["shade"], strict=True)
        )
        lines.append(f'<div class="s">{meta}{words}</div>')
    lines.append("</body></html>")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def attention_png(path, tokens, weights, labels, probabilities,
                  label_names=LABELS, title="Word attention",
                  width_in: float = 12.0, dpi: int = 100) -> str:
    """Writes a PNG of shaded words with matplotlib (Agg); returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    rows = _rows(tokens, weights, labels, probabilities, label_names)
    font = FontProperties(size=11)
    meta_font = FontProperties(size=9)
    renderer = RendererAgg(10, 10, dpi)
    px = dpi / 72.0  # points to pixels

    def width(text, prop):
        w, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)
        return w

    width_px = width_in * dpi
    margin, gap, line_h, meta_w = 10.0, 5.0 * px, 20.0 * px, 175.0 * px
    # Lay every word out in pixels first, so the figure gets the height it needs.
    placed, y = [], 30.0 * px
    for row in rows:
        placed.append(("meta", row, margin, y))
        x = margin + meta_w
        for word, shade in zip(row["words"], row["shade"], strict=True):
            w = width(word, font) + 4 * px
            if x + w > width_px - margin and x > margin + meta_w:
                x, y = margin + meta_w, y + line_h
            placed.append(("word", (word, shade), x, y))
            x += w + gap
        y += line_h * 1.5
    height_px = y + margin
    fig = plt.figure(figsize=(width_in, height_px / dpi), dpi=dpi)
    cmap = plt.get_cmap("Reds")
    fig.text(margin / width_px, 1 - (12 * px) / height_px, title, fontsize=12,
             weight="bold", va="center")
    for kind, item, x, y in placed:
        fy = 1 - y / height_px
        if kind == "meta":
            ok = item["true"] == item["predicted"]
            fig.text(x / width_px, fy, f"{item['true']} / {item['predicted']} "
                     f"({item['p_positive']:.2f})", fontproperties=meta_font, va="center",
                     color="black" if ok else "#b00000")
        else:
            word, shade = item
            fig.text(x / width_px, fy, word, fontproperties=font, va="center",
                     bbox={"facecolor": cmap(0.75 * float(shade)), "edgecolor": "none",
                           "boxstyle": "round,pad=0.15"},
                     color="white" if shade > 0.8 else "black")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
