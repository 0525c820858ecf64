"""Defaults for every test and doctest: the TensorFlow backend unless KERAS_BACKEND names
another (tests/test_backends.py runs the backend-agnostic tests on JAX and PyTorch), quiet
TensorFlow logs. Here, not in tests/conftest.py, so that the doctests of keras_attention/
get them too."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_report_header(config):
    return f"keras backend: {os.environ['KERAS_BACKEND']}"
