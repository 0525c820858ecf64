"""Scores and pictures of a trained keyword spotter on a split (the test split: unseen voices).

`evaluate` runs the explainer over the split and returns accuracy overall, per
class and per speaker, how much of the attention falls on the spoken word
(and what uniform attention would give), and the milliseconds per clip. With a
run directory it also draws, each on its own matplotlib Figure on the Agg
canvas (no display needed, pyplot's global state untouched):

- `confusion_matrix.png`: row-normalized, with counts;
- `attention/<n>_<label>.png` per sample clip: waveform, log-mel spectrogram
  and the attention over time beneath them, the spoken word shaded.
"""

from __future__ import annotations

import os
import time

import numpy as np

_KEYS = ("label", "prediction", "probabilities", "weights", "speaker", "word_start", "word_end")


def through_channel(waveforms, channel, first_index: int = 0, seed: int = 1234):
    """`waveforms` `(batch, n)` through `channel.augment_batch(channel)`, clip i of the
    evaluation seeded by (seed, first_index + i): the same channel for the same clip in
    every run. `channel` None: unchanged."""
    if not channel:
        return waveforms
    import tensorflow as tf

    from apps.keyword_spotting import channel as channel_lib

    n = int(waveforms.shape[0])
    index = tf.range(first_index, first_index + n, dtype=tf.int64)
    seeds = tf.stack([tf.fill([n], tf.constant(seed, tf.int64)), index], axis=1)
    return channel_lib.augment_batch(waveforms, seeds, channel)


def predict(spotter, splits, split: str = "test", batch_size: int = 64, channel=None) -> dict:
    """Runs the explainer over `split` in file order; returns arrays keyed by `_KEYS`.

    `channel`: a probability or mapping for `channel.augment_batch` (e.g.
    `{"telephone": 1.0}`) that every clip goes through first (`through_channel`).
    """
    return predict_batches(spotter, splits.examples(split, batch_size), channel)


def predict_batches(spotter, batches, channel=None) -> dict:
    """`predict` over an iterable of batches (dicts with `waveform`, `label` and optionally
    `speaker`, `word_start`, `word_end`)."""
    out = {k: [] for k in _KEYS}
    seen = 0
    for batch in batches:
        waveform = through_channel(batch["waveform"], channel, seen)
        seen += int(waveform.shape[0])
        result = spotter.explainer(waveform, training=False)
        probabilities = np.asarray(result["probabilities"])
        n = probabilities.shape[0]
        out["label"].append(np.asarray(batch["label"]))
        out["prediction"].append(probabilities.argmax(axis=-1))
        out["probabilities"].append(probabilities)
        out["weights"].append(np.asarray(result["attention_weights"]))
        out["speaker"].append(np.asarray(batch["speaker"]) if "speaker" in batch
                              else [b""] * n)
        for key in ("word_start", "word_end"):
            out[key].append(np.asarray(batch[key]) if key in batch else np.full(n, -1))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def attention_on_word(weights, word_start, word_end, frame_step: int,
                      offset: int = 0) -> tuple[float, float]:
    """Mean attention mass on steps centered inside the spoken word, and what uniform
    attention would give (the word's share of the steps). Step i is centered at sample
    `offset + i * frame_step`. Clips without a word are skipped."""
    mass, uniform = [], []
    centers = offset + np.arange(weights.shape[1]) * frame_step
    for w, start, end in zip(weights, word_start, word_end, strict=True):
        if start < 0:
            continue
        inside = (centers >= start) & (centers < end)
        mass.append(float(w[inside].sum()))
        uniform.append(float(inside.mean()))
    if not mass:
        return float("nan"), float("nan")
    return float(np.mean(mass)), float(np.mean(uniform))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def scores(results: dict, class_names, frame_step: int, offset: int = 0) -> dict:
    """Accuracy overall, per class and per speaker, and the attention mass on the word."""
    correct = results["label"] == results["prediction"]
    accuracy = float(correct.mean()) if correct.size else float("nan")
    per_class = {class_names[c]: float(correct[results["label"] == c].mean())
                 for c in range(len(class_names)) if np.any(results["label"] == c)}
    per_speaker = {_text(speaker): float(correct[results["speaker"] == speaker].mean())
                   for speaker in sorted(set(results["speaker"].tolist())) if speaker}
    on_word, uniform = attention_on_word(results["weights"], results["word_start"],
                                         results["word_end"], frame_step, offset)
    return {
        "test_accuracy": accuracy,
        "test_accuracy_per_class": per_class,
        "test_accuracy_per_speaker": per_speaker,
        "attention_mass_on_word": on_word,
        "attention_mass_on_word_if_uniform": uniform,
    }


