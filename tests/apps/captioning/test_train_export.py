"""One tiny end-to-end run (a few real emoji scenes): train, score, plot, export, and serve the
export from a process that cannot import the project, good and bad image bytes."""

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

from apps.captioning import acquire, builder, train
from apps.common.metrics import RunResult
from tests.apps.captioning.fixtures import tiny_run, tiny_scenes
from tests.apps.serving_checks import replay_warmup, run_isolated

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


_OUTPUTS = ("caption", "tokens", "attention_weights")


def _huge_png_header():
    body = b"IHDR" + struct.pack(">IIBBBBB", 90_000, 90_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(
        ">I", zlib.crc32(body))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, RunResult) of one tiny run."""
    return tiny_run(tmp_path_factory, "captioning")


def test_run_reports_bleu_correctness_plots_and_a_versioned_export(trained):
    config, result = trained
    metrics = result.metrics
    test = metrics["test"]
    assert test["images"] == 6
    for n in range(1, 5):
        assert 0.0 <= test[f"bleu{n}"] <= 1.0
    correctness = test["attention_correctness"]
    assert set(correctness) == {"attention_in_box", "uniform_in_box", "ratio", "words_scored",
                                "objects_named", "step_before_in_box"}
    assert (result.app, result.dataset, result.variant) == (
        "captioning", "emoji_scenes", "small_cnn+lstm_soft_attention")
    assert result.metric == "bleu4" and result.value == test["bleu4"]
    assert result.train_seconds > 0
    assert metrics["grid"] == [4, 4]
    assert metrics["dataset_metadata"]["font_package"] == acquire.FONT_PACKAGE
    assert "val_masked_accuracy" in metrics["history"]  # what the best-weights callback watches
    assert all(os.path.getsize(p) > 1000 for p in metrics["plots"])
    assert os.path.basename(result.export_path) == "1"
    assert result.metrics_path == os.path.join(config.model_dir, "metrics.json")
    with open(result.metrics_path, encoding="utf-8") as f:
        record = json.load(f)
    assert record["dataset"] == "emoji_scenes" and record["export_path"] == result.export_path
    assert record["metric"] == "bleu4" and record["train_seconds"] == result.train_seconds
    again = RunResult.read(result.metrics_path)
    assert (again.value, again.variant, again.export_path) == (
        result.value, result.variant, result.export_path)
    line = train.results_line(result)
    assert line.startswith(result.line) and "bleu4=" in line and "attention_in_box=" in line


_SERVE = """
def read(path):
    with open(path, "rb") as f:
        return f.read()
model = tf.saved_model.load(ARGS["path"])
serve = model.signatures["serving_default"]
images = [read(p) for p in ARGS["images"]]
out = serve(image_bytes=tf.constant(images))
pixels = tf.constant(np.load(ARGS["pixels"]).astype(np.float32)[None] / 255.0)
size = ARGS["size"]
direct = model.signatures["caption_images"](
    images=tf.image.resize(pixels, (size, size), antialias=True))
try:
    model.signatures["caption_images"](images=pixels)
    wrong_size = "no error"
except tf.errors.InvalidArgumentError as err:
    wrong_size = err.message
empty = serve(image_bytes=tf.constant([], tf.string))
def error_of(raw):  # the error of a request holding a good image and `raw`
    try:
        serve(image_bytes=tf.constant([images[0], raw]))
    except tf.errors.InvalidArgumentError as err:
        return err.message
    return "no error"
