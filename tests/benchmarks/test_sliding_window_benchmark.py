"""`benchmarks/sliding_window.py --tiny` runs end to end and writes its results, so it
cannot rot."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_tiny_run_writes_times_memory_check_and_targets(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    proc = subprocess.run(
        [sys.executable, "benchmarks/sliding_window.py", "--tiny", f"--out_dir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "sliding_window_tiny.json").read_text())

    assert record["machine"]["cpu_model"] and record["config"]["tiny"]
    assert record["baseline"]["status"] == "ok" and record["baseline"]["peak_rss_bytes"] > 0
    assert record["check"]["ok"], record["check"]
    assert [c["T"] for c in record["cases"]] == [128, 512]
    for case in record["cases"]:
        assert case["status"] == "ok", case.get("reason")
        assert case["median_s"] > 0 and case["peak_rss_bytes"] > 0 and case["gflops"] > 0
    # The band: the same tiles per block at both lengths.
    trips = {(c["forward_tiles_per_block"], c["backward_tiles_per_block"])
             for c in record["cases"]}
    assert len(trips) == 1
    assert set(record["targets"]) == {"time_ratio_within_10pct_of_length_ratio",
                                      "peak_under_2GiB_at_longest"}
    md = (tmp_path / "sliding_window_tiny.md").read_text()
    assert "--tiny" in md and "| 512 | ok |" in md and record["machine"]["cpu_model"] in md