def evaluate(spotter, splits, batch_size: int = 64, run_dir: str | None = None,
             sample_clips: int = 8, split: str = "test") -> dict:
    """Scores `spotter` (a `model.KeywordSpotter`) on `split`; with `run_dir`, plots too.

    Returns the `scores` and `test_ms_per_clip`; with `run_dir` also
    `confusion_matrix` (counts, true class down), `confusion_matrix_png` and
    `attention_plots` (the paths of `sample_clips` clips' pictures).
    """
    start = time.perf_counter()
    results = predict(spotter, splits, split, batch_size)
    seconds = time.perf_counter() - start
    names = splits.class_names
    metrics = scores(results, names, spotter.config.attention_step,
                     spotter.config.attention_offset)
    metrics["test_ms_per_clip"] = 1000.0 * seconds / max(1, results["label"].size)
    if run_dir is not None:
        matrix = confusion_matrix(results["label"], results["prediction"], len(names))
        metrics["confusion_matrix"] = matrix.tolist()
        metrics["confusion_matrix_png"] = plot_confusion_matrix(
            matrix, names, os.path.join(run_dir, "confusion_matrix.png"),
            title=f"{spotter.config.variant} on unseen voices: accuracy "
                  f"{metrics['test_accuracy']:.3f}",
        )
        metrics["attention_plots"] = sample_plots(spotter, splits, results, run_dir,
                                                  sample_clips, batch_size, split)
    return metrics


def _choose(results: dict, num_classes: int, count: int) -> list[int]:
    """One correct clip of each of several classes, and up to two mistakes."""
    wrong = np.nonzero(results["label"] != results["prediction"])[0]
    rng = np.random.default_rng(0)
    chosen = []
    for cls in rng.permutation(num_classes):
        hits = np.nonzero((results["label"] == cls) & (results["label"] == results["prediction"]))
        if hits[0].size:
            chosen.append(int(hits[0][0]))
        if len(chosen) >= max(1, count - 2):
            break
    return chosen + [int(i) for i in wrong[: count - len(chosen)]]


def sample_plots(spotter, splits, results, run_dir: str, count: int, batch_size: int = 64,
                 split: str = "test") -> list[str]:
    """Waveform, spectrogram and attention of `count` clips of `split` (correct and wrong)."""
    import keras

    if count <= 0:
        return []
    config = spotter.config
    if config.variant == "speech_embedding":  # Its own log-mel: uncentered 10 ms frames.
        from apps.keyword_spotting import speech_embedding

        front = keras.Model(spotter.features.input,
                            spotter.features.get_layer("embedding_log_mel").output)
        spectrogram_step = speech_embedding.HOP
        spectrogram_offset = speech_embedding.FFT_LENGTH // 2
    else:
        front = keras.Model(spotter.classifier.input,
                            spotter.classifier.get_layer("normalize").output)
        spectrogram_step, spectrogram_offset = config.frame_step, 0
    names = splits.class_names
    wanted = set(_choose(results, len(names), count))
    paths = []
    offset = 0
    for batch in splits.examples(split, batch_size):
        n = int(batch["label"].shape[0])
        for i in sorted(wanted & set(range(offset, offset + n))):
            waveform = batch["waveform"][i - offset].numpy()
            spectrogram = np.asarray(front(waveform[None], training=False))[0]
            true, pred = names[results["label"][i]], names[results["prediction"][i]]
            speaker = _text(results["speaker"][i])
            title = f"true: {true}   predicted: {pred}"
            title += f"   voice: {speaker}" if speaker else ""
            path = os.path.join(run_dir, "attention", f"{i:05d}_{true}.png")
            span = (int(results["word_start"][i]), int(results["word_end"][i]))
            paths.append(plot_clip_attention(
                waveform, spectrogram, results["weights"][i], path, title=title,
                frame_step=spectrogram_step, spectrogram_offset=spectrogram_offset,
                attention_step=config.attention_step, attention_offset=config.attention_offset,
                word_span=span,
            ))
        offset += n
    return paths


