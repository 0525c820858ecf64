"""`benchmarks/_common.py`'s paired-by-seed differences and their Student-t interval."""

import math
import sys

import pytest

from benchmarks import _common


def _without_scipy(monkeypatch):
    # `import scipy` (and `from scipy import stats`) raise ImportError from here on.
    monkeypatch.setitem(sys.modules, "scipy", None)


def test_interval_matches_a_hand_computation():
    p = _common.paired_t_interval([0.5, 1.5, 4.0])
    # mean 2; sd = sqrt((1.5^2 + 0.5^2 + 2^2) / 2) = sqrt(3.25); t(0.975, 2) = 4.3027
    half = 4.302653 * math.sqrt(3.25) / math.sqrt(3)
    assert p["mean"] == pytest.approx(2.0)
    assert p["half_width"] == pytest.approx(half, rel=1e-5)
    assert (p["low"], p["high"]) == pytest.approx((2.0 - half, 2.0 + half), rel=1e-5)
    assert (p["n"], p["won"], p["tied"], p["lost"]) == (3, 3, 0, 0)


def test_one_difference_has_no_interval_and_none_is_an_error():
    p = _common.paired_t_interval([-0.25])
    assert p["mean"] == -0.25 and p["half_width"] is None and p["low"] is None
    assert p["lost"] == 1
    with pytest.raises(ValueError, match="at least one difference"):
        _common.paired_t_interval([])


def test_t_quantile_agrees_with_scipy_or_the_table():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 10, 11, 30, 200):
        assert _common.t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
    assert _common.t_quantile(4, 0.90) == pytest.approx(stats.t.ppf(0.95, 4), rel=1e-9)


def test_t_quantile_without_scipy_uses_the_table_then_the_expansion(monkeypatch):
    _without_scipy(monkeypatch)
    assert _common.t_quantile(2) == 4.303  # the printed table's value
    assert _common.t_quantile(10) == 2.228
    assert _common.t_quantile(11) == pytest.approx(2.2010, abs=2e-4)  # Cornish-Fisher
    assert _common.t_quantile(30) == pytest.approx(2.0423, abs=2e-4)
    with pytest.raises(ValueError, match="needs scipy"):
        _common.t_quantile(5, 0.9)


@pytest.mark.parametrize("df, confidence, message", [
    (0, 0.95, "df must be a positive integer"),
    (2.5, 0.95, "df must be a positive integer"),
    (True, 0.95, "df must be a positive integer"),
    (3, 1.0, r"confidence must be in \(0, 1\)"),
])
def test_t_quantile_refuses_bad_arguments(df, confidence, message):
    with pytest.raises(ValueError, match=message):
        _common.t_quantile(df, confidence)


def test_paired_by_seed_pairs_only_the_seeds_both_ran():
    runs = [{"variant": v, "seed": s, "acc": a}
            for v, s, a in [("plain", 1, 0.90), ("plain", 2, 0.80), ("plain", 3, 0.85),
                            ("se", 1, 0.91), ("se", 2, 0.83), ("se", 4, 0.99),
                            ("cbam", 7, 0.5)]]
    p = _common.paired_by_seed(runs, "variant", "se", "plain", "acc")
    assert p["seeds"] == [1, 2]  # seed 4 has no plain run to pair with
    assert p["differences"] == pytest.approx([0.01, 0.03])
    half = 12.7062 * math.sqrt(0.0002) / math.sqrt(2)  # sd of (0.01, 0.03) = sqrt(2e-4)
    assert (p["mean"], p["half_width"]) == pytest.approx((0.02, half), rel=1e-4)
    assert _common.paired_by_seed(runs, "variant", "cbam", "plain", "acc") is None


def test_paired_by_seed_refuses_a_seed_run_twice():
    runs = [{"variant": "plain", "seed": 1, "acc": 0.9},
            {"variant": "plain", "seed": 1, "acc": 0.8}]
    with pytest.raises(ValueError, match="variant='plain' has two runs with seed 1"):
        _common.paired_by_seed(runs, "variant", "se", "plain", "acc")
