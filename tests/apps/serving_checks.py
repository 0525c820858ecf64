"""Serve an exported SavedModel as TF Serving does, where this project cannot be imported.

The project is installed in editable mode, so a plain subprocess could import
it; `run_isolated` installs an import hook that refuses `keras_attention` and
`apps` before the test's code runs. That is what TF Serving sees: TensorFlow,
and nothing of ours.

`replay_warmup` answers every warmup record of an export with every loader a
server uses, and requires the same answers from each:

- TF2's `tf.saved_model.load` (the object graph);
- a TF1 `Session` through `tf.compat.v1.saved_model.loader.load`, which restores
  variables through the SavedModel's saver, as TF Serving does;
- `saved_model_cli run` on every signature;
- `tf_serving_loader.c`, compiled against the TensorFlow wheel's C API, which
  calls `tensorflow::LoadSavedModel`, the loader TF Serving links.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import struct
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np

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

def encode(value):
    if value.dtype.kind in "SOU":
        return {"strings": [bytes(v).hex() for v in value.reshape(-1)], "shape": value.shape}
    return {"values": value.astype(np.float64).reshape(-1).tolist(), "shape": value.shape,
            "dtype": str(value.dtype)}

path = ARGS["path"]
records = []
warmup = os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
for record in tf.data.TFRecordDataset(warmup):
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    records.append((request.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))

# TF2: the object graph.
loaded = tf.saved_model.load(path)
tf2 = []
for name, inputs in records:
    outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    tf2.append({k: v.numpy() for k, v in outputs.items()})
del loaded

# TF1: a Session whose variables the SavedModel's saver restores (TF Serving's way).
graph = tf.Graph()
tf1 = []
with tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    for name, inputs in records:
        signature = meta.signature_def[name]
        feed = {signature.inputs[k].name: v for k, v in inputs.items()}
        keys = sorted(signature.outputs)
        values = session.run([signature.outputs[k].name for k in keys], feed)
        tf1.append(dict(zip(keys, values)))

RESULT = {
    "signatures": [name for name, _ in records],
    "tf2": [{k: encode(v) for k, v in out.items()} for out in tf2],
    "tf1": [{k: encode(v) for k, v in out.items()} for out in tf1],
}
"""


def _decode(encoded: dict) -> np.ndarray:
    shape = tuple(encoded["shape"])
    if "strings" in encoded:
        items = [bytes.fromhex(v) for v in encoded["strings"]]
        return np.array(items, dtype=object).reshape(shape)
    return np.array(encoded["values"], dtype=encoded["dtype"]).reshape(shape)


def assert_same_outputs(expected: dict, got: dict, where: str) -> None:
    """The same output names, shapes and values (floats to 1e-4), or an AssertionError."""
    assert sorted(expected) == sorted(got), (where, sorted(expected), sorted(got))
    for key, want in expected.items():
        have = got[key]
        assert want.shape == have.shape, (where, key, want.shape, have.shape)
        if want.dtype == object:
            assert want.tolist() == have.tolist(), (where, key)
        else:
            np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4, err_msg=f"{where} {key}")


def replay_warmup(export_path: str) -> list:
    """Answers every warmup record with TF2, a TF1 Session, saved_model_cli and the C loader.

    Every signature must have a record; every output must be batched and, for
    floats, finite; all loaders must give the same outputs. Returns
    `[signature_name, sorted output names]` per record. The loaders run side by
    side (each is its own process).
    """
    from apps.common.export import read_warmup_requests

    records = read_warmup_requests(export_path)
    names = tensor_names(export_path)
    signatures = [name for name, _ in records]
    inputs = [request for _, request in records]
    assert signatures, f"no warmup requests in {export_path}"
    assert set(signatures) == set(names), (
        "every signature needs a warmup request", signatures, sorted(names))
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        isolated = pool.submit(run_isolated, _REPLAY, path=export_path)
        cli = pool.submit(saved_model_cli_run, export_path, signatures, inputs)
        c_loader = pool.submit(c_loader_run, export_path, names, signatures, inputs)
        result, cli, c_outputs = isolated.result(), cli.result(), c_loader.result()
    assert result["signatures"] == signatures
    tf2 = [{k: _decode(v) for k, v in out.items()} for out in result["tf2"]]
    for i, (name, outputs) in enumerate(zip(signatures, tf2, strict=True)):
        batch = next(iter(inputs[i].values())).shape[0]
        for key, value in outputs.items():
            assert value.shape[:1] == (batch,), (name, key, value.shape, batch)
            if value.dtype != object:
                assert np.isfinite(value).all(), (name, key)
        tf1 = {k: _decode(v) for k, v in result["tf1"][i].items()}
        assert_same_outputs(outputs, tf1, f"TF1 session, record {i} ({name})")
        assert_same_outputs(outputs, cli[i], f"saved_model_cli run, record {i} ({name})")
        assert_same_outputs(outputs, c_outputs[i], f"C LoadSavedModel, record {i} ({name})")
    return [[name, sorted(out)] for name, out in zip(signatures, tf2, strict=True)]


