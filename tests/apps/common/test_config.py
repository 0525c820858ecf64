"""--config=KEY=VALUE overrides of nested dataclass configs, and the common flags."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from absl import flags

from apps.common import config as common_config
from apps.common.metrics import RunResult


@dataclasses.dataclass(frozen=True)
class _Model:
    variant: Literal["a", "b"] = "a"
    units: int = 8
    rate: float = 0.1
    norm: bool = False
    sizes: tuple[int, ...] = (1, 2)

    def __post_init__(self):
        if self.units <= 0:
            raise ValueError(f"units must be positive, got {self.units}.")


@dataclasses.dataclass
class _Train:
    dataset: str = "d"
    epochs: int = 2
    archive: str | None = None
    seed: int = 42
    quick: bool = False
    model: _Model = dataclasses.field(default_factory=_Model)


def test_overrides_parse_by_field_type_and_nest():
    config = common_config.apply_overrides(_Train(), [
        "epochs=5", "archive=/tmp/a.tgz", "model.units=64", "model.rate=0.5",
        "model.norm=true", "model.sizes=3,4,5", "model.variant=b",
    ])
    assert config.epochs == 5 and config.archive == "/tmp/a.tgz"
    assert config.model == _Model("b", 64, 0.5, True, (3, 4, 5))
    assert common_config.apply_overrides(config, ["archive=None"]).archive is None


@pytest.mark.parametrize("pair, message", [
    ("epoch=3", r"_Train has no field 'epoch'; its fields are \['archive', 'dataset'"),
    ("model.unit=3", "_Model has no field 'unit'"),
    ("epochs=three", "'three' is not a int"),
    ("model.norm=maybe", "not a boolean"),
    ("model.variant=c", r"'c' is not one of \['a', 'b'\]"),
    ("model.units=0", "units must be positive, got 0"),
    ("epochs", "is not KEY=VALUE"),
    ("dataset.x=1", "'dataset' has no fields"),
])
def test_bad_overrides_name_the_key(pair, message):
    with pytest.raises(flags.ValidationError, match=message):
        common_config.apply_overrides(_Train(), [pair])


def test_common_flags_map_onto_fields():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", "--epochs=7", "--variant=b", "--quick", "--config=model.units=3",
                 "--config=epochs=9"])
    try:
        config = common_config.from_flags(_Train)
        assert (config.epochs, config.model.variant, config.quick, config.model.units,
                config.seed) == (9, "b", True, 3, 42)
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["train", "--variant=z"])
        with pytest.raises(flags.ValidationError, match=r"--variant.*'z' is not one of"):
            common_config.from_flags(_Train)
    finally:
        flags.FLAGS.unparse_flags()


def test_run_result_round_trips_through_metrics_json(tmp_path):
    result = RunResult("app", "data", "v", "accuracy", 0.9, 12.5, "saved/1",
                       metrics={"history": {"loss": [1.0]}}).write(str(tmp_path))
    again = RunResult.read(result.metrics_path)
    assert (again.app, again.value, again.export_path) == ("app", 0.9, "saved/1")
    assert again.metrics["history"] == {"loss": [1.0]}
    assert "accuracy=0.9000" in again.line
