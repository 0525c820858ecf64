"""One configuration style for every app: dataclasses, overridden by name.

Each app's `train.py` has a `TrainConfig` dataclass that nests its
`ModelConfig` as `model`. A run is configured by:

1. the common flags of `apps.common.flags` (`--dataset`, `--epochs`,
   `--variant`, ...), which map onto the `TrainConfig` fields of the same name
   (`--variant` onto `model.variant`);
2. `--config=KEY=VALUE` (repeatable), where KEY is any field, nested with dots:
   `--config=model.units=128 --config=archive=/tmp/v.tar.gz`.

No app defines flags of its own, so any two apps import into one process
without clashes, and every field can be set from the command line without a
flag written for it. Values are parsed by the field's type (`int`, `float`,
`bool`: true/false/1/0/yes/no, `str`, `None` for optional fields, tuples as
comma lists); an unknown key, a bad value or a failed check of the dataclass
(its `__post_init__`) is a `flags.ValidationError` naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from absl import flags

from apps.common import flags as common_flags

Strategy = typing.Literal["default", "mirrored", "multi_worker", "tpu"]


@dataclasses.dataclass(frozen=True)
class CommonTrainConfig:
    """The fields every app's `TrainConfig` has (the common flags set them).

    An app's `TrainConfig` subclasses it (frozen too), redeclares the defaults
    that differ and adds its own fields, `model: ModelConfig` among them.
    """

    dataset: str = ""
    data_dir: str | None = None
    model_dir: str | None = None
    export_dir: str | None = None  # None: do not export
    epochs: int = 1
    batch_size: int = 32
    seed: int = 42
    strategy: Strategy = "default"
    quick: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is None:  # an app that picks them per model variant (sentiment)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Received: seed={self.seed!r}")
        if self.strategy not in typing.get_args(Strategy):
            raise ValueError(f"strategy must be one of {list(typing.get_args(Strategy))}. "
                             f"Received: strategy={self.strategy!r}")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse(text: str, kind, key: str):
    """`text` as a value of type `kind` (a field's annotation, resolved)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() == "none" and len(options) < len(typing.get_args(kind)):
            return None
        errors = []
        for option in options:
            try:
                return _parse(text, option, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"{text!r} is not one of {list(choices)}")
    if origin is tuple:
        args = typing.get_args(kind)
        item = args[0] if args else str
        return tuple(_parse(part.strip(), item, key) for part in text.split(",") if part.strip())
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a {kind.__name__}") from None
    if kind is typing.Any:
        return text
    raise ValueError(f"fields of type {kind} cannot be set from the command line")


def _field_types(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def override(config, key: str, value):
    """A copy of the dataclass `config` with the (dotted) field `key` set to `value`.

    `value` may be a string (parsed by the field's type) or already typed.
    Raises `flags.ValidationError` naming `key` when it is unknown or invalid.
    """
    return _apply(config, _nest([(key, value)]))


def apply_overrides(config, pairs) -> object:
    """Applies `KEY=VALUE` strings (a key given twice: the later one wins).

    They are applied together, one `replace` per dataclass, not one by one: the
    checks that relate two fields (`min <= max`) see the final values whatever
    the order of the pairs.
    """
    items = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise flags.ValidationError(f"--config={pair!r} is not KEY=VALUE "
                                        "(e.g. --config=model.units=128).")
        items.append((key.strip(), value.strip()))
    return _apply(config, _nest(items)) if items else config


def _nest(items) -> dict:
    """[("model.units", v), ...] -> {"model": {"units": v}} (later items win)."""
    changes: dict = {}
    for key, value in items:
        *parents, last = key.split(".")
        level = changes
        for i, part in enumerate(parents):
            level = level.setdefault(part, {})
            if not isinstance(level, dict):
                raise flags.ValidationError(f"--config={key}: {'.'.join(parents[: i + 1])!r} "
                                            "is given a value and fields at once.")
        level[last] = value
    return changes


def _apply(config, changes: dict, path: str = ""):
    """`config` with `changes` ({field: text or value, or {nested field: ...}}), one
    `dataclasses.replace` per dataclass, so its `__post_init__` sees them all at once."""
    types_ = _field_types(type(config))
    values = {}
    for head, value in changes.items():
        full = path + head
        if head not in types_:
            raise flags.ValidationError(
                f"--config={full}: {type(config).__name__} has no field {head!r}; its fields "
                f"are {sorted(types_)}.")
        if isinstance(value, dict):
            inner = getattr(config, head)
            if not dataclasses.is_dataclass(inner):
                raise flags.ValidationError(f"--config={full}: {head!r} has no fields.")
            values[head] = _apply(inner, value, f"{full}.")
        elif isinstance(value, str):
            try:
                values[head] = _parse(value, types_[head], full)
            except ValueError as err:
                raise flags.ValidationError(f"--config={full}={value}: {err}.") from None
        else:
            values[head] = value
    try:
        return dataclasses.replace(config, **values)
    except (ValueError, TypeError) as err:
        raise flags.ValidationError(f"{' '.join(_keys(changes, path))}: {err}") from None


def _keys(changes: dict, path: str) -> list[str]:
    """`--config=KEY` for every value in `changes`, nested ones with their dotted path."""
    out = []
    for head, value in changes.items():
        if isinstance(value, dict):
            out += _keys(value, f"{path}{head}.")
        else:
            out.append(f"--config={path}{head}")
    return out


# Common flag -> TrainConfig field it sets (dotted).
_COMMON = {
    "dataset": "dataset", "data_dir": "data_dir", "model_dir": "model_dir",
    "export_dir": "export_dir", "epochs": "epochs", "batch_size": "batch_size",
    "seed": "seed", "strategy": "strategy", "quick": "quick", "variant": "model.variant",
}


def from_flags(config_cls, base=None):
    """The `config_cls` (a `TrainConfig`) that the command line asks for.

    Starts from `base` (default `config_cls()`), applies the common flags the
    user set, then every `--config=KEY=VALUE`.
    """
    config = config_cls() if base is None else base
    for flag_name, field in _COMMON.items():
        holder = getattr(common_flags, flag_name.upper())
        if holder.value is None or not flags.FLAGS[flag_name].present:
            continue
        try:
            config = override(config, field, holder.value)
        except flags.ValidationError as err:
            raise flags.ValidationError(
                str(err).replace(f"--config={field}", f"--{flag_name}", 1)) from None
    return apply_overrides(config, common_flags.CONFIG.value or [])
