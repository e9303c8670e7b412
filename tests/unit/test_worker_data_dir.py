"""Where the worker keeps its local data: never in the directory it was started from."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from streams.worker.app import create_app


def test_without_a_data_dir_the_worker_uses_a_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    appdir = Path(create_app(Settings()).conf.appdir)
    assert appdir.is_absolute()
    assert not appdir.is_relative_to(tmp_path)
    assert appdir.parent.name.startswith("safeguarding-worker-")


def test_the_data_dir_setting_is_where_the_worker_keeps_its_data(tmp_path: Path) -> None:
    settings = Settings.from_env({"SAFEGUARDING_DATA_DIR": str(tmp_path / "worker")})
    assert Path(create_app(settings).conf.appdir).parent == tmp_path / "worker"
