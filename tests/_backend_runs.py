"""The backend-agnostic tests on JAX and PyTorch, run in the background of the suite.

Keras picks its backend once per process, so each backend runs in a pytest process
of its own. The main suite spends most of its time on one core (Python, subprocesses,
small ops); these runs take the other. `tests/conftest.py` starts them, one backend
after the other, as soon as collection has selected `tests/test_backends.py`'s test,
and that test waits for them and reports. KERAS_ATTENTION_TEST_BACKENDS (default
"jax,torch") narrows the list.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = ("jax", "torch")
TEST = "tests/test_backends.py::test_layers_ops_decoding_and_doctests_pass_on_every_backend"
# Each backend's whole run; a run past it is killed and reported as a failure.
TIMEOUT_S = 45 * 60
# JAX compiles every eager op for every new shape, and much of its run is that compiling:
# XLA's cheapest CPU code generation shortens it (README says by how much; the tests keep
# their tolerances). The flags come after any the user set, so they win.
FAST_COMPILE_XLA_FLAGS = {
    "jax": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}


def test_paths() -> list[str]:
    """What runs on every backend, relative to the repository root.

    The layer, decoding and ops tests, the doctests and the docstrings' code blocks.
    Left to TensorFlow: `tests/test_ops_variants.py` (the same op's masks, windows,
    biases and tilings against a NumPy oracle: backend-agnostic `keras.ops` code
    that `tests/test_ops.py` already exercises per backend) and the tests marked
    slow (XLA compilation with gradients, long decoding loops).
    """
    paths = ["tests/layers", "tests/decoding", "keras_attention", "tests/test_ops.py",
             "tests/test_docs.py::test_docstring_code_blocks"]
    return [p for p in paths if (ROOT / p.split("::")[0]).exists()]


def command() -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
            *test_paths()]


def environment(backend: str, base: dict | None = None) -> dict[str, str]:
    """The environment of `backend`'s run: `base` (default: this process's) with the
    backend chosen and, for JAX, `FAST_COMPILE_XLA_FLAGS` after the user's XLA_FLAGS."""
    env = dict(os.environ if base is None else base, KERAS_BACKEND=backend,
               TF_CPP_MIN_LOG_LEVEL="2")
    if backend in FAST_COMPILE_XLA_FLAGS:
        env["XLA_FLAGS"] = " ".join(
            filter(None, [env.get("XLA_FLAGS"), FAST_COMPILE_XLA_FLAGS[backend]]))
    return env


def selected() -> list[str]:
    chosen = os.environ.get("KERAS_ATTENTION_TEST_BACKENDS", ",".join(BACKENDS))
    return [b for b in BACKENDS if b in chosen.split(",")]


class BackendRuns:
    """One background thread running each selected backend's pytest in turn."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self.thread: threading.Thread | None = None
        self.current: subprocess.Popen | None = None
        self.stopped = False

    def start(self, backends) -> None:
        if self.thread is not None:
            return
        self.log_dir = tempfile.mkdtemp(prefix="keras_attention_backends_")
        self.thread = threading.Thread(target=self._run_all, args=(list(backends),),
                                       daemon=True, name="backend-tests")
        self.thread.start()

    def _run_all(self, backends) -> None:
        for backend in backends:
            if self.stopped:
                return
            log_path = os.path.join(self.log_dir, f"{backend}.log")
            env = environment(backend)
            start = time.monotonic()
            with open(log_path, "w") as log:
                self.current = subprocess.Popen(command(), cwd=ROOT, env=env, stdout=log,
                                                stderr=subprocess.STDOUT, text=True)
                try:
                    code = self.current.wait(timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.current.kill()
                    self.current.wait()
                    code = f"killed after {TIMEOUT_S} s"
            with open(log_path) as log:
                tail = log.read()[-6000:]
            self.results[backend] = {"code": code, "seconds": time.monotonic() - start,
                                     "tail": tail}

    def wait(self, timeout: float) -> dict[str, dict]:
        """The results so far, after waiting up to `timeout` s for the runs to end."""
        if self.thread is not None:
            self.thread.join(timeout)
        return dict(self.results)

    def stop(self) -> None:
        self.stopped = True
        proc = self.current
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


RUNS = BackendRuns()
