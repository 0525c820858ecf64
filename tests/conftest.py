"""Shared pytest set-up: a clean dtype policy and session per test.

The backend is KERAS_BACKEND's, TensorFlow by default (the root conftest.py sets the
defaults, for the doctests too); tests/test_backends.py reruns the layer, ops and
decoding tests on JAX and PyTorch.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
