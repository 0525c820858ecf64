"""Test-time speed ensemble: the average over speeds, the attention of the clip as it is."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from apps.keyword_spotting import audio, ensemble, train
from tests.apps.keyword_spotting.conftest import clips


def _explainer(waveform, training=False):
    # Probabilities that depend on where the energy sits in frequency (a speed moves it) and
    # attention that depends on where it sits in time.
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    spectrum = tf.abs(tf.signal.rfft(waveform))
    bins = tf.cast(tf.range(tf.shape(spectrum)[1]), tf.float32)
    centroid = tf.reduce_sum(spectrum * bins, 1) / (tf.reduce_sum(spectrum, 1) + 1e-6) / 1000.0
    probabilities = tf.nn.softmax(tf.stack([centroid, -centroid, tf.zeros_like(centroid)], 1))
    frames = tf.reduce_mean(tf.abs(tf.reshape(waveform, [-1, 50, 320])), -1)
    return {"probabilities": probabilities, "attention_weights": tf.nn.softmax(frames, -1)}


def test_averages_the_probabilities_over_the_speeds_and_keeps_the_clips_attention():
    x = clips(3)
    out = ensemble.SpeedEnsemble(_explainer, (0.9, 1.0, 1.2))(x)
    expected = np.mean([_explainer(audio.play_at_speed(x, s) if s != 1 else x)["probabilities"]
                        for s in (0.9, 1.0, 1.2)], axis=0)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["attention_weights"], _explainer(x)["attention_weights"],
                               atol=1e-6)
    # The speeds do change the answer (else the test would prove nothing).
    assert np.abs(np.asarray(out["probabilities"])
                  - np.asarray(_explainer(x)["probabilities"])).max() > 1e-3
    alone = ensemble.SpeedEnsemble(_explainer, (1.0,))(x)
    np.testing.assert_allclose(alone["probabilities"], _explainer(x)["probabilities"])


def test_play_at_speed_keeps_one_second_and_moves_the_pitch():
    rate, f = 16000, 1000.0
    tone = np.sin(2 * np.pi * f * np.arange(8000) / rate).astype(np.float32)
    clip = np.pad(tone, (4000, 4000))[None]
    for factor in (0.9, 1.1):
        out = audio.play_at_speed(clip, factor).numpy()
        assert out.shape == (1, 16000)
        peak = np.argmax(np.abs(np.fft.rfft(out[0]))) * rate / 16000
        assert abs(peak - f * factor) < 15


@pytest.mark.parametrize("speeds", [(), (0.9, 1.1), (1.0, 1.0), (0.0, 1.0), (-1.0, 1.0)])
def test_bad_speeds_are_named(speeds):
    with pytest.raises(ValueError, match="test_speeds"):
        ensemble.check_speeds(speeds)
    with pytest.raises(ValueError, match="test_speeds"):
        train.TrainConfig(test_speeds=speeds)


def test_the_export_averages_what_the_plain_export_answers_at_each_speed(tmp_path):
    from apps.keyword_spotting import export
    from apps.keyword_spotting.model import ModelConfig, build_model

    spotter = build_model(ModelConfig(num_classes=4, rnn_units=4, conv_filters=2, seed=0))
    names = ["a", "b", "c", "d"]
    plain = tf.saved_model.load(export.export(spotter.explainer, names, str(tmp_path / "plain"))
                                ).signatures["waveform"]  # The default: no ensemble.
    tta = tf.saved_model.load(export.export(spotter.explainer, names, str(tmp_path / "tta"),
                                            speeds=ensemble.SPEEDS)).signatures["waveform"]
    x = tf.constant(clips(2))
    expected = np.mean([plain(waveform=audio.play_at_speed(x, s) if s != 1 else x)
                        ["probabilities"].numpy() for s in ensemble.SPEEDS], axis=0)
    out = tta(waveform=x)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["attention_weights"], plain(waveform=x)["attention_weights"],
                               atol=1e-5)


def test_the_benchmark_exports_a_runs_own_weights_again_with_other_speeds(tmp_path):
    import dataclasses

    from apps.keyword_spotting import export
    from apps.keyword_spotting.model import ModelConfig, build_model
    from benchmarks.keyword_spotting_real import reexport

    config = ModelConfig(num_classes=3, rnn_units=4, conv_filters=2, seed=0)
    spotter = build_model(config)
    rng = np.random.default_rng(0)
    for variable in spotter.explainer.weights:  # Kernels no fresh model would have.
        if "kernel" in variable.path:
            variable.assign(rng.normal(0, 0.3, variable.shape))
    metrics = {"model_config": dataclasses.asdict(config), "class_names": ["a", "b", "c"],
               "export_path": export.export(spotter.explainer, ["a", "b", "c"],
                                            str(tmp_path / "run"))}
    again = tf.saved_model.load(reexport(str(tmp_path), metrics, ensemble.SPEEDS,
                                         str(tmp_path / "again"))).signatures["waveform"]
    x = clips(2)
    np.testing.assert_allclose(
        again(waveform=tf.constant(x))["probabilities"],
        ensemble.SpeedEnsemble(spotter.explainer, ensemble.SPEEDS)(x)["probabilities"],
        atol=1e-5)
    # A model that does not fit the export's weights is refused.
    with pytest.raises(ValueError, match="do not fit"):
        reexport(str(tmp_path), {**metrics, "model_config": {**metrics["model_config"],
                                                             "rnn_units": 5}},
                 ensemble.SPEEDS, str(tmp_path / "bad"))
    # An embedding exponent needs the two models of an embedding_ensemble export.
    with pytest.raises(ValueError, match="one model .attention_rnn.*needs the two"):
        reexport(str(tmp_path), metrics, (), str(tmp_path / "two"), embedding_exponent=0.5)


@pytest.mark.slow
def test_the_benchmark_rebuilds_both_members_of_the_default_export(tiny_run, tiny_corpus):
    """`rebuild` gives the two models of an `embedding_ensemble` export with its weights, and
    their weighted product, joined by the members benchmark, answers as the export does."""
    import json
    import os

    from benchmarks import keyword_spotting_members
    from benchmarks.keyword_spotting_real import rebuild

    run_dir = os.path.dirname(tiny_run.metrics_path)
    with open(tiny_run.metrics_path) as f:
        metrics = json.load(f)
    exponent = metrics["embedding_exponent"]
    assert exponent == train.TrainConfig.embedding_exponent == 0.5  # The default.
    explainer, members = rebuild(run_dir, metrics, tiny_corpus[0])
    assert list(members) == ["attention_rnn", "speech_embedding"]
    x = clips(3)
    served = tf.saved_model.load(tiny_run.export_path).signatures["waveform"]
    data = {"members": np.array(list(members)), "probe/label": np.zeros(3, np.int64)}
    for name, member in members.items():
        data[f"probe/{name}/1"] = np.asarray(member(x)["probabilities"])
    np.testing.assert_allclose(keyword_spotting_members.join(data, "probe", exponent, (1.0,)),
                               served(waveform=tf.constant(x))["probabilities"], atol=1e-5)
    # A run joined with another exponent is rebuilt with it (the export check would fail).
    with pytest.raises(ValueError, match="does not answer as the export does"):
        rebuild(run_dir, {**metrics, "embedding_exponent": 2.0}, tiny_corpus[0])
    # Exported again with exponent 1 (both alike): the served product is the members' plain
    # one.
    from benchmarks.keyword_spotting_real import reexport

    again = tf.saved_model.load(reexport(run_dir, metrics, (), str(run_dir) + "_plain",
                                         embedding_exponent=1.0, data_dir=tiny_corpus[0]))
    np.testing.assert_allclose(again.signatures["waveform"](waveform=tf.constant(x))
                               ["probabilities"],
                               keyword_spotting_members.join(data, "probe", 1.0, (1.0,)),
                               atol=1e-5)
