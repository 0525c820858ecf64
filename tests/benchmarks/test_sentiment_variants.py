"""The sentiment benchmark's report: seed-paired comparison against mean_pooling, flag check."""

import pytest
from absl import app

from benchmarks import _sentiment_report as report


def _record(accuracies):
    return {"results": [
        {"variant": v, "seed": s, "test_accuracy": a} for (v, s), a in accuracies.items()
    ]}


def test_paired_differences_pair_by_seed_and_count_wins():
    record = _record({
        ("bilstm_attention", 1): 0.80, ("bilstm_attention", 2): 0.81,
        ("bilstm_attention", 3): 0.79, ("bilstm_attention", 4): 0.82,
        ("mean_pooling", 1): 0.79, ("mean_pooling", 2): 0.81, ("mean_pooling", 3): 0.80,
        # Seed 4 has no baseline run: it is left out of the pairs.
        ("transformer", 1): 0.78,
    })
    paired = report.paired_differences(record)
    attention = paired["bilstm_attention"]
    assert attention["seeds"] == [1, 2, 3]
    assert attention["differences"] == pytest.approx([0.01, 0.0, -0.01])
    assert (attention["won"], attention["tied"], attention["lost"]) == (1, 1, 1)
    assert attention["mean"] == pytest.approx(0.0, abs=1e-12)
    assert attention["low"] <= 0.0 <= attention["high"]
    # One seed: a difference, no interval.
    assert paired["transformer"]["mean"] == pytest.approx(-0.01)
    assert paired["transformer"]["low"] is None
    assert "mean_pooling" not in paired


def test_markdown_has_the_paired_table():
    record = _record({("bilstm_attention", 1): 0.80, ("mean_pooling", 1): 0.79})
    for r in record["results"]:
        r.update(out_of_domain={}, train_seconds=1.0, train_cpu_seconds=1.0, params=10,
                 epochs=1)
    record.update(dataset="vader_sentiment/movies",
                  machine={"cpus_usable": 2, "load_average_at_end": [0.5, 0.5, 0.5]})
    md = report.markdown(record)
    assert "| bilstm_attention | +0.0100 | – | 1 / 0 / 0 |" in md


def test_model_config_flag_is_checked_before_any_run():
    assert report.parse_model_config(None) == {}
    assert report.parse_model_config('{"attention_hops": 4}') == {"attention_hops": 4}
    for text, needle in [
        ("{nope", "not JSON"),
        ("[1]", "JSON object"),
        ('{"attention_hop": 4}', "attention_hop"),
        ('{"variant": "transformer"}', "variant"),  # chosen by --variants
    ]:
        with pytest.raises(app.UsageError, match=needle):
            report.parse_model_config(text)
