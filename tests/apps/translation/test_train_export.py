"""The main job on a tiny TSV corpus with the word vocabulary, its SavedModel served without
the project (the subword vocabulary, the default: test_subword_export.py)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from apps.common import export as common_export
from apps.translation import model as translation_model
from apps.translation import train
from tests.apps.serving_checks import replay_warmup, run_isolated
from tests.apps.translation import fixtures

# Trains, exports or starts processes: seconds to minutes (runs by default).
pytestmark = pytest.mark.slow

MAX_TOKENS = 10

# The serving script's end, shared with test_subword_export: `out` (the answers to `inputs`)
# as JSON in RESULT, and the error for a batch over the limit.
ANSWERS = """
RESULT = {
    "keys": sorted(out),
    "dtypes": {k: v.dtype.name for k, v in out.items()},
    "shapes": {k: v.shape.as_list() for k, v in out.items()},
    "translation": [t.decode("utf-8") for t in out["translation"].numpy()],
    "attention": out["attention_weights"].numpy().tolist(),
    "source_tokens": [[t.decode("utf-8") for t in row] for row in out["source_tokens"].numpy()],
    "target_tokens": [[t.decode("utf-8") for t in row] for row in out["target_tokens"].numpy()],
}
try:
    serve(text=tf.constant(["open"] * 257))
    RESULT["too_many"] = None
except tf.errors.InvalidArgumentError as err:
    RESULT["too_many"] = err.message
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    tsv = root / "pairs.tsv"
    pairs = fixtures.sentence_pairs(300, seed=3, max_words=7)
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in pairs.items()), encoding="utf-8")
    model = translation_model.ModelConfig(
        variant="bahdanau", units=32, embedding_dim=16, attention_units=16,
        source_vocab_size=100, target_vocab_size=100, max_source_length=MAX_TOKENS,
        max_target_length=MAX_TOKENS,
    )
    config = train.TrainConfig(
        train_tsv=str(tsv), data_dir=str(root / "data"), model_dir=str(root / "run"),
        export_dir=str(root / "export"), model=model, epochs=2, steps_per_epoch=None,
        batch_size=32, min_count=1, vocabulary="word", beam_width=2, heatmaps=2, verbose=0,
    )
    result = train.run(config)
    return {"result": result, "metrics": result.metrics, "export": result.export_path,
            "run": str(root / "run"), "pairs": pairs}


def test_run_writes_metrics_plots_and_translations(trained):
    result, metrics, run = trained["result"], trained["metrics"], trained["run"]
    assert 0.0 <= metrics["bleu"] <= 100.0 and 0.0 <= metrics["chrf"] <= 100.0
    assert (result.app, result.metric, result.value) == ("translation", "bleu", metrics["bleu"])
    assert result.dataset.startswith("train_tsv:") and result.variant == "bahdanau"
    assert result.train_seconds > 0
    assert metrics["decoding"]["copy"] is False  # word vocabularies: nothing to copy into
    assert "case:lc" in metrics["signatures"]["bleu_signature"]
    thirds = metrics["bleu_by_length"]
    assert list(thirds) == ["short", "middle", "long"]
    assert sum(t["sentences"] for t in thirds.values()) == metrics["pairs"]["test"] > 0
    bins = metrics["bleu_by_length_bins"]
    assert sum(b["sentences"] for b in bins) == metrics["pairs"]["test"]
    assert 0.0 <= metrics["bleu_without_unk_replace"] <= 100.0
    with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
        record = json.load(f)
    assert result.metrics_path == os.path.join(run, "metrics.json")
    assert record["variant"] == "bahdanau" and record["metric"] == "bleu"
    assert record["value"] == metrics["bleu"] and record["export_path"] == result.export_path
    assert record["config"]["model"]["units"] == 32
    # The model was sized to the vocabularies built (at most the configured 100 tokens).
    assert record["vocabulary"]["target"] <= 100
    for name in ("alignment_0.png", "bleu_by_length.png", "translations.tsv",
                 "source_vocabulary.json", "target_vocabulary.json"):
        assert os.path.getsize(os.path.join(run, name)) > 0, name
    assert os.path.isdir(os.path.join(run, "logs"))
    assert os.path.basename(result.export_path) == "1"


_SERVE = """
model = tf.saved_model.load(ARGS["path"])
serve = model.signatures["serving_default"]
texts = ARGS["texts"]
inputs = [t.encode("utf-8") for t in texts] + [
    b"",                                   # empty
    b"zzyzx qwvbn xkcdq",                  # unknown words only
    " ".join(["open the file"] * 40).encode(),  # far too long
    b"open \\xff\\xfe the \\xc3 file",          # not UTF-8
    b"open \\x00 the file",                  # a NUL once cut the text there
    "open\\u00a0the\\u2003file".encode(),    # Unicode spaces separate words
]
out = serve(text=tf.constant(inputs))
empty = serve(text=tf.constant([], tf.string))
""" + ANSWERS + """
RESULT["empty_shapes"] = {k: v.shape.as_list() for k, v in empty.items()}
"""



