"""The documentation runs: README's library examples, the docstrings' code blocks, the API
reference.

The `>>>` examples in the docstrings run as doctests (`--doctest-modules` over
`keras_attention/`, see pyproject.toml); `tests/test_backends.py` runs them again
on JAX and PyTorch, with `test_docstring_code_blocks` from this file.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import keras_attention

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LIBRARY_HEADING = "## The library"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def readme_library_blocks() -> list[tuple[int, str]]:
    """The ```python blocks of README's library section, each with its first line number."""
    text = README.read_text(encoding="utf-8")
    start = text.index(LIBRARY_HEADING)
    end = text.find("\n## ", start + len(LIBRARY_HEADING))
    end = len(text) if end < 0 else end
    return [
        (text.count("\n", 0, start + m.start()) + 2, m.group(1))
        for m in _FENCE.finditer(text, start, end)
    ]


_BLOCKS = readme_library_blocks()
# A block that picks a backend ("jax") runs as written and again with the other one.
_SWITCH = 'os.environ["KERAS_BACKEND"] = "{}"'
_README_CASES = []
for _line, _code in _BLOCKS:
    if _SWITCH.format("jax") in _code:
        _README_CASES.append((_line, "jax", _code))
        _README_CASES.append(
            (_line, "torch", _code.replace(_SWITCH.format("jax"), _SWITCH.format("torch")))
        )
    else:
        _README_CASES.append((_line, None, _code))


def test_readme_library_section_has_examples():
    assert len(_BLOCKS) >= 4, _BLOCKS
    assert any(backend for _, backend, _ in _README_CASES), "the JAX / PyTorch example is gone"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "backend", "code"),
    _README_CASES,
    ids=[f"README.md:{line}" + (f"-{b}" if b else "") for line, b, _ in _README_CASES],
)
def test_readme_library_example_runs(line, backend, code, tmp_path):
    """Each block runs alone as a script (in a fresh directory, on the default backend
    unless it picks one), as a reader would paste it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"README.md line {line}:\n{code}\n{proc.stderr[-3000:]}"
    if backend:  # the example prints the backend it ran on first
        assert proc.stdout.startswith(backend), proc.stdout


def _public_modules():
    """`keras_attention` and its public submodules (none with a leading underscore)."""
    names = ["keras_attention"]
    for info in pkgutil.walk_packages(keras_attention.__path__, "keras_attention."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _documented(module):
    """`module` and the classes and functions it defines, with the classes' methods."""
    yield module
    for value in vars(module).values():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            yield value
        elif inspect.isclass(value):
            yield value
            yield from (v for v in vars(value).values() if inspect.isfunction(v))


def docstring_code_blocks() -> list[tuple[str, object, str]]:
    """The ```python blocks in the docstrings of `keras_attention`'s public modules,
    classes and functions (the `>>>` examples are doctests): where each is, its module,
    its code."""
    found = []
    for name in _public_modules():
        module = importlib.import_module(name)
        for obj in _documented(module):
            doc = inspect.getdoc(obj) or ""
            where = name if obj is module else f"{name}.{obj.__qualname__}"
            for i, match in enumerate(_FENCE.finditer(doc)):
                found.append((f"{where}[{i}]", module, textwrap.dedent(match.group(1))))
    return found


def test_docstring_code_blocks():
    """Every ```python block in a docstring runs, in its module's namespace (so it may
    use what the module imports, as the doctests do). Runs on every backend."""
    blocks = docstring_code_blocks()
    assert blocks, "no ```python block found in the docstrings"
    for where, module, code in blocks:
        namespace = dict(vars(module))
        try:
            exec(compile(code, f"<docstring of {where}>", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"docstring code block {where} fails:\n{code}") from err


def _mkdocs():
    return shutil.which("mkdocs") or str(pathlib.Path(sys.executable).with_name("mkdocs"))


@pytest.mark.slow
def test_api_reference_builds_strict(tmp_path):
    """`mkdocs build --strict` passes: every docstring parses (google style) and every
    page and link resolves."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    page = (tmp_path / "site" / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    for name in keras_attention.layers.__all__:
        assert f'id="keras_attention.layers.{name}"' in page, f"{name} not in the API reference"
