"""Scores and plots of the keyword spotter: attention on the word, confusion matrix, pictures."""

from __future__ import annotations

import os

import numpy as np
import pytest

from apps.keyword_spotting import evaluation


def test_attention_on_word_counts_frames_inside_the_word():
    weights = np.zeros((2, 51))
    weights[0, 10:20] = 0.1  # Frames 10..19 are centered at 3200..6080 samples.
    weights[1, :] = 1 / 51
    on_word, uniform = evaluation.attention_on_word(
        weights, np.array([3200, 3200]), np.array([6400, 6400]), frame_step=320)
    assert on_word == pytest.approx((1.0 + 10 / 51) / 2)
    assert uniform == pytest.approx(10 / 51)


def test_attention_on_word_with_offset_steps():
    """The speech embedding's windows: step i centered at 6256 + 480 i (8 steps for 1 s)."""
    weights = np.zeros((1, 8))
    weights[0, 1] = 0.75  # Centered at 6736: inside the word below.
    weights[0, 5] = 0.25  # Centered at 8656: after it.
    on_word, uniform = evaluation.attention_on_word(
        weights, np.array([6000]), np.array([7500]), frame_step=480, offset=6256)
    assert on_word == pytest.approx(0.75)
    assert uniform == pytest.approx(3 / 8)  # Steps 0-2 (6256, 6736, 7216) are inside.


def test_scores_per_class_and_per_speaker():
    results = {
        "label": np.array([0, 0, 1, 2]), "prediction": np.array([0, 1, 1, 2]),
        "speaker": np.array([b"a", b"b", b"a", b""]), "weights": np.full((4, 51), 1 / 51),
        "word_start": np.array([0, 0, 0, -1]), "word_end": np.array([8000, 8000, 8000, -1]),
    }
    scores = evaluation.scores(results, ["x", "y", "z"], frame_step=320)
    assert scores["test_accuracy"] == 0.75
    assert scores["test_accuracy_per_class"] == {"x": 0.5, "y": 1.0, "z": 1.0}
    assert scores["test_accuracy_per_speaker"] == {"a": 1.0, "b": 0.0}  # No voice: not listed.
    assert scores["attention_mass_on_word"] == pytest.approx(25 / 51)


def test_plots_are_written(tmp_path):
    matrix = evaluation.confusion_matrix([0, 1, 1], [0, 1, 0], 2)
    assert matrix.tolist() == [[1, 0], [1, 1]]
    png = evaluation.plot_confusion_matrix(matrix, ["a", "b"], str(tmp_path / "c.png"))
    assert os.path.getsize(png) > 1000
    clip = evaluation.plot_clip_attention(
        np.zeros(16000), np.zeros((51, 40)), np.full(51, 1 / 51), str(tmp_path / "a" / "1.png"),
        title="t", word_span=(1000, 5000))
    assert os.path.getsize(clip) > 1000
    with pytest.raises(ValueError, match="must match"):
        evaluation.plot_clip_attention(np.zeros(16000), np.zeros((50, 40)), np.zeros(51),
                                       str(tmp_path / "x.png"))
    # Attention on its own steps (the speech embedding's 8 windows over 97 frames).
    windows = evaluation.plot_clip_attention(
        np.zeros(16000), np.zeros((97, 32)), np.full(8, 1 / 8), str(tmp_path / "w.png"),
        frame_step=160, spectrogram_offset=256, attention_step=480, attention_offset=6256)
    assert os.path.getsize(windows) > 1000
