"""``faust -A streams.worker.main worker``: the app configured from the environment."""

from __future__ import annotations

from streams.settings import Settings
from streams.worker.app import create_app

app = create_app(Settings.from_env())