@pytest.fixture(scope="module")
def served(trained):
    with open(os.path.join(trained["run"], "translations.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:5]
    result = run_isolated(_SERVE, path=trained["export"],
                          texts=[r["source"] for r in rows])
    return result, rows


def test_saved_model_round_trip_matches_the_evaluated_translations(served):
    result, rows = served
    assert result["keys"] == ["attention_weights", "source_tokens", "target_tokens",
                              "translation"]
    assert result["dtypes"] == {"attention_weights": "float32", "source_tokens": "string",
                                "target_tokens": "string", "translation": "string"}
    n = len(rows) + 6
    assert result["shapes"]["translation"] == [n]
    assert result["shapes"]["attention_weights"] == [n, MAX_TOKENS, MAX_TOKENS]
    assert result["shapes"]["source_tokens"] == [n, MAX_TOKENS]
    assert result["shapes"]["target_tokens"] == [n, MAX_TOKENS]
    # The same graph translated the test split during evaluation: string -> string agrees.
    assert result["translation"][: len(rows)] == [r["translation"] for r in rows]
    assert result["empty_shapes"]["translation"] == [0]
    assert result["empty_shapes"]["attention_weights"] == [0, MAX_TOKENS, MAX_TOKENS]


def test_attention_rows_cover_the_source_tokens_of_emitted_words(served):
    result, rows = served
    for i in range(len(rows)):
        att = np.array(result["attention"][i])
        emitted = sum(1 for t in result["target_tokens"][i] if t)
        real = sum(1 for t in result["source_tokens"][i] if t)
        np.testing.assert_allclose(att[:emitted].sum(-1), 1.0, atol=1e-4)
        assert np.all(att[:, real:] == 0) and np.all(att[emitted:] == 0)


def test_bad_inputs_have_defined_results(served):
    result, rows = served
    k = len(rows)
    # Empty input: empty translation, no tokens, zero attention.
    assert result["translation"][k] == ""
    assert not any(result["source_tokens"][k]) and not any(result["target_tokens"][k])
    assert not np.any(result["attention"][k])
    # Unknown words only: translated as [UNK]s, a string all the same.
    assert result["source_tokens"][k + 1][:3] == ["zzyzx", "qwvbn", "xkcdq"]
    assert isinstance(result["translation"][k + 1], str)
    # Too long: the source is truncated to T_in tokens, the output stays within T_out.
    assert all(result["source_tokens"][k + 2])
    assert result["source_tokens"][k + 2][:3] == ["open", "the", "file"]
    assert sum(1 for t in result["target_tokens"][k + 2] if t) <= MAX_TOKENS
    # Invalid UTF-8 is replaced, not an error.
    assert result["source_tokens"][k + 3][0] == "open"
    assert "\ufffd" in "".join(result["source_tokens"][k + 3])
    # NUL and Unicode spaces separate words; nothing after them is lost.
    assert result["source_tokens"][k + 4][:4] == ["open", "the", "file", ""]
    assert result["source_tokens"][k + 5][:4] == ["open", "the", "file", ""]
    assert "text holds 257 items; this model answers at most 256" in result["too_many"]


def test_saved_model_cli_and_warmup_requests(trained):
    """`saved_model_cli run` loads TF1-style, as TF Serving's C++ loader does."""
    path = trained["export"]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    ran = subprocess.run([cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
                          "serving_default", "--input_exprs", 'text=["open the file", ""]'],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert ran.returncode == 0, ran.stderr[-2000:]
    for name in ("translation", "attention_weights", "source_tokens", "target_tokens"):
        assert f"Result for output key {name}:" in ran.stdout
    requests = common_export.read_warmup_requests(path)
    assert requests and requests[0][0] == "serving_default"
    assert list(requests[0][1]) == ["text"]


def _parse(*args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])
    return train.config_from_flags()


def test_command_line_maps_to_the_config():
    try:
        config = _parse("--variant=luong", "--config=model.score=dot", "--config=beam_width=1",
                        "--config=length_penalty=1.0", "--config=model.input_feeding=false",
                        "--epochs=3", "--config=train_tsv=/tmp/pairs.tsv",
                        "--config=export_dir=none", "--config=model.learning_rate=5e-4")
        assert (config.model.variant, config.model.score, config.beam_width,
                config.length_penalty, config.model.input_feeding, config.epochs) == (
                    "luong", "dot", 1, 1.0, False, 3)
        assert (config.train_tsv, config.export_dir, config.model.learning_rate) == (
            "/tmp/pairs.tsv", None, 5e-4)
        assert _parse().model.feeds_input is False  # bahdanau's default
        assert _parse("--variant=luong").model.feeds_input is True
        for args, named in ((["--variant=lstm"], "variant"),
                            (["--config=beam_width=0"], "beam_width"),
                            (["--config=length_penalty=-1"], "length_penalty"),
                            (["--config=model.label_smoothing=1.5"], "label_smoothing"),
                            (["--config=model.units=33"], "units"),
                            (["--config=model.score=cosine"], "score"),
                            (["--dataset=mnist"], "dataset"),
                            (["--dataset=gettext_translations/de", "--config=train_tsv=x.tsv"],
                             "train_tsv"),
                            (["--config=translation_units=64"], "translation_units")):
            with pytest.raises(flags.ValidationError, match=named):
                _parse(*args)
    finally:
        flags.FLAGS.unparse_flags()


def test_no_flags_of_its_own():
    assert not flags.FLAGS.flags_by_module_dict().get(train.__name__)


def test_warmup_requests_replay_without_the_project(trained):
    answered = replay_warmup(trained["export"])
    assert [name for name, _ in answered] == ["serving_default"]
