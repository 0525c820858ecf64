"""A small TF Serving client: sends each application a request over REST or gRPC
and prints the answer with its attention.

Usage (with a server running, see README "Serving"):
    python -m apps.serve_client --app=sentiment --text="a gripping, beautifully acted film"
    python -m apps.serve_client --app=translation --text="Download failed" --protocol=grpc
    python -m apps.serve_client --app=image_classification --file=digit.png
    python -m apps.serve_client --app=captioning --file=scene.png
    python -m apps.serve_client --app=keyword_spotting --file=yes.wav

It imports nothing of this project's models: only the request formats, which are
the SavedModels' documented signatures.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
from absl import app, flags

# app -> (signature input name, kind of input)
INPUTS = {
    "sentiment": ("text", "text"),
    "translation": ("text", "text"),
    "image_classification": ("image_bytes", "file"),
    "captioning": ("image_bytes", "file"),
    "keyword_spotting": ("audio_wav", "file"),
}

_APP = flags.DEFINE_enum("app", "sentiment", list(INPUTS), "Which model to ask.")
_TEXT = flags.DEFINE_multi_string("text", None, "Text input(s) for the text apps.")
_FILE = flags.DEFINE_multi_string("file", None, "Image or WAV file(s) for the other apps.")
_PROTOCOL = flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "How to talk to the server.")
_HOST = flags.DEFINE_string("host", "localhost", "Server host.")
_REST_PORT = flags.DEFINE_integer("rest_port", 8501, "REST port (--rest_api_port).")
_GRPC_PORT = flags.DEFINE_integer("grpc_port", 8500, "gRPC port (--port).")
_SIGNATURE = flags.DEFINE_string("signature", "serving_default", "Signature to call.")
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Seconds to wait for an answer.")


def build_inputs(app_name: str, texts=None, files=None) -> dict:
    """The `{input_name: list}` a signature takes (bytes for files, str for text)."""
    name, kind = INPUTS[app_name]
    if kind == "text":
        if not texts:
            raise ValueError(f"--app={app_name} needs --text.")
        return {name: list(texts)}
    if not files:
        raise ValueError(f"--app={app_name} needs --file (an image or WAV file).")
    values = []
    for path in files:
        with open(path, "rb") as f:
            values.append(f.read())
    return {name: values}


def rest_predict(host, port, model, signature, inputs, timeout=30.0) -> dict:
    """POST /v1/models/<model>:predict in the columnar ("inputs") format."""
    payload = {
        name: [
            {"b64": base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v
            for v in values
        ]
        for name, values in inputs.items()
    }
    body = json.dumps({"signature_name": signature, "inputs": payload}).encode("utf-8")
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/models/{model}:predict", data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["outputs"]
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{model}: HTTP {err.code}: {err.read().decode(errors='replace')}") \
            from err


def grpc_predict(host, port, model, signature, inputs, timeout=30.0) -> dict:
    """PredictionService.Predict over gRPC; returns numpy arrays (bytes for strings)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def _text(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, dict) and "b64" in x:
        return base64.b64decode(x["b64"]).decode("utf-8", errors="replace")
    return str(x)


def describe(app_name: str, outputs: dict) -> str:
    """Human-readable answer, with the attention aligned to what it attends to."""
    lines = []
    batch = len(next(iter(outputs.values())))
    for i in range(batch):
        row = {k: v[i] for k, v in outputs.items()}
        if app_name == "sentiment":
            probs = np.asarray(row["probabilities"], dtype=float)
            line = f"label={_text(row['label'])} p(positive)={probs[-1]:.3f}"
            if "lexicon_score" in row:  # models with the VADER lexicon's prior
                line += f" lexicon_score={float(np.asarray(row['lexicon_score'])):+.3f}"
            lines.append(line)
            pairs = [
                (_text(t), float(w))
                for t, w in zip(row["tokens"], row["attention_weights"], strict=False)
                if _text(t)
            ]
            lines.append("  " + " ".join(f"{t}[{w:.2f}]" for t, w in pairs))
        elif app_name == "translation":
            lines.append(f"translation: {_text(row['translation'])}")
            weights = np.asarray(row["attention_weights"], dtype=float)
            src = [_text(t) for t in row["source_tokens"]]
            tgt = [_text(t) for t in row["target_tokens"]]
            for t, w in zip(tgt, weights, strict=False):
                if t:
                    lines.append(f"  {t:>15} <- {src[int(np.argmax(w))]} ({w.max():.2f})")
        elif app_name == "captioning":
            lines.append(f"caption: {_text(row['caption'])}")
            weights = np.asarray(row["attention_weights"], dtype=float)
            for t, w in zip(row["tokens"], weights, strict=False):
                if _text(t):
                    y, x = np.unravel_index(int(np.argmax(w)), w.shape)
                    lines.append(f"  {_text(t):>12}: peak attention at cell (row {y}, col {x})")
        else:
            probs = np.asarray(row["probabilities"], dtype=float)
            lines.append(f"label={_text(row['label'])} p={probs.max():.3f}")
            key = "attention_map" if "attention_map" in row else "attention_weights"
            weights = np.asarray(row[key], dtype=float)
            peak = np.unravel_index(int(np.argmax(weights)), weights.shape)
            lines.append(f"  {key} shape={weights.shape} peak at {tuple(int(p) for p in peak)}")
    return "\n".join(lines)


def main(argv):
    del argv
    inputs = build_inputs(_APP.value, _TEXT.value, _FILE.value)
    if _PROTOCOL.value == "rest":
        outputs = rest_predict(_HOST.value, _REST_PORT.value, _APP.value, _SIGNATURE.value,
                               inputs, _TIMEOUT.value)
    else:
        outputs = grpc_predict(_HOST.value, _GRPC_PORT.value, _APP.value, _SIGNATURE.value,
                               inputs, _TIMEOUT.value)
    print(describe(_APP.value, outputs))


if __name__ == "__main__":
    app.run(main)
