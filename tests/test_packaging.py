"""What `pip install keras-attention` brings: the library needs Keras only."""

from __future__ import annotations

import importlib.metadata
import re


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
import sys
import keras_attention  # the layers and ops (here on the TensorFlow backend)
sys.modules["tensorflow"] = None  # from here on, `import tensorflow` fails as if not installed
try:
    import keras_attention.decoding
except ImportError as err:
    print(err)
"""


def test_decoding_without_tensorflow_says_what_to_install():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TENSORFLOW], capture_output=True,
                          text=True, timeout=300, check=False)
    assert "pip install keras-attention[tensorflow]" in proc.stdout, proc.stderr[-2000:]
