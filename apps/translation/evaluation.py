"""Translation quality: sacreBLEU BLEU and chrF, BLEU by source length, alignment pictures.

BLEU and chrF come from the `sacrebleu` package with its default (13a)
tokenization, on detokenized output against the raw references. The models
see lower-cased text (`apps.common.text` lower-cases), so the scores are
case-insensitive (`lowercase=True`, `case:lc` in the signature).
"""

from __future__ import annotations

import os
import re

import numpy as np
import sacrebleu
import tensorflow as tf

from apps.translation import export as translation_export
from apps.translation import long_corpus
from apps.translation import text as translation_text
from keras_attention import plot

THIRDS = ("short", "middle", "long")
# Finer source-length bins (tokens) for the curve of BLEU against length.
BINS = ((1, 3), (4, 6), (7, 10), (11, 15), (16, 1000))
#: Buckets of English words (whitespace-separated, as `long_translations` counts them):
#: Bahdanau et al. (2015), Fig. 2. `(name, first, last)`; the last has no upper bound.
WORD_BUCKETS = tuple(
    (name, (0 if i == 0 else long_corpus.LENGTH_BUCKETS[i - 1][1]) + 1, upper)
    for i, (name, upper) in enumerate(long_corpus.LENGTH_BUCKETS))


def source_lengths(sources: list) -> np.ndarray:
    """Source lengths in tokens (words and punctuation marks), as the model sees them."""
    if not sources:
        return np.zeros([0], np.int64)
    return np.array(translation_text.split_words(tf.constant(sources)).row_lengths())


def source_length_thirds(sources: list) -> tuple[np.ndarray, list[int]]:
    """Length bucket of each source (0 short, 1 middle, 2 long third) and the bucket bounds.

    Lengths are counted in source tokens (words and punctuation marks). The cut
    points are the 1/3 and 2/3 quantiles, so sentences of one length always share
    a bucket (the thirds are therefore only roughly equal in size).

    Returns:
        `(buckets, [[lo, hi] per bucket])`.
    """
    if not sources:
        return np.zeros([0], np.int32), [[0, 0]] * 3
    lengths = source_lengths(sources)
    low, high = (int(np.quantile(lengths, q, method="lower")) for q in (1 / 3, 2 / 3))
    if high <= low:
        high = low + 1
    buckets = np.where(lengths <= low, 0, np.where(lengths <= high, 1, 2)).astype(np.int32)
    bounds = [[int(lengths.min()), low], [low + 1, high], [high + 1, int(lengths.max())]]
    return buckets, bounds


def length_order(sentences) -> tuple[np.ndarray, np.ndarray]:
    """`(order, restore)`: `order` sorts `sentences` by words (stable), and `x[order][restore]`
    gives `x` back; for batches of sentences of similar length."""
    order = np.argsort([len(str(s).split()) for s in sentences], kind="stable")
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))
    return order, restore


def translate_all(module, sentences, batch_size=64) -> dict:
    """Runs the export module's `translate` over `sentences` in batches (numpy results, in
    the order of `sentences`).

    The batches are made of sentences of similar length (sorted by words), so a beam search
    does not run to the longest sentence's length for a batch of short ones: on 2,000 of
    the UI strings' test sentences 0.66x the time, with the same translations
    (`python -m benchmarks.translation_eval_order`).
    """
    out = {"translation": [], "attention_weights": [], "source_tokens": [], "target_tokens": []}
    order, restore = length_order(sentences)
    for i in range(0, len(sentences), batch_size):
        batch = [sentences[j] for j in order[i : i + batch_size]]
        result = module.translate(np.array(batch, dtype=object))
        for key in out:
            out[key].append(result[key].numpy())
    if not out["translation"]:
        return {"translation": [], "raw_translation": []}
    merged = {key: np.concatenate(values)[restore] for key, values in out.items()}
    merged["translation"] = [t.decode("utf-8") for t in merged["translation"]]
    # The model's own words, [UNK]s not replaced (for BLEU with and without replacement).
    raw = translation_export.join_tokens(merged["target_tokens"]).numpy()
    merged["raw_translation"] = [t.decode("utf-8") for t in raw]
    if getattr(module, "subword", False):  # No [UNK] replaced: the output is the model's own.
        merged["raw_translation"] = list(merged["translation"])
    return merged


