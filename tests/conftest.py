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

if keras.backend.backend() == "torch":
    import torch

    _tensor_array = torch.Tensor.__array__

    def _detached_array(self, dtype=None, copy=None):
        """The tests compare layer outputs with NumPy (`np.testing.assert_allclose(out, ...)`);
        torch refuses `.numpy()` on a tensor that requires grad (every output of a layer
        with trainable weights), so NumPy gets the detached values, as
        `keras.ops.convert_to_numpy` gives them."""
        array = _tensor_array(self.detach(), dtype)
        return array.copy() if copy else array

    torch.Tensor.__array__ = _detached_array


@pytest.fixture(autouse=True)
def _clean_keras_state():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


def pytest_collection_finish(session):
    """Starts the JAX and PyTorch runs of `tests/test_backends.py` in the background as
    soon as its test is selected, so they overlap the rest of the suite."""
    if session.config.option.collectonly:
        return
    from tests import _backend_runs

    if any(item.nodeid == _backend_runs.TEST for item in session.items):
        backends = _backend_runs.selected()
        if backends:
            _backend_runs.RUNS.start(backends)


def pytest_sessionfinish(session):
    from tests import _backend_runs

    _backend_runs.RUNS.stop()
