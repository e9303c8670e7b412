"""`safeguarding worker`: create the topics of the run, then run the Faust worker."""

from __future__ import annotations

from faust.worker import Worker

from streams import logs
from streams.broker import create_topics_sync
from streams.settings import Settings
from streams.worker.app import create_app
from streams.worker.topics import topic_specs


def run_worker(settings: Settings) -> int:
    logs.configure(settings.log_level)
    create_topics_sync(settings.bootstrap, topic_specs(settings))
    app = create_app(settings)
    worker = Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
