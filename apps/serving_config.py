"""Writes a TF Serving model_config_list for every application found under a base dir.

Usage:
    python -m apps.serving_config --saved_models_dir=$PWD/saved_models > /tmp/models.config
    tensorflow_model_server --model_config_file=/tmp/models.config --rest_api_port=8501

`saved_models/models.config` is the same list with container paths (/models/...).
"""

from __future__ import annotations

import os

from absl import app, flags

from apps import APPS

_SAVED_MODELS_DIR = flags.DEFINE_string(
    "saved_models_dir", "saved_models", "Directory holding <app>/<version>/."
)


def model_config_text(base_dir: str, apps=APPS) -> str:
    base_dir = os.path.abspath(base_dir)
    parts = ["model_config_list {"]
    for name in apps:
        parts += [
            "  config {",
            f'    name: "{name}"',
            f'    base_path: "{os.path.join(base_dir, name)}"',
            '    model_platform: "tensorflow"',
            "  }",
        ]
    parts.append("}")
    return "\n".join(parts) + "\n"


def main(argv):
    del argv
    print(model_config_text(_SAVED_MODELS_DIR.value), end="")


if __name__ == "__main__":
    app.run(main)
