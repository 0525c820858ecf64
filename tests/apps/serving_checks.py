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

from benchmarks._common import ISOLATION_PRELUDE


def run_isolated(code: str, timeout: float = 300, **values) -> dict:
    """Runs `code` in a fresh interpreter that cannot import the project.

    `values` are available to the code as the dict `ARGS` (JSON-serialisable).
    The code must assign a JSON-serialisable dict to `RESULT`; it is returned.
    """
    script = (
        ISOLATION_PRELUDE
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


_REPLAY = """
from tensorflow_serving.apis import prediction_log_pb2
path = ARGS["path"]
loaded = tf.saved_model.load(path)
answered = []
warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
for record in tf.data.TFRecordDataset(warmup):
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    fn = loaded.signatures[request.model_spec.signature_name]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    outputs = fn(**inputs)
    batch = int(next(iter(inputs.values())).shape[0])
    for name, value in outputs.items():
        value = value.numpy()
        assert value.shape[:1] == (batch,), (name, value.shape, batch)
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), name
    answered.append([request.model_spec.signature_name, sorted(outputs)])
RESULT = {"answered": answered}
"""


def replay_warmup(export_path: str) -> list:
    """Loads the export where the project cannot be imported and answers every warmup record.

    Returns `[signature_name, sorted output names]` per record; fails if the file
    is missing, a signature is unknown, or an output is not batched and finite.
    """
    answered = run_isolated(_REPLAY, path=export_path)["answered"]
    assert answered, f"no warmup requests in {export_path}"
    return answered
