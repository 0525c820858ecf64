"""The multi-backend claim, tested: the layer, ops and decoding tests, the doctests and the
docstrings' code blocks pass on JAX and on PyTorch too (the rest of the suite runs on
TensorFlow, in this process).

The runs start in the background as soon as collection selects the test below
(`tests/conftest.py`, `tests/_backend_runs.py`), so they share the machine with the
rest of the suite instead of adding to its time; the test waits for them.
"""

from __future__ import annotations

import pytest

from tests import _backend_runs


@pytest.mark.slow
def test_layers_ops_decoding_and_doctests_pass_on_every_backend():
    backends = _backend_runs.selected()
    if not backends:
        pytest.skip(f"KERAS_ATTENTION_TEST_BACKENDS selects none of {_backend_runs.BACKENDS}")
    _backend_runs.RUNS.start(backends)  # started at collection; here when run otherwise
    results = _backend_runs.RUNS.wait(timeout=len(backends) * _backend_runs.TIMEOUT_S + 60)
    for backend, result in results.items():
        print(f"{backend}: {result['seconds']:.0f} s, exit {result['code']}\n{result['tail']}")
    missing = [b for b in backends if b not in results]
    assert not missing, f"no result from the runs on {missing}"
    failed = {b: r for b, r in results.items() if r["code"] != 0}
    command = " ".join(_backend_runs.command())
    assert not failed, "\n".join(
        f"KERAS_BACKEND={b} XLA_FLAGS='{_backend_runs.environment(b).get('XLA_FLAGS', '')}' "
        f"{command} failed ({r['code']}):\n{r['tail']}" for b, r in failed.items())


def test_backend_paths_exist_and_hold_tests():
    paths = _backend_runs.test_paths()
    assert "tests/layers" in paths and "keras_attention" in paths
    assert "tests/test_ops.py" in paths
    assert _backend_runs.TEST.split("::")[0] == "tests/test_backends.py"
    assert _backend_runs.TEST.split("::")[1] in globals()


def test_jax_gets_the_fast_compile_flags_after_the_users():
    env = _backend_runs.environment("jax", {"XLA_FLAGS": "--xla_dump_to=/tmp/x", "A": "1"})
    assert env["KERAS_BACKEND"] == "jax" and env["A"] == "1"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + _backend_runs.FAST_COMPILE_XLA_FLAGS["jax"]
    assert _backend_runs.environment("jax", {})["XLA_FLAGS"] == (
        _backend_runs.FAST_COMPILE_XLA_FLAGS["jax"])
    assert "XLA_FLAGS" not in _backend_runs.environment("torch", {})
