"""The isolation used by every export test really keeps the project out."""

import pytest

from tests.apps.serving_checks import run_isolated


def test_isolated_process_cannot_import_project():
    result = run_isolated(
        """
try:
    import keras_attention  # noqa: F401
    ok = False
except ImportError:
    ok = True
RESULT = {"blocked": ok, "x": ARGS["x"]}
""",
        x=3,
    )
    assert result == {"blocked": True, "x": 3}


def test_isolated_failure_is_reported():
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        run_isolated("RESULT = {'v': 1 / 0}")
