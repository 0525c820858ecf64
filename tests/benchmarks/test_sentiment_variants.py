"""The sentiment benchmark's report: seed-paired comparison against mean_pooling, config check."""

import pytest
from absl import app, flags

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


def test_markdown_names_the_config_overrides():
    record = _record({("bilstm_attention", 1): 0.80})
    for r in record["results"]:
        r.update(out_of_domain={}, train_seconds=1.0, train_cpu_seconds=1.0, params=10,
                 epochs=1)
    record.update(dataset="vader_sentiment/movies", config_overrides=["model.attention_hops=4"],
                  machine={"cpus_usable": 2, "load_average_at_end": [0.5, 0.5, 0.5]})
    assert "config overrides `--config=model.attention_hops=4`" in report.markdown(record)


def test_config_is_checked_before_any_run():
    assert report.parse_config([]) == report.from_scratch_base()
    assert report.from_scratch_base().model.variant == "bilstm_attention"
    config = report.parse_config(["model.attention_hops=4", "epochs=2"])
    assert config.model.attention_hops == 4 and config.epochs == 2
    for pairs, needle in [
        (["model.attention_hop=4"], "no field 'attention_hop'"),
        (["model.attention_hops=four"], "'four' is not a int"),
        (["model.attention_hops=0"], "attention_hops=0"),
        (["attention_hops"], "is not KEY=VALUE"),
        (["model.variant=transformer"], "--variants"),  # chosen by --variants
        (["seed=3"], "--seeds"),
    ]:
        with pytest.raises(app.UsageError, match=needle):
            report.parse_config(pairs)


def test_common_flags_set_the_base_but_not_what_each_run_sets():
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["bench", "--epochs=2", "--config=model.attention_zero_init=true"])
        config = report.config_from_flags()
        assert config.epochs == 2 and config.model.attention_zero_init
        for args, needle in [(["--seed=3"], "--seed"), (["--variant=transformer"], "--variants"),
                             (["--config=model_dir=/tmp/x"], "--runs")]:
            flags.FLAGS.unparse_flags()
            flags.FLAGS(["bench", *args])
            with pytest.raises(app.UsageError, match=needle):
                report.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
