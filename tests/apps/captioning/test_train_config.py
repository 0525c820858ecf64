"""The command line: no flags of the app's own; every old flag is a `--config=` key."""

import pytest
from absl import flags

from apps.captioning import builder, train
from apps.captioning.model import ModelConfig


@pytest.fixture
def parse():
    """Parses a command line into the app's TrainConfig (as `main` does)."""

    def from_argv(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["train", *args])
        return train.config_from_flags()

    yield from_argv
    flags.FLAGS.unparse_flags()


def test_the_app_defines_no_flags_of_its_own():
    modules = flags.FLAGS.flags_by_module_dict()
    assert not [m for m in modules if m.startswith("apps.captioning")]


def test_every_old_flag_is_a_config_key(parse):
    config = parse(
        "--dataset=coco_captions", "--epochs=3", "--batch_size=16", "--quick",
        "--variant=soft_attention",
        "--config=beam_width=1",                          # --caption_beam_width
        "--config=model.backbone=mobilenet_v2",           # --caption_backbone
        "--config=model.backbone_weights=/w.h5",          # --caption_backbone_weights
        "--config=model.image_size=128",                  # --caption_image_size
        "--config=model.max_length=24",                   # --caption_max_length
        "--config=model.doubly_stochastic=0.0",           # --caption_lambda
        "--config=model.learning_rate=0.001",             # --caption_learning_rate
        "--config=model.attend_from=previous",            # --attend_from
        "--config=plots=2",                               # --caption_plots
        "--config=font_path=/fonts/NotoColorEmoji.ttf",   # --emoji_font
        "--config=eval_limit=100", "--config=scenes=default", "--config=export_dir=None",
    )
    assert (config.dataset, config.epochs, config.batch_size, config.quick) == (
        "coco_captions", 3, 16, True)
    assert (config.beam_width, config.plots, config.font_path, config.eval_limit) == (
        1, 2, "/fonts/NotoColorEmoji.ttf", 100)
    assert config.scenes == "default" and config.export_dir is None
    assert config.model == ModelConfig(
        backbone="mobilenet_v2", backbone_weights="/w.h5", image_size=128, max_length=24,
        doubly_stochastic=0.0, learning_rate=0.001, attend_from="previous")
    assert parse() == train.TrainConfig()


@pytest.mark.parametrize("arg, message", [
    ("--config=model.attend_from=next", r"'next' is not one of \['previous', 'current'\]"),
    ("--config=model.backbone=alexnet", "'alexnet' is not one of"),
    ("--config=beam_width=0", "beam_width must be a positive int"),
    ("--config=model.image_size=100", "image_size must be a multiple of 8"),
    ("--config=model.context_dropout=0.5", "context_dropout"),
    ("--dataset=mscoco", r"--dataset.*'mscoco' is not one of"),
    ("--variant=hard",
     r"--variant.*'hard' is not one of \['soft_attention', 'semantic_attention'\]"),
    ("--epochs=0", "epochs must be a positive int"),
    ("--config=caption_lambda=0.1", "TrainConfig has no field 'caption_lambda'"),
])
def test_a_bad_command_line_names_the_key_before_any_data(parse, arg, message):
    with pytest.raises(flags.ValidationError, match=message):
        parse(arg)


def test_train_config_checks_its_fields():
    with pytest.raises(ValueError, match="verbose"):
        train.TrainConfig(verbose=3)
    with pytest.raises(ValueError, match="eval_limit"):
        train.TrainConfig(eval_limit=0)
    with pytest.raises(ValueError, match="vocab_size"):
        train.TrainConfig(vocab_size=4)
    scenes = builder.EmojiScenesConfig(name="x", train_scenes=5)
    assert train.TrainConfig(scenes=scenes).scenes is scenes
