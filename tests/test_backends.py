"""The multi-backend claim, tested: the layer, ops and decoding tests, the doctests and the
docstrings' code blocks pass on JAX and on PyTorch too (the rest of the suite runs on
TensorFlow, in this process).

Each backend runs in a pytest of its own (Keras picks its backend once per process, from
KERAS_BACKEND). The paths are directories and globs, so new test files join by
themselves. KERAS_ATTENTION_TEST_BACKENDS (default "jax,torch") narrows the list.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "torch")


def backend_test_paths() -> list[str]:
    """What runs on every backend, relative to the repository root."""
    paths = ["tests/layers", "tests/decoding", "keras_attention"]
    paths += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_ops*.py"))
    paths.append("tests/test_docs.py::test_docstring_code_blocks")
    return [p for p in paths if (ROOT / p.split("::")[0]).exists()]


def _selected():
    chosen = os.environ.get("KERAS_ATTENTION_TEST_BACKENDS", ",".join(BACKENDS))
    return [b for b in BACKENDS if b in chosen.split(",")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_ops_decoding_and_doctests_pass_on(backend):
    if backend not in _selected():
        pytest.skip(f"KERAS_ATTENTION_TEST_BACKENDS leaves out {backend}")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *backend_test_paths()]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=40 * 60, check=False)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    print(f"{backend}: {time.monotonic() - start:.0f} s\n{tail}")
    assert proc.returncode == 0, f"{' '.join(command)} on {backend} failed:\n{tail}"


def test_backend_paths_exist_and_hold_tests():
    paths = backend_test_paths()
    assert "tests/layers" in paths and "keras_attention" in paths
    assert any(p.startswith("tests/test_ops") for p in paths)
