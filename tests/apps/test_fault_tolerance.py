"""Deployment guarantees that need real processes: two-worker training, and a kill mid-run.

Both drive `python -m apps.sentiment.train` (the smallest application) on the
tiny fixture archive, so nothing is downloaded.
- Two workers on 127.0.0.1 with `--strategy=multi_worker` and their own
  `TF_CONFIG` must both finish, with identical weights (MultiWorkerMirrored
  all-reduces every gradient).
- A run killed with SIGKILL after an epoch's checkpoint must, when the same
  command is started again, resume from that checkpoint (BackupAndRestore) and
  train only the epochs that were left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import h5py
import numpy as np
import pytest

from apps.common import training
from tests.apps.sentiment import fixture_archive

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    sdist, _, _ = fixture_archive.make(str(tmp_path_factory.mktemp("vader") / "archive"))
    return sdist


def _command(archive, root, name, epochs, *extra):
    return fixture_archive.train_command(archive, root / f"data_{name}", root / f"run_{name}",
                                         root / f"export_{name}", epochs, *extra)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _weights(path):
    """Every array in a Keras `.weights.h5`, keyed by its path in the file."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def test_two_workers_train_to_identical_weights(archive, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            _command(archive, tmp_path, f"w{index}", 2, "--strategy=multi_worker"),
            cwd=REPO, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for index, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"worker {index} failed:\n{out[-4000:]}"
        assert "MultiWorkerMirroredStrategy" in out or "Multi-worker cluster" in out, out[-2000:]

    w0 = _weights(tmp_path / "run_w0" / training.FINAL_WEIGHTS)
    w1 = _weights(tmp_path / "run_w1" / training.FINAL_WEIGHTS)
    assert w0.keys() == w1.keys() and len(w0) > 4
    for name in w0:
        np.testing.assert_array_equal(w0[name], w1[name], err_msg=name)
    # Training moved the weights: the loss fell (so the workers agreed on more than the start).
    loss = json.loads((tmp_path / "run_w0" / "metrics.json").read_text())["history"]["loss"]
    assert len(loss) == 2 and loss[1] < loss[0]
    # Only the chief (worker 0) exports and writes metrics.
    assert (tmp_path / "export_w0").is_dir() and not (tmp_path / "export_w1").exists()
    assert (tmp_path / "run_w0" / "metrics.json").exists()
    assert not (tmp_path / "run_w1" / "metrics.json").exists()


def test_sigkill_mid_run_resumes_from_the_last_epoch(archive, tmp_path):
    epochs = 6
    # Subwords: a WordPiece vocabulary trained again may order its pieces otherwise, so the
    # resumed run must read back the killed run's (the weights' ids).
    command = _command(archive, tmp_path, "kill", epochs, "--config=vocabulary=subword",
                       "--config=model.vocab_size=700")
    backup = tmp_path / "run_kill" / "backup"
    vocabulary = tmp_path / "run_kill" / "subword" / "vocab.txt"
    proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    metadata = backup / "training_metadata.json"
    try:
        while not metadata.exists():
            assert proc.poll() is None, f"run ended before its first checkpoint:\n" \
                                        f"{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 600 s"
            time.sleep(0.05)
        time.sleep(0.2)  # into the next epoch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads(metadata.read_text())["epoch"]  # epochs finished before the kill
    assert 1 <= done < epochs
    assert not (tmp_path / "run_kill" / "metrics.json").exists()
    pieces = vocabulary.read_text(encoding="utf-8")

    again = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True,
                           timeout=600)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert f"Epoch {done + 1}/{epochs}" in out and "Epoch 1/" not in out, out[-3000:]
    metrics = json.loads((tmp_path / "run_kill" / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == epochs  # the killed run's epochs too
    assert not backup.exists()  # removed once training completed
    assert vocabulary.read_text(encoding="utf-8") == pieces
    assert "Resuming in" in out
