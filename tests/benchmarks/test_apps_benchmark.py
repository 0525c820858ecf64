"""`benchmarks/apps.py` on a tiny sentiment run (training rows, serving latency): it cannot rot."""

import json
import os
import subprocess
import sys

import pytest

from tests.apps.sentiment import fixture_archive

# Trains and serves in subprocesses: a minute (runs by default).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_apps_benchmark_reports_throughput_target_and_latency(tmp_path):
    sdist, _, _ = fixture_archive.make(str(tmp_path / "archive"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    trained = subprocess.run(
        fixture_archive.train_command(sdist, tmp_path / "data", tmp_path / "runs" / "sentiment",
                                      tmp_path / "saved" / "sentiment", 2),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.apps", "--bench_apps=sentiment,captioning",
         f"--bench_runs_dir={tmp_path / 'runs'}", f"--bench_saved_models_dir={tmp_path / 'saved'}",
         "--repeats=5", f"--out_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "apps.json").read_text())
    assert record["machine"]["cores"] >= 1 and record["repeats"] == 5

    sentiment = record["apps"]["sentiment"]
    training = sentiment["training"]
    assert training["epochs"] == 2 and training["train_examples"] > 0
    assert training["examples_per_s"] > 0
    assert "time_to_target_s" in training  # a number, or None when not reached
    serving = sentiment["serving"]
    assert serving["status"] == "ok" and serving["input"] == "text"
    assert 0 < serving["p50_ms"] <= serving["p99_ms"] and serving["calls"] == 5
    assert serving["batch32_per_s"] > 0 and serving["export"].endswith(os.sep + "1")
    # An app with neither a run nor an export is reported, not dropped.
    assert record["apps"]["captioning"] == {"serving": {"status": "no export"}}
    markdown = (tmp_path / "out" / "apps.md").read_text()
    assert "| sentiment |" in markdown and "| captioning |" in markdown
