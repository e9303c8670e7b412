"""Settings from the environment: each variable read, converted, and refused with its name."""

from __future__ import annotations

import pytest

from streams.errors import ConfigurationError
from streams.settings import Settings


def test_the_save_interval_is_the_modes_default_unless_set() -> None:
    assert Settings.from_env({}).save_interval_s is None
    assert Settings.from_env({"SAFEGUARDING_SAVE_INTERVAL_S": "2.5"}).save_interval_s == 2.5
    assert Settings.from_env({}, save_interval_s=0.25).save_interval_s == 0.25


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "soon"])
@pytest.mark.parametrize("name", ["SAFEGUARDING_SAVE_INTERVAL_S", "SAFEGUARDING_TICK_INTERVAL_S"])
def test_an_interval_that_cannot_work_is_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: raw})