def tensor_names(export_path: str) -> dict:
    """`{signature: {"inputs": {key: tensor name}, "outputs": {...}}}` from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return {
        key: {"inputs": {k: v.name for k, v in sig.inputs.items()},
              "outputs": {k: v.name for k, v in sig.outputs.items()}}
        for key, sig in proto.meta_graphs[0].signature_def.items() if not key.startswith("__")
    }


def saved_model_cli_run(export_path: str, signatures: list, inputs: list) -> list:
    """`saved_model_cli run` on each request; returns its outputs (read back from .npy)."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, request) in enumerate(zip(signatures, inputs, strict=True)):
            args = []
            for key, value in request.items():
                file = os.path.join(tmp, f"{i}_{key}.npy")
                np.save(file, value, allow_pickle=True)
                args.append(f"{key}={file}")
            out_dir = os.path.join(tmp, f"out{i}")
            proc = subprocess.run(
                [cli, "run", "--dir", export_path, "--tag_set", "serve", "--signature_def",
                 name, "--inputs", ";".join(args), "--outdir", out_dir],
                capture_output=True, text=True, timeout=300, check=False,
            )
            assert proc.returncode == 0, f"saved_model_cli run {name}:\n{proc.stderr[-3000:]}"
            results.append({
                file[: -len(".npy")]: np.load(os.path.join(out_dir, file), allow_pickle=True)
                for file in os.listdir(out_dir)
            })
    return results


_LOADER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_serving_loader.c")
_TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}
_TF_STRING = 7


def _tensorflow_dir() -> str:
    return os.path.join(sysconfig.get_paths()["purelib"], "tensorflow")


def compile_c_loader() -> str:
    """Compiles `tf_serving_loader.c` once (cached by source and wheel); returns the binary."""
    tf_dir = _tensorflow_dir()
    with open(_LOADER_SOURCE, "rb") as f:
        key = hashlib.sha256(f.read() + tf_dir.encode()).hexdigest()[:16]
    binary = os.path.join(tempfile.gettempdir(), f"keras_attention_tf_serving_loader_{key}")
    if not os.path.exists(binary):
        tmp = f"{binary}.{os.getpid()}"
        proc = subprocess.run(
            ["gcc", "-O1", "-o", tmp, _LOADER_SOURCE, f"-I{tf_dir}/include", f"-L{tf_dir}",
             "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
             f"-Wl,-rpath,{tf_dir}"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        assert proc.returncode == 0, f"compiling the C loader failed:\n{proc.stderr[-3000:]}"
        os.replace(tmp, binary)
    return binary


def _packed(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def c_loader_run(export_path: str, tensor_names: dict, signatures: list, inputs: list) -> list:
    """Answers each request through `tensorflow::LoadSavedModel` (the C API), no Python TF.

    Returns one `{output key: np.ndarray}` per request (strings as object arrays).
    """
    import tensorflow as tf

    binary = compile_c_loader()
    blob = struct.pack("<I", len(signatures))
    keys_per_request = []
    for name, request in zip(signatures, inputs, strict=True):
        names = tensor_names[name]
        blob += struct.pack("<I", len(request))
        for key, value in request.items():
            proto = tf.make_tensor_proto(value).SerializeToString()
            blob += _packed(names["inputs"][key].encode()) + _packed(proto)
        keys = sorted(names["outputs"])
        keys_per_request.append(keys)
        blob += struct.pack("<I", len(keys))
        for key in keys:
            blob += _packed(names["outputs"][key].encode())
    with tempfile.TemporaryDirectory() as tmp:
        requests, outputs = os.path.join(tmp, "requests"), os.path.join(tmp, "outputs")
        with open(requests, "wb") as f:
            f.write(blob)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        proc = subprocess.run([binary, export_path, requests, outputs], capture_output=True,
                              text=True, timeout=300, check=False, env=env)
        assert proc.returncode == 0, f"C LoadSavedModel ({proc.returncode}):\n{proc.stderr[-3000:]}"
        with open(outputs, "rb") as f:
            data = f.read()
    return _read_c_outputs(data, keys_per_request)


def _read_c_outputs(data: bytes, keys_per_request: list) -> list:
    pos, results = 0, []

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    for keys in keys_per_request:
        out = {}
        for key in keys:
            dtype, rank = take("<II")
            shape = take(f"<{rank}q") if rank else ()
            count = int(np.prod(shape)) if rank else 1
            if dtype == _TF_STRING:
                items = []
                for _ in range(count):
                    (n,) = take("<Q")
                    items.append(data[pos : pos + n])
                    pos += n
                out[key] = np.array(items, dtype=object).reshape(shape)
            else:
                (n,) = take("<Q")
                out[key] = np.frombuffer(data[pos : pos + n], _TF_DTYPES[dtype]).reshape(shape)
                pos += n
        results.append(out)
    assert pos == len(data), "the C loader wrote more than was asked for"
    return results