errors = {name: error_of(read(path)) for name, path in ARGS["bad"].items()}
RESULT = {
    "inputs": sorted(serve.structured_input_signature[1]),
    "outputs": sorted(serve.structured_outputs),
    "captions": [c.decode() for c in out["caption"].numpy()],
    "tokens": [[t.decode() for t in row] for row in out["tokens"].numpy()],
    "attention": out["attention_weights"].numpy().tolist(),
    "direct_caption": direct["caption"].numpy()[0].decode(),
    "direct_attention": direct["attention_weights"].numpy()[0].tolist(),
    "empty_shapes": [list(empty[k].shape) for k in ("caption", "tokens", "attention_weights")],
    "errors": errors,
    "wrong_size": wrong_size,
}
"""


def _files(directory, named):
    paths = {}
    for name, raw in named.items():
        paths[name] = str(directory / f"{name}.bin")
        with open(paths[name], "wb") as f:
            f.write(raw)
    return paths


def test_export_serves_image_bytes_without_the_project(trained, tmp_path):
    config, result = trained
    scenes = builder.EmojiScenes(data_dir=config.data_dir, config=tiny_scenes())
    example = next(iter(tfds.as_numpy(scenes.as_dataset(split="test"))))
    scene = example["image"]
    rgba = np.concatenate([scene, np.full((96, 96, 1), 255, np.uint8)], axis=-1)
    gray = np.asarray(Image.fromarray(scene).convert("L"))
    big = np.kron(scene, np.ones((12, 12, 1), np.uint8))  # 1152x1152, the same picture
    images = [_encode(scene, "PNG"), _encode(rgba, "PNG"), _encode(scene, "JPEG"),
              _encode(gray, "PNG"), _encode(big, "PNG"), _encode(np.zeros((1, 1, 3), np.uint8),
                                                                 "PNG")]
    png = images[0]
    bad = {"empty": b"", "text": b"this is not an image", "truncated": png[: len(png) // 2],
           "huge": _huge_png_header(), "corrupt": png[:40] + b"\x00" * (len(png) - 40)}
    np.save(tmp_path / "pixels.npy", scene)
    good = _files(tmp_path, {f"image{i}": raw for i, raw in enumerate(images)})
    result = run_isolated(_SERVE, path=result.export_path, images=list(good.values()),
                          pixels=str(tmp_path / "pixels.npy"), bad=_files(tmp_path, bad),
                          size=config.model.image_size)
    assert result["inputs"] == ["image_bytes"]
    assert result["outputs"] == ["attention_weights", "caption", "tokens"]
    steps = 5  # max_length 6: START is not emitted
    attention = np.array(result["attention"])
    assert attention.shape == (6, steps, 4, 4)
    for caption, tokens, maps in zip(result["captions"], result["tokens"], attention,
                                     strict=True):
        assert len(tokens) == steps
        words = tokens[: tokens.index("[END]")] if "[END]" in tokens else tokens
        words = [w for w in words if w]
        assert caption.replace(",", " ,").split() == words
        emitted = np.array([t != "" for t in tokens])
        np.testing.assert_allclose(maps.sum(axis=(1, 2))[emitted], 1.0, rtol=1e-4)
        np.testing.assert_allclose(maps.sum(axis=(1, 2))[~emitted], 0.0)
    # Decoding in the graph gives what the model sees from the float pixels; the opaque
    # RGBA copy gives the same caption.
    assert result["captions"][0] == result["direct_caption"]
    np.testing.assert_allclose(attention[0], result["direct_attention"], atol=1e-4)
    assert result["captions"][1] == result["captions"][0]
    assert result["empty_shapes"] == [[0], [0, steps], [0, steps, 4, 4]]
    errors = result["errors"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file (0 bytes" in errors["empty"]
    assert "image_bytes[1] is not a JPEG, PNG, GIF or BMP file" in errors["text"]
    assert "image_bytes[1] declares 90000x90000 pixels" in errors["huge"]
    assert "PNG" in errors["truncated"] or "truncated" in errors["truncated"]
    assert errors["corrupt"] != "no error"
    assert "images" in result["wrong_size"] and "32" in result["wrong_size"]


def test_saved_model_cli_shows_the_named_signature(trained):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", trained[1].export_path, "--tag_set", "serve",
         "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    names = ["inputs['image_bytes']"] + [f"outputs['{name}']" for name in _OUTPUTS]
    assert [name for name in names if name not in shown] == []


def test_warmup_requests_replay_without_the_project(trained):
    """Every signature has a warmup record (ServingModule), answered by every loader."""
    answered = dict(replay_warmup(trained[1].export_path))
    assert answered == {"serving_default": sorted(_OUTPUTS), "caption_images": sorted(_OUTPUTS)}


_BAD_IMAGES = """
fn = tf.saved_model.load(ARGS["path"]).signatures["caption_images"]
size = ARGS["size"]
cases = {"nan": np.full((1, size, size, 3), np.nan, np.float32),
         "scale_0_255": np.full((1, size, size, 3), 255.0, np.float32),
         "too_many": np.zeros((257, size, size, 3), np.float32)}
RESULT = {}
for name, images in cases.items():
    try:
        RESULT[name] = [c.decode() for c in fn(images=tf.constant(images))["caption"].numpy()]
    except tf.errors.InvalidArgumentError as err:
        RESULT[name] = err.message
"""


def test_decoded_images_out_of_range_are_refused_not_captioned(trained):
    """A NaN image was once captioned "the": now every bad array names `images`."""
    config, result = trained
    errors = run_isolated(_BAD_IMAGES, path=result.export_path, size=config.model.image_size)
    assert "images has a NaN or Inf value" in errors["nan"]
    assert "images has values outside [0, 1]" in errors["scale_0_255"]
    assert "images holds 257 items; this model answers at most 256" in errors["too_many"]
