"""Fixtures of the unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.domain import native
from tests.unit import rulekit


def require_native_core() -> None:
    """Skip a test of the compiled core where it is not installed, except in CI, where it is
    required: ``.ci/run`` builds it, and a run without it would not test what users run."""
    if native.load() is not None:
        return
    message = (
        "the compiled core (streams_native) is not installed: `make venv` builds it when cargo "
        "is on the machine (https://rustup.rs)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module", params=rulekit.ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the module's tests on each detection core in turn (``rulekit.detector`` and
    ``rulekit.run`` use it)."""
    name: str = request.param
    if name == "native":
        require_native_core()
    rulekit.engine[0] = name
    try:
        yield name
    finally:
        rulekit.engine[0] = "python"
