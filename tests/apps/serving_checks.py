"""Run code against an exported SavedModel in a process that cannot import this project.

The project is installed in editable mode, so a plain subprocess could import
it; `run_isolated` installs an import hook that refuses `keras_attention` and
`apps` before the test's code runs. That is what TF Serving sees: TensorFlow,
and nothing of ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

_PRELUDE = """
import importlib.abc, sys
class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("keras_attention", "apps", "tests"):
            raise ImportError(f"{name} must not be importable where models are served")
        return None
sys.meta_path.insert(0, _Refuse())
sys.path = [p for p in sys.path if p not in ("", ".")]
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import json
import numpy as np
import tensorflow as tf
"""


def run_isolated(code: str, timeout: float = 300, **values) -> dict:
    """Runs `code` in a fresh interpreter that cannot import the project.

    `values` are available to the code as the dict `ARGS` (JSON-serialisable).
    The code must assign a JSON-serialisable dict to `RESULT`; it is returned.
    """
    script = (
        _PRELUDE
        + f"ARGS = json.loads({json.dumps(json.dumps(values))})\n"
        + textwrap.dedent(code)
        + "\nprint('@@RESULT@@' + json.dumps(RESULT))\n"
    )
    with tempfile.TemporaryDirectory() as cwd:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    if proc.returncode != 0:
        raise AssertionError(f"isolated process failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@") :])
    raise AssertionError(f"isolated process printed no result:\n{proc.stdout[-2000:]}")
