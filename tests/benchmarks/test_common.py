"""`benchmarks/_common.py`: timing, isolated runs that report memory, time-outs and OOM."""

import json
import statistics
import subprocess
import sys
import textwrap

import pytest

from benchmarks import _common


def test_time_calls_excludes_the_warm_up_and_takes_the_median():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            import time

            time.sleep(0.2)  # the warm-up (tracing, compilation) is slow

    timing = _common.time_calls(fn, repeats=3, warmup=1)
    assert len(calls) == 4 and timing["n"] == 3
    assert timing["median_s"] < 0.1 and timing["warmup_s"][0] >= 0.2
    assert not timing["first_call"]


def test_time_calls_takes_a_long_first_call_as_the_measurement():
    import time

    timing = _common.time_calls(lambda: time.sleep(0.05), repeats=5, single_call_s=0.01)
    assert timing["n"] == 1 and timing["first_call"] and timing["median_s"] >= 0.05


def _python(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_subprocess_reports_peak_memory_and_output():
    res = _common.run_subprocess(
        _python("x = bytearray(300 * 2**20)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
                "print('done')"),
        timeout_s=60,
    )
    assert res.status == "ok" and res.stdout.strip() == "done"
    assert res.peak_rss_bytes > 300 * _common.MIB


def test_subprocess_past_the_memory_cap_is_reported_as_out_of_memory():
    code = """
        import time
        x = bytearray(600 * 2**20)
        for i in range(0, len(x), 4096): x[i] = 1
        time.sleep(30)
    """
    res = _common.run_subprocess(_python(code), timeout_s=60, mem_cap_bytes=200 * _common.MIB)
    assert res.status == "oom" and "cap" in res.reason
    assert res.wall_s < 30


def test_memory_error_and_timeout_are_reported_as_such():
    oom = _common.run_subprocess(_python("raise MemoryError('no room')"), timeout_s=60)
    assert oom.status == "oom"
    slow = _common.run_subprocess(_python("import time; time.sleep(30)"), timeout_s=1)
    assert slow.status == "timeout" and slow.wall_s < 20
    bad = _common.run_subprocess(_python("raise ValueError('bad input')"), timeout_s=60)
    assert bad.status == "error" and "bad input" in bad.reason


def test_forked_runs_return_values_and_classify_failures():
    # In a fresh interpreter, so the fork happens in a process without threads.
    code = """
        import json, sys
        from benchmarks import _common

        def grow():
            x = bytearray(500 * 2**20)
            for i in range(0, len(x), 4096): x[i] = 1
            import time; time.sleep(30)

        def fail():
            raise MemoryError("no room")

        ok = _common.run_forked(lambda n: n * 2, 21, timeout_s=30)
        cap = _common.run_forked(grow, timeout_s=30, mem_cap_bytes=150 * 2**20)
        err = _common.run_forked(fail, timeout_s=30)
        print(json.dumps([ok.status, ok.value, ok.peak_rss_bytes > 0, cap.status,
                          err.status, err.reason.splitlines()[0]]))
    """
    root = _common.RESULTS_DIR.rsplit("/benchmarks/", 1)[0]
    out = subprocess.run(_python(code), cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ok, value, has_peak, cap, err, reason = json.loads(out.stdout.strip().splitlines()[-1])
    assert (ok, value, has_peak) == ("ok", 42, True)
    assert cap == "oom"
    assert err == "oom" and "no room" in reason


def test_results_are_written_as_json_and_markdown(tmp_path):
    paths = _common.write_results("demo", {"a": 1}, "| x |\n|---|\n| 1 |", str(tmp_path))
    assert json.loads(open(paths[0]).read()) == {"a": 1}
    assert open(paths[1]).read().startswith("| x |")
    info = _common.machine_info()
    assert info["cores"] >= 1 and len(info["load_average_at_start"]) == 3
    assert "cores" in _common.machine_line(info)


def test_cpu_kind_names_the_widest_vector_extension():
    epyc = {"cpu_model": "AMD EPYC"}
    assert _common.cpu_kind({**epyc, "cpu_flags": ["avx2", "fma"]}) == "AMD EPYC (AVX2)"
    assert (_common.cpu_kind({**epyc, "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]})
            == "AMD EPYC (AVX-512)")
    assert _common.cpu_kind({"cpu_model": "Xeon", "cpu_flags": ["avx512f", "amx_tile"]}) \
        == "Xeon (AMX)"
    assert _common.cpu_kind(epyc) == "AMD EPYC"  # flags unknown (an old record)
    assert _common.machine_line({**epyc, "cpu_flags": ["avx2"]}).startswith("AMD EPYC (AVX2);")


def test_paired_ratio_interval_brackets_the_median_of_round_ratios():
    ours = [1.0, 1.1, 0.9, 1.2, 1.0, 1.05, 0.95]
    ref = [1.0] * 7
    median, low, high = _common.paired_ratio_interval(ours, ref, seed=1)
    assert median == 1.0
    assert min(ours) <= low <= median <= high <= max(ours)
    # A steady 20% slowdown under 2x load swings: the pairing cancels the swings.
    load = [1.0, 2.0, 1.0, 2.0, 1.5]
    median, low, high = _common.paired_ratio_interval([1.2 * x for x in load], load)
    assert median == low == high == 1.2
    assert _common.paired_ratio_interval([1.0, 2.0], [1.0, 2.0]) is None


def test_bootstrap_interval_of_a_mean():
    values = [0.01, -0.02, 0.03, 0.0, 0.02]
    mean, low, high = _common.bootstrap_interval(values, statistics.fmean, seed=3)
    assert mean == pytest.approx(statistics.fmean(values))
    assert min(values) <= low < mean < high <= max(values)
    assert _common.bootstrap_interval([1.0, 2.0]) is None


def test_recorded_runs_resume_only_a_record_of_the_same_settings(tmp_path):
    identity = {"train_config": {"batch_size": 64, "widths": (16, 32)}}
    runs = [{"variant": "plain", "seed": 1, "test_accuracy": 0.9}]
    path = tmp_path / "ablation.json"
    assert _common.recorded_runs(str(path), identity) == []  # no file yet
    _common.write_results("ablation", {"meta": {"identity": identity}, "runs": runs}, "t",
                          str(tmp_path))
    # Tuples come back from JSON as lists: still the same settings.
    assert _common.recorded_runs(str(path), identity) == runs
    other = {"train_config": {"batch_size": 32, "widths": (16, 32)}}
    assert _common.recorded_runs(str(path), other) == []
    _common.write_results("ablation", {"meta": {}, "runs": runs}, "t", str(tmp_path))
    assert _common.recorded_runs(str(path), identity) == []  # written without an identity


def test_recorded_runs_name_a_file_that_is_not_a_record_and_keep_it(tmp_path):
    path = tmp_path / "ablation.json"
    for text in ("{not json", "[1, 2]", '{"meta": {}}'):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"ablation\.json is not a benchmark record"):
            _common.recorded_runs(str(path), {})
        assert path.read_text() == text
