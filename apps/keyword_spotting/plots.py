"""Plots of the keyword spotter: confusion matrix, and a clip with the attention over time.

Each function draws on its own matplotlib Figure on the Agg canvas (no display
needed, pyplot's global state untouched), writes a PNG and returns its path.
"""

from __future__ import annotations

import os

import numpy as np


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
                        word_span: tuple[int, int] | None = None) -> str:
    """Three aligned panels: waveform, log-mel spectrogram, attention weights over time.

    Args:
        waveform: `(samples,)` audio.
        spectrogram: `(frames, mel)` what the model saw.
        weights: `(frames,)` attention over the frames.
        path: PNG to write.
        title: heading (e.g. true and predicted label).
        sample_rate: Hz of `waveform`.
        frame_step: samples between frames (frame i is centered at i * frame_step).
        word_span: `(start, end)` sample indices of the spoken word, shaded when given.
    """
    waveform = np.asarray(waveform, np.float32)
    spectrogram = np.asarray(spectrogram, np.float32)
    weights = np.asarray(weights, np.float32)
    if spectrogram.shape[0] != weights.shape[0]:
        raise ValueError(f"spectrogram has {spectrogram.shape[0]} frames but weights has "
                         f"{weights.shape[0]}; they must match.")
    duration = waveform.size / sample_rate
    frame_times = np.arange(weights.size) * frame_step / sample_rate
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
    bottom.bar(frame_times, weights, width=0.9 * frame_step / sample_rate, color="tab:red")
    bottom.set_ylabel("attention")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, max(duration, frame_times[-1]))
    if word_span is not None and word_span[0] >= 0:
        for axes in (top, bottom):
            axes.axvspan(word_span[0] / sample_rate, word_span[1] / sample_rate,
                         color="tab:green", alpha=0.15, label="spoken word")
        top.legend(loc="upper right", fontsize=8)
    if title:
        top.set_title(title)
    return _save(figure, path)
