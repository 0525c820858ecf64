"""One tiny end-to-end run (fixture digits): train, evaluate, plot, export, and serve the
export from a process that cannot import the project."""

import base64
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from apps.image_classification import data, train
from tests.apps.image_classification.fixtures import write_fixture_csv
from tests.apps.serving_checks import replay_warmup, run_isolated


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def _huge_png_header():
    body = b"IHDR" + struct.pack(">IIBBBBB", 70_000, 70_000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I",
                                                                            zlib.crc32(body))
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ic")
    config = train.TrainConfig(
        variant="cbam", data_dir=str(root / "data"), model_dir=str(root / "run"),
        export_dir=str(root / "export"), epochs=1, batch_size=16, quick=True, plots=2,
        verbose=0, run_eagerly=True,
        data_config=data.ClutteredDigitsConfig(name="tiny", train_canvases=2, eval_canvases=1),
        builder_kwargs={"source_csv": write_fixture_csv(root)},
        model_overrides={"widths": (4, 8, 8), "reduction": 2},
    )
    metrics = train.run(config)
    metrics["data_dir"] = config.data_dir
    return metrics


def test_run_reports_metrics_plots_and_a_versioned_export(trained):
    test = trained["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and test["examples"] == 20
    assert test["primary_map"] == "cbam_stage1"
    assert set(test["maps"]) == {"cbam_stage0", "cbam_stage1", "cbam_stage2", "activation"}
    assert 0.0 < test["uniform_in_box"] < 1.0
    assert test["localization_ratio"] == pytest.approx(
        test["attention_in_box"] / test["uniform_in_box"])
    assert len(test["plots"]) == 2 and all(os.path.getsize(p) > 1000 for p in test["plots"])
    assert trained["flops_per_image"] > 0 and trained["parameters"] > 0
    assert os.path.basename(trained["export"]) == "1"
    with open(trained["metrics_path"], encoding="utf-8") as f:
        assert json.load(f)["variant"] == "cbam"


_SERVE = """
model = tf.saved_model.load(ARGS["path"])
serve = model.signatures["serving_default"]
images = [base64.b64decode(b) for b in ARGS["images"]]
out = serve(image_bytes=tf.constant(images))
canvas = np.array(ARGS["canvas"], np.float32)[None, ..., None] / 255.0
direct = model.signatures["predict_images"](images=tf.constant(canvas))
errors = {}
for name, data in ARGS["bad"].items():
    try:
        serve(image_bytes=tf.constant([images[0], base64.b64decode(data)]))
        errors[name] = "no error"
    except tf.errors.InvalidArgumentError as err:
        errors[name] = err.message
RESULT = {
    "inputs": sorted(serve.structured_input_signature[1]),
    "outputs": sorted(serve.structured_outputs),
    "probabilities": out["probabilities"].numpy().tolist(),
    "labels": [x.decode() for x in out["label"].numpy()],
    "class_id": out["class_id"].numpy().tolist(),
    "map_shape": list(out["attention_map"].shape),
    "map_sums": out["attention_map"].numpy().sum(axis=(1, 2)).tolist(),
    "direct": direct["probabilities"].numpy().tolist(),
    "errors": errors,
}
"""


def test_export_serves_image_bytes_without_the_project(trained):
    builder = data.ClutteredDigits(
        data_dir=trained["data_dir"],
        config=data.ClutteredDigitsConfig(name="tiny", train_canvases=2, eval_canvases=1),
    )
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
    canvas = example["image"][..., 0]
    dark_on_light = 255 - canvas
    rgba = np.concatenate([np.repeat(canvas[..., None], 3, -1),
                           np.full((60, 60, 1), 255, np.uint8)], axis=-1)
    big = np.kron(canvas, np.ones((20, 20), np.uint8))  # 1200x1200, same picture
    images = [_encode(canvas, "PNG"), _encode(dark_on_light, "PNG"), _encode(rgba, "PNG"),
              _encode(np.repeat(canvas[..., None], 3, -1), "JPEG"), _encode(big, "PNG"),
              _encode(np.zeros((1, 1), np.uint8), "PNG")]
    bad = {"empty": "", "text": base64.b64encode(b"GIF? no").decode(), "huge": _huge_png_header(),
           "truncated": images[0][: len(images[0]) // 2 // 4 * 4]}
    result = run_isolated("import base64\n" + _SERVE, path=trained["export"], images=images,
                          canvas=canvas.tolist(), bad=bad)
    assert result["inputs"] == ["image_bytes"]
    assert result["outputs"] == ["attention_map", "class_id", "label", "probabilities"]
    probabilities = np.array(result["probabilities"])
    assert probabilities.shape == (6, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert result["labels"] == [str(i) for i in result["class_id"]]
    assert result["map_shape"] == [6, 15, 15]
    np.testing.assert_allclose(result["map_sums"], 1.0, rtol=1e-4)
    # Decoding in the graph gives what the model sees from the float canvas; a dark-on-light
    # scan is inverted, an opaque RGBA image and a 20x larger copy give the same answer.
    np.testing.assert_allclose(probabilities[0], result["direct"][0], atol=1e-5)
    np.testing.assert_allclose(probabilities[1], probabilities[0], atol=1e-5)
    np.testing.assert_allclose(probabilities[2], probabilities[0], atol=1e-5)
    np.testing.assert_allclose(probabilities[4], probabilities[0], atol=0.05)
    errors = result["errors"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file (0 bytes" in errors["empty"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file" in errors["text"]
    assert "image_bytes[1] declares 70000x70000 pixels" in errors["huge"]
    assert "PNG" in errors["truncated"]


def test_saved_model_cli_shows_the_named_signature(trained):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "show", "--dir", trained["export"], "--tag_set", "serve", "--signature_def",
         "serving_default"], capture_output=True, text=True, check=True, timeout=120,
    )
    assert "inputs['image_bytes']" in proc.stdout
    for name in ("probabilities", "label", "attention_map"):
        assert f"outputs['{name}']" in proc.stdout


def test_warmup_requests_replay_without_the_project(trained):
    answered = replay_warmup(trained["export"])
    assert [name for name, _ in answered] == ["serving_default"]
