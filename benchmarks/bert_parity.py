"""The pretrained BERT in Keras against the reference implementations, on real text.

1. Tokenizer: the in-graph tokenizer (`apps.common.bert.tokenizer`, stock TensorFlow
   ops) against Hugging Face `tokenizers` reading the same `tokenizer.json`, on every
   sentence of the four VADER domains (and any `--texts` file, one text a line):
   the number of texts whose ids differ (must be 0).
2. Encoder: the Keras layers (`apps.common.bert.encoder` + `load_weights`) against
   `transformers`' `BertModel` (PyTorch) on the same ids: the largest absolute
   difference of the last hidden states at the tokens. Needs `transformers` and
   `torch`, which this project does not install; without them this part says so.

    python benchmarks/bert_parity.py                      # the default checkpoint, minilm
    python benchmarks/bert_parity.py --checkpoint=/path/to/hf_bert_dir

Writes `benchmarks/results/bert_parity.{json,md}` with the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from apps.common import bert  # noqa: E402
from apps.common import data as common_data  # noqa: E402
from benchmarks import _common  # noqa: E402

_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CHECKPOINT = flags.DEFINE_string("checkpoint", "minilm", "A name of apps.common.bert."
                                 "CHECKPOINTS or a Hugging Face BERT directory.")
TEXTS = flags.DEFINE_string("texts", None, "A UTF-8 file of more texts, one a line.")
ENCODER_TEXTS = flags.DEFINE_integer("encoder_texts", 256, "Texts run through both encoders.")
MAX_LENGTH = flags.DEFINE_integer("max_length", 128, "Pieces per text, [CLS] and [SEP] included.")


def vader_texts() -> list[str]:
    from apps.sentiment import pipeline
    from apps.sentiment.builder import DOMAINS

    out = []
    for domain in DOMAINS:
        splits = pipeline.load_splits(f"vader_sentiment/{domain}", common_data.data_dir())
        for split in splits.values():
            out += [t.decode("utf-8", "replace") if isinstance(t, bytes) else t
                    for t in split.texts]
    return out


def tokenizer_parity(directory: str, texts: list[str]) -> dict:
    import tensorflow as tf
    from tokenizers import Tokenizer

    library = Tokenizer.from_file(os.path.join(directory, bert.TOKENIZER_FILE))
    library.no_padding()
    library.enable_truncation(MAX_LENGTH.value)
    ours = bert.tokenizer(directory, MAX_LENGTH.value)
    differ, examples, started = 0, [], time.time()
    for i in range(0, len(texts), 1024):
        chunk = texts[i:i + 1024]
        _, ids = ours.tokenize(tf.constant(chunk))
        for text, row, expected in zip(chunk, ids.numpy(), library.encode_batch(chunk),
                                       strict=True):
            if [int(x) for x in row if x] != expected.ids:
                differ += 1
                if len(examples) < 5:
                    examples.append(text[:120])
    return {"texts": len(texts), "differ": differ, "examples": examples,
            "seconds": round(time.time() - started, 1)}


def encoder_parity(directory: str, texts: list[str]) -> dict:
    try:
        import torch
        import transformers
    except ImportError as err:
        return {"skipped": f"transformers/torch not installed ({err.name}); "
                           "pip install transformers torch to run it"}
    import keras
    from tokenizers import Tokenizer

    library = Tokenizer.from_file(os.path.join(directory, bert.TOKENIZER_FILE))
    library.no_padding()
    library.enable_truncation(MAX_LENGTH.value)
    encoded = [e.ids for e in library.encode_batch(texts)]
    ids = np.zeros((len(encoded), max(map(len, encoded))), np.int32)
    for row, sequence in zip(ids, encoded, strict=True):
        row[:len(sequence)] = sequence
    config = bert.EncoderConfig.from_json(os.path.join(directory, bert.CONFIG_FILE))
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, bert.encoder(inputs, keras.ops.not_equal(inputs, 0), config,
                                             MAX_LENGTH.value))
    bert.load_weights(model, bert.read_safetensors(
        os.path.join(directory, bert.WEIGHTS_FILE)), config)
    ours = model.predict(ids, batch_size=64, verbose=0)
    reference = transformers.BertModel.from_pretrained(directory).eval()
    with torch.no_grad():
        theirs = reference(input_ids=torch.tensor(ids.astype(np.int64)),
                           attention_mask=torch.tensor((ids != 0).astype(np.int64))
                           ).last_hidden_state.numpy()
    real = ids != 0
    return {"texts": len(texts), "tokens": int(real.sum()),
            "max_abs_difference": float(np.abs(ours - theirs)[real].max()),
            "max_abs_value": float(np.abs(theirs[real]).max()),
            "transformers": transformers.__version__, "torch": torch.__version__}


def main(argv):
    del argv
    directory = bert.checkpoint_dir(CHECKPOINT.value)
    texts = vader_texts()
    if TEXTS.value:
        with open(TEXTS.value, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f]
    result = {"checkpoint": CHECKPOINT.value, "directory": directory,
              "machine": _common.machine_info(),
              "tokenizer": tokenizer_parity(directory, texts),
              "encoder": encoder_parity(directory, texts[:ENCODER_TEXTS.value])}
    os.makedirs(_OUT, exist_ok=True)
    with open(os.path.join(_OUT, "bert_parity.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    tok, enc = result["tokenizer"], result["encoder"]
    lines = [f"# BERT parity: {CHECKPOINT.value}", "",
             f"Machine: {_common.machine_line(result['machine'])}", "",
             f"- Tokenizer (in-graph vs `tokenizers`): {tok['differ']} of {tok['texts']} texts "
             f"differ ({tok['seconds']} s).",
             "- Encoder (Keras vs `transformers` BertModel): " + (
                 enc["skipped"] if "skipped" in enc else
                 f"largest |difference| {enc['max_abs_difference']:.2e} at {enc['tokens']} "
                 f"tokens of {enc['texts']} texts (largest |value| "
                 f"{enc['max_abs_value']:.2f}; transformers {enc['transformers']}, "
                 f"torch {enc['torch']})."), ""]
    with open(os.path.join(_OUT, "bert_parity.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