# --------------------------------------------------------------------------- pictures


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, format="png")
    return path


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts `(true class, predicted class)`: `(num_classes, num_classes)` int."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
    return matrix


def plot_confusion_matrix(matrix, class_names, path: str, title: str | None = None) -> str:
    """Row-normalized confusion matrix (true class down, predicted across) with counts."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.38 * n + 2)
    figure = _figure(size + 1, size)
    axes = figure.add_subplot()
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(n), class_names, rotation=90, fontsize=8)
    axes.set_yticks(range(n), class_names, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                          color="white" if rows[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    if title:
        axes.set_title(title)
    return _save(figure, path)


def plot_clip_attention(waveform, spectrogram, weights, path: str, title: str | None = None,
                        sample_rate: int = 16000, frame_step: int = 320,
                        word_span: tuple[int, int] | None = None, spectrogram_offset: int = 0,
                        attention_step: int | None = None, attention_offset: int = 0) -> str:
    """Three aligned panels: waveform, log-mel spectrogram, attention weights over time.

    Args:
        waveform: `(samples,)` audio.
        spectrogram: `(frames, mel)` what the model saw.
        weights: `(frames,)` attention over the frames.
        path: PNG to write.
        title: heading (e.g. true and predicted label).
        sample_rate: Hz of `waveform`.
        frame_step: samples between frames (frame i is centered at
            `spectrogram_offset + i * frame_step`).
        word_span: `(start, end)` sample indices of the spoken word, shaded when given.
        spectrogram_offset: the first frame's center (samples).
        attention_step, attention_offset: the same for the attention weights; None: the
            weights are over the spectrogram's frames, which must then match in number.
    """
    waveform = np.asarray(waveform, np.float32)
    spectrogram = np.asarray(spectrogram, np.float32)
    weights = np.asarray(weights, np.float32)
    if attention_step is None:
        if spectrogram.shape[0] != weights.shape[0]:
            raise ValueError(f"spectrogram has {spectrogram.shape[0]} frames but weights has "
                             f"{weights.shape[0]}; they must match.")
        attention_step, attention_offset = frame_step, spectrogram_offset
    duration = waveform.size / sample_rate
    frame_times = (spectrogram_offset + np.arange(spectrogram.shape[0]) * frame_step) / sample_rate
    step_times = (attention_offset + np.arange(weights.size) * attention_step) / sample_rate
    figure = _figure(8, 6)
    top, middle, bottom = figure.subplots(3, 1, sharex=True,
                                          gridspec_kw={"height_ratios": [1, 1.4, 1]})
    top.plot(np.arange(waveform.size) / sample_rate, waveform, linewidth=0.5, color="0.2")
    top.set_ylabel("waveform")
    middle.imshow(spectrogram.T, origin="lower", aspect="auto", cmap="magma",
                  extent=(frame_times[0] - 0.5 * frame_step / sample_rate,
                          frame_times[-1] + 0.5 * frame_step / sample_rate,
                          0, spectrogram.shape[1]))
    middle.set_ylabel("mel bin")
    bottom.bar(step_times, weights, width=0.9 * attention_step / sample_rate, color="tab:red")
    bottom.set_ylabel("attention")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, max(duration, frame_times[-1], step_times[-1]))
    if word_span is not None and word_span[0] >= 0:
        for axes in (top, bottom):
            axes.axvspan(word_span[0] / sample_rate, word_span[1] / sample_rate,
                         color="tab:green", alpha=0.15, label="spoken word")
        top.legend(loc="upper right", fontsize=8)
    if title:
        top.set_title(title)
    return _save(figure, path)
