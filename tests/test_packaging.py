"""What `pip install keras-attention` brings: the library needs Keras only."""

from __future__ import annotations

import importlib.metadata
import re

import pytest


def _requirements() -> dict[str | None, set[str]]:
    """Installed requirement names by extra (None: the base install)."""
    out: dict[str | None, set[str]] = {}
    for line in importlib.metadata.requires("keras-attention") or []:
        name = re.match(r"[A-Za-z0-9_.\-]+", line).group(0).lower().replace("_", "-")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        out.setdefault(extra.group(1) if extra else None, set()).add(name)
    return out


def test_base_install_is_keras_and_numpy_only():
    requirements = _requirements()
    assert requirements[None] == {"keras", "numpy"}


def test_apps_and_test_extras_bring_tensorflow_and_the_tools():
    requirements = _requirements()
    assert {"tensorflow", "tensorflow-datasets", "tensorflow-serving-api"} <= requirements["apps"]
    assert "keras-attention" in requirements["test"] and "pytest" in requirements["test"]
    assert requirements["tensorflow"] == {"tensorflow"}


_WITHOUT_TENSORFLOW = r"""
import os
import sys
sys.modules["tensorflow"] = None  # from here on, `import tensorflow` fails as if not installed
os.environ["KERAS_BACKEND"] = "jax"
import keras
import keras_attention.decoding as decoding
def next_fn(tokens, cache, index):  # predicts (token + 1) % 5
    token = keras.ops.take(tokens, index, axis=1)
    return keras.ops.one_hot((token + 1) % 5, 5) * 3.0, cache
for sampler in (decoding.GreedySampler(), decoding.BeamSampler(2), decoding.TopKSampler(1)):
    out = sampler(next_fn, [[2]], max_length=5, end_token_id=0)
    print(type(sampler).__name__, keras.ops.convert_to_numpy(out).tolist())
try:
    decoding.greedy_search
except ImportError as err:
    print(err)
"""


@pytest.mark.slow
def test_decoding_without_tensorflow_says_what_to_install():
    """The samplers decode on JAX with TensorFlow blocked; the TF search says what to install."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TENSORFLOW], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("GreedySampler", "BeamSampler", "TopKSampler"):
        assert f"{name} [[2, 3, 4, 0, 0]]" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "pip install keras-attention[tensorflow]" in proc.stdout, proc.stderr[-2000:]
