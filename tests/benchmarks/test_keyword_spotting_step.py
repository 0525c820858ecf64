"""benchmarks/keyword_spotting_step.py: model configurations timed in turns, written as a table."""

import json

import pytest

from apps.common import flags as common_flags  # noqa: F401  (its flags are defined too)
from benchmarks import _common, keyword_spotting_step


@pytest.mark.slow
def test_every_arm_is_timed_in_turns_and_written(tmp_path):
    arms = {"looped": {"rnn_unroll": False, "rnn_units": 8},
            "unrolled": {"rnn_unroll": True, "rnn_units": 8}}
    out = keyword_spotting_step.time_arms(arms, steps=1, rounds=2, batch_size=2)
    assert list(out) == list(arms)
    for result in out.values():
        assert len(result["turns"]) == 2 and result["seconds_per_step"] > 0
    assert out["looped"]["params"] == out["unrolled"]["params"]
    path = tmp_path / "step.json"
    _common.write_step_results("keyword_spotting_step", out, {"steps": 1}, str(path))
    record = json.loads(path.read_text())
    assert record["meta"]["steps"] == 1 and record["meta"]["machine"]["cpu_model"]
    table = (tmp_path / "step.md").read_text()
    assert "| looped |" in table and "| unrolled |" in table and "1.00x" in table


def test_every_augmentation_is_timed_and_keeps_the_batch():
    fns = keyword_spotting_step.augmentations(batch_size=3)
    assert "speed perturbation" in fns and "channel augmentation (p=0.5)" in fns
    for fn in fns.values():
        assert tuple(fn().shape) == (3, 16000)
    out = keyword_spotting_step.time_augmentations(steps=1, rounds=1, batch_size=2)
    assert list(out) == list(fns) and all(r["seconds_per_step"] > 0 for r in out.values())


def test_pipeline_epochs_are_timed_with_autotune_off_and_on():
    from tests.apps.keyword_spotting.test_pipeline import _tone_splits

    out = keyword_spotting_step.time_pipeline_epochs(_tone_splits(6), epochs=2, batch_size=4)
    assert list(out) == ["autotune off", "autotune on"]
    for result in out.values():
        assert len(result["turns"]) == 2 and result["seconds_per_step"] > 0
        assert result["batches"] == 2 and result["every_epoch"].count(",") == 1
    model = keyword_spotting_step.time_pipeline_epochs(_tone_splits(6), epochs=1,
                                                       batch_size=2, model_steps=1)
    assert all(r["batches"] == 1 and len(r["turns"]) == 1 for r in model.values())
