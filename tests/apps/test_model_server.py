"""The real `tensorflow_model_server` answering our SavedModel over REST and gRPC.

Runs only where the binary is on PATH (it is not on PyPI or in Debian; see
README's serving section for the docker image); elsewhere it is skipped and
says so. No stand-in server: the warmup, signature and in-graph
tokenization checks that do not need the binary are in the apps' own tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from apps import serve_client, serving_config
from tests.apps.sentiment import fixture_archive

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = shutil.which("tensorflow_model_server")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    SERVER is None,
    reason="tensorflow_model_server is not on PATH (install it from TF Serving's apt "
    "repository or run the tensorflow/serving docker image to run this test)",
)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port, model, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}",
                                        timeout=2) as r:
                if b'"AVAILABLE"' in r.read():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{model} was not AVAILABLE on port {port} in time")


def test_server_answers_sentiment_over_rest_and_grpc(tmp_path):
    sdist, _, _ = fixture_archive.make(str(tmp_path / "archive"))
    export_base = tmp_path / "saved_models"
    trained = subprocess.run(
        fixture_archive.train_command(sdist, tmp_path / "data", tmp_path / "run",
                                      export_base / "sentiment"),
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    config = tmp_path / "models.config"
    config.write_text(serving_config.model_config_text(str(export_base), apps=["sentiment"]))
    grpc_port, rest_port = _free_port(), _free_port()
    server = subprocess.Popen(
        [SERVER, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}", "--enable_model_warmup=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_ready(rest_port, "sentiment", time.monotonic() + 120)
        inputs = serve_client.build_inputs("sentiment", texts=["good great film", "awful dull"])
        rest = serve_client.rest_predict("127.0.0.1", rest_port, "sentiment",
                                         "serving_default", inputs)
        grpc = serve_client.grpc_predict("127.0.0.1", grpc_port, "sentiment",
                                         "serving_default", inputs)
        for outputs in (rest, grpc):
            probabilities = np.asarray(outputs["probabilities"], dtype=np.float32)
            assert probabilities.shape == (2, 2)
            np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
            weights = np.asarray(outputs["attention_weights"], dtype=np.float32)
            assert weights.shape[0] == 2
        np.testing.assert_allclose(np.asarray(rest["probabilities"], np.float32),
                                   grpc["probabilities"], atol=1e-6)
        assert serve_client.describe("sentiment", grpc).count("label=") == 2
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
