"""The heads benchmark: its arms are checked, a run's embedding member is replaced and
scored as the members benchmark scores it, and the table averages over runs."""

import numpy as np
import pytest

from benchmarks import keyword_spotting_heads as heads
from benchmarks import keyword_spotting_members as members
from tests.benchmarks.test_keyword_spotting_members import _data


def test_arms_parse_and_bad_arms_are_named():
    arms = heads.parse_arms(heads.DEFAULT_ARMS)
    assert arms[0] == {"embedding_heads": 1, "embedding_epochs": 20, "draw": 0}
    assert arms[1]["draw"] == 1 and arms[2]["embedding_heads"] == 2
    assert heads.label(arms[2]) == "2 heads x 10 epochs"
    assert heads.label(arms[1]) == "1 head x 20 epochs (draw 1)"
    for bad, match in (("embedding_heads=2", "must set"),
                       ("embedding_heads=2;embedding_epochs=10;units=3", "unknown"),
                       ("embedding_heads=0;embedding_epochs=10", "embedding_heads"),
                       ("embedding_heads=true;embedding_epochs=10", "embedding_heads"),
                       ("embedding_heads=1;embedding_epochs=1.5", "embedding_epochs"),
                       ("embedding_heads=1;embedding_epochs=2;draw=-1", "draw")):
        with pytest.raises(ValueError, match=match):
            heads.parse_arms([bad])


def test_a_new_embedding_member_is_joined_and_scored_as_the_members_benchmark_does():
    data = _data(0, rnn_good=False)
    groups = ["digit"] * 10 + ["other"] * 70
    before = members.score(data, 1.0, (1.0,), groups)
    # A new embedding member right on every clip.
    perfect = {}
    for name in ("validation", "test", "test_telephone", "pocketsphinx", "ivr"):
        labels = data[f"{name}/label"]
        p = np.full((len(labels), 3), 0.05, np.float32)
        p[np.arange(len(labels)), labels] = 0.9
        perfect[name] = p
    joined = heads.with_embedding(data, perfect)
    assert joined["test/speech_embedding/0.9"] is data["test/speech_embedding/0.9"]
    assert data["test/speech_embedding/1"] is not perfect["test"]  # The run's data kept.
    after = members.score(joined, 1.0, (1.0,), groups)
    # attention_rnn is wrong everywhere: the product follows the more confident member.
    assert after["test"] > before["test"] and after["ivr_digits"] == 10
    np.testing.assert_allclose(members.join(joined, "test", float("inf"), (1.0,)),
                               perfect["test"])


def test_the_table_averages_each_arm_over_the_runs():
    arms = heads.parse_arms(["embedding_heads=1;embedding_epochs=20",
                             "embedding_heads=2;embedding_epochs=10"])

    def result(arm, test):
        return {**arm, "train_seconds": 10.0 * arm["embedding_heads"], "alone": 0.8,
                "validation": test, "test": test, "test_telephone": 0.9, "ivr_digits": 9,
                "ivr_digits_p": 0.9, "ivr_other": 40, "pocketsphinx": 0.5}

    per_run = [[result(arms[0], 0.94), result(arms[1], 0.95)],
               [result(arms[0], 0.96), result(arms[1], 0.97)]]
    rows, text = heads.table(per_run, arms)
    assert [r["test"] for r in rows] == pytest.approx([0.95, 0.96])
    assert rows[1]["ivr_digits"] == 18 and rows[1]["pocketsphinx"] == 24
    assert "| 2 heads x 10 epochs | 20 | 80.00% | 96.00% | 96.00% [95.00%, 97.00%]" in text
    assert "(of 20)" in text and "(of 48)" in text


def test_a_runs_model_config_is_read_back_with_one_head_for_older_runs():
    import dataclasses

    from apps.keyword_spotting.model import ModelConfig
    from benchmarks.keyword_spotting_real import run_model_config

    recorded = dataclasses.asdict(ModelConfig(cnn_filters=(4, 8), embedding_heads=3))
    recorded["cnn_filters"] = list(recorded["cnn_filters"])  # As JSON stores it.
    assert run_model_config({"model_config": recorded}) == ModelConfig(cnn_filters=(4, 8),
                                                                       embedding_heads=3)
    del recorded["embedding_heads"]  # A run from before the field.
    assert run_model_config({"model_config": recorded}).embedding_heads == 1
