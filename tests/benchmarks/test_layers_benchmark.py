"""`benchmarks/layers.py --tiny` runs end to end and writes every case, so it cannot rot."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMPLS = {
    "multi_head": ("keras_mha", "mha", "mha_chunked"),
    "dot_product": ("keras_attention", "dot_product"),
    "additive": ("keras_additive", "bahdanau"),
}
REFERENCES = {"keras_mha", "keras_attention", "keras_additive"}
PASSES = ("forward", "backward")
MODES = ("eager", "function", "xla")


def _run(tmp_path, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    proc = subprocess.run(
        [sys.executable, "benchmarks/layers.py", "--tiny", f"--out_dir={tmp_path}", *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / "layers_tiny.json").read_text())


@pytest.mark.slow
def test_tiny_run_writes_every_case_with_times_memory_and_ratios(tmp_path):
    record = _run(tmp_path)

    machine = record["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1
    assert machine["tensorflow"] and machine["keras"]
    assert len(machine["load_average_at_start"]) == 3
    assert record["gemm"]["gflops"] > 0
    assert record["baseline_rss_bytes"] > 0

    # --tiny: every mode for multi-head attention, tf.function for the others.
    expected = {
        (family, impl, p, m)
        for family, impls in IMPLS.items()
        for impl in impls
        for p in PASSES
        for m in (MODES if family == "multi_head" else ("function",))
    }
    rows = {(c["family"], c["impl"], c["pass"], c["mode"]): c for c in record["cases"]}
    assert set(rows) == expected and len(record["cases"]) == len(expected)
    for key, row in rows.items():
        assert row["status"] == "ok", (key, row.get("reason"))
        assert row["median_s"] > 0 and row["n_timed"] >= 1, key
        assert row["peak_rss_bytes"] > row["peak_rss_over_baseline_bytes"], key
        if key[0] != "additive":
            assert row["gflops"] > 0 and row["gemm_share"] > 0, key
        # Short cases: no GEMM in their own process.
        assert "gemm_in_process_gflops" not in row, key
        if key[1] not in REFERENCES:
            assert row["ratio_vs_reference"] > 0, key

    checked = {(c["impl"], c["reference"]) for c in record["checks"] if c["ok"]}
    assert checked == {("mha", "keras_mha"), ("mha_chunked", "keras_mha"),
                       ("dot_product", "keras_attention")}
    assert all(c["ok"] for c in record["checks"])
    assert "mha_not_slower_than_keras_T<=2048" in record["targets"]

    md = (tmp_path / "layers_tiny.md").read_text()
    for impls in IMPLS.values():
        for impl in impls:
            assert f"| {impl} |" in md
    assert "GFLOP/s" in md and machine["cpu_model"] in md and "--tiny" in md


@pytest.mark.slow
def test_long_cases_measure_the_reference_in_their_own_process(tmp_path):
    record = _run(tmp_path, "--long_from=16", "--cases=keras_mha,mha_chunked",
                  "--passes=backward")
    rows = {c["impl"]: c for c in record["cases"]}
    assert set(rows) == {"keras_mha", "mha_chunked"}
    for name, row in rows.items():
        assert row["mode"] == "function", name  # --long_modes: function only
        assert row["gemm_in_process_gflops"] > 0, name
        expected = row["gflops"] / row["gemm_in_process_gflops"]
        assert abs(row["gemm_share_in_process"] - expected) < 1e-9, name
    md = (tmp_path / "layers_tiny.md").read_text()
    assert "in-process)" in md