_FIELD_BREAKS = re.compile(r"[\t\r\n]")


def write_translations(path: str, rows) -> None:
    """Writes `(source, reference, translation, model_output)` rows as a header and one
    tab-separated line each. A tab or line break inside a field (a user's `train_tsv` pair,
    or a byte piece the model emitted) becomes a space, so every line keeps its four fields;
    sacreBLEU's tokenization treats both as the same white space, so the scores read back
    from the file are those of the run."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("source\treference\ttranslation\tmodel_output\n")
        for row in rows:
            f.write("\t".join(_FIELD_BREAKS.sub(" ", field) for field in row) + "\n")


def evaluate(module, test, model_dir: str, *, variant: str, title: str, heatmap_count: int = 4,
             plots: bool = True) -> dict:
    """Translates the `test` pairs with the serving module and scores the translations.

    Writes `<model_dir>/translations.tsv` (source, reference, translation, the
    model's output before [UNK] replacement) and, with `plots`, the alignment
    heatmaps of the first `heatmap_count` sentences (not for `seq2seq`, which has
    no attention) and `bleu_by_length.png`.

    Returns:
        BLEU and chrF with and without [UNK] replacement, BLEU by source-length
        third, by finer bins and by English words (`bleu_by_words`), the
        sacreBLEU signatures and the plots' paths.
    """
    result = translate_all(module, test.sources)
    hypotheses, raw = result["translation"], result["raw_translation"]
    scores = corpus_scores(hypotheses, test.targets)
    raw_scores = corpus_scores(raw, test.targets)
    by_length = bleu_by_length(test.sources, hypotheses, test.targets)
    by_bins = bleu_by_length_bins(test.sources, hypotheses, test.targets)
    by_words = bleu_by_words(test.sources, hypotheses, test.targets)
    write_translations(os.path.join(model_dir, "translations.tsv"),
                       zip(test.sources, test.targets, hypotheses, raw, strict=True))
    paths = []
    if plots:
        if variant != "seq2seq":  # The baseline has no attention to draw.
            paths = heatmaps(result, test.sources, model_dir, heatmap_count)
        paths.append(plot_bleu_by_length(
            {variant: by_length}, os.path.join(model_dir, "bleu_by_length.png"), title=title,
            bins_by_variant={variant: by_bins},
        ))
    return {
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "bleu_without_unk_replace": raw_scores["bleu"],
        "chrf_without_unk_replace": raw_scores["chrf"],
        "bleu_by_length": by_length,
        "bleu_by_length_bins": by_bins,
        "bleu_by_words": by_words,
        "signatures": {k: v for k, v in scores.items() if k.endswith("signature")},
        "plots": paths,
    }


def corpus_scores(hypotheses, references) -> dict:
    """sacreBLEU BLEU and chrF (case-insensitive) with their signatures."""
    if not hypotheses:
        return {"bleu": 0.0, "chrf": 0.0, "sentences": 0}
    bleu = sacrebleu.metrics.BLEU(lowercase=True)
    chrf = sacrebleu.metrics.CHRF(lowercase=True)
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": float(b.score),
        "chrf": float(c.score),
        "sentences": len(hypotheses),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def bleu_by_length(sources, hypotheses, references) -> dict:
    """BLEU of the short, middle and long thirds of the sources (in source tokens)."""
    buckets, bounds = source_length_thirds(list(sources))
    out = {}
    for index, name in enumerate(THIRDS):
        picked = np.flatnonzero(buckets == index)
        scores = corpus_scores([hypotheses[i] for i in picked], [references[i] for i in picked])
        out[name] = {
            "bleu": scores["bleu"], "chrf": scores["chrf"], "sentences": int(len(picked)),
            "source_tokens": bounds[index],
        }
    return out


def bleu_by_length_bins(sources, hypotheses, references, bins=BINS) -> list[dict]:
    """BLEU and chrF of the sentences whose source length (tokens) falls in each bin."""
    lengths = source_lengths(list(sources))
    out = []
    for low, high in bins:
        picked = np.flatnonzero((lengths >= low) & (lengths <= high))
        scores = corpus_scores([hypotheses[i] for i in picked], [references[i] for i in picked])
        out.append({"source_tokens": [low, high], "bleu": scores["bleu"],
                    "chrf": scores["chrf"], "sentences": int(len(picked))})
    return out


def word_bucket(n_words: int) -> str:
    """The `WORD_BUCKETS` name of a source of `n_words` English words."""
    return long_corpus.length_bucket(n_words)


def bleu_by_words(sources, hypotheses, references) -> dict:
    """sacreBLEU BLEU and chrF of the sentences in each `WORD_BUCKETS` bucket.

    Words are whitespace-separated English words of the source (not tokens, so
    the buckets do not depend on the vocabulary). An empty bucket scores 0 with
    `sentences` 0. Returns `{name: {"bleu", "chrf", "sentences", "words": [first, last]}}`
    (`last` None for the open bucket), in bucket order.
    """
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError(f"sources ({len(sources)}), hypotheses ({len(hypotheses)}) and "
                         f"references ({len(references)}) must be as many.")
    names = [word_bucket(long_corpus.words(s)) for s in sources]
    out = {}
    for name, first, last in WORD_BUCKETS:
        picked = [i for i, n in enumerate(names) if n == name]
        scores = corpus_scores([hypotheses[i] for i in picked], [references[i] for i in picked])
        out[name] = {"bleu": scores["bleu"], "chrf": scores["chrf"], "sentences": len(picked),
                     "words": [first, last]}
    return out


def heatmaps(result, sources, directory, count=4, prefix="alignment") -> list[str]:
    """Alignment heatmaps (target tokens x source tokens) for the first `count` sentences."""
    paths = []
    for i in range(min(count, len(sources))):
        src = [t.decode("utf-8") for t in result["source_tokens"][i] if t]
        tgt = [t.decode("utf-8") for t in result["target_tokens"][i] if t]
        if not src or not tgt:
            continue
        weights = result["attention_weights"][i][: len(tgt), : len(src)]
        title = sources[i] if len(sources[i]) <= 60 else sources[i][:57] + "..."
        paths.append(plot.attention_heatmap(
            weights, src, tgt, os.path.join(directory, f"{prefix}_{i}.png"), title=title
        ))
    return paths


def plot_bleu_by_length(by_variant: dict, path: str, title=None, bins_by_variant=None) -> str:
    """BLEU per source-length third for each variant (bars), and per finer bin (lines).

    The shape of Bahdanau et al. (2015), Fig. 2: BLEU against sentence length,
    with and without attention.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if bins_by_variant else 1
    figure = Figure(figsize=(6.5 * panels, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, panels, 1)
    variants = list(by_variant)
    width = 0.8 / max(1, len(variants))
    labels = None
    for j, variant in enumerate(variants):
        thirds = by_variant[variant]
        values = [thirds[name]["bleu"] for name in THIRDS]
        labels = [
            f"{name}\n({thirds[name]['source_tokens'][0]}-{thirds[name]['source_tokens'][1]} "
            "tokens)" for name in THIRDS
        ]
        axes.bar(np.arange(3) + (j - (len(variants) - 1) / 2) * width, values, width,
                 label=variant)
    axes.set_xticks(range(3), labels or list(THIRDS))
    axes.set_ylabel("BLEU (sacreBLEU, case-insensitive)")
    axes.set_xlabel("source sentence length (thirds of the test split)")
    axes.legend()
    axes.set_title(title or "BLEU by source length")
    if bins_by_variant:
        curve = figure.add_subplot(1, panels, 2)
        for variant, bins in bins_by_variant.items():
            kept = [b for b in bins if b["sentences"]]
            curve.plot(range(len(kept)), [b["bleu"] for b in kept], marker="o", label=variant)
            ticks = [f"{b['source_tokens'][0]}-{b['source_tokens'][1]}\n({b['sentences']})"
                     if b["source_tokens"][1] < 1000 else
                     f"{b['source_tokens'][0]}+\n({b['sentences']})" for b in kept]
            curve.set_xticks(range(len(kept)), ticks)
        curve.set_xlabel("source tokens (sentences)")
        curve.set_ylabel("BLEU")
        curve.set_title("BLEU against source length")
        curve.legend()
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    figure.savefig(path, format="png")
    return path
