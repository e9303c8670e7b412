"""`safeguarding worker`: create the topics of the run, then run the Faust worker."""

from __future__ import annotations

import asyncio
import gc

from faust.worker import Worker

from streams import logs
from streams.broker import create_topics_sync
from streams.settings import Settings
from streams.worker.app import create_app
from streams.worker.topics import topic_specs


def use_uvloop() -> bool:
    """Run the worker on uvloop when it is installed: Faust's per-record work is mostly event
    loop work (tasks, futures, callbacks), and uvloop does it in C (a quarter less CPU per
    event in the pipeline benchmark, measured). Without it asyncio's loop does the same, slower."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def tune_gc() -> None:
    """Collect young objects every 200,000 allocations instead of 700, and leave what start-up
    made (modules, the app) out of every collection (``gc.freeze``).

    The worker makes a few dozen short-lived objects per event (records, events, alerts) and
    almost no cycles, so a young collection every 700 allocations mostly walks live objects
    (as in the inline backtest, which sets the same threshold). The older generations keep
    their defaults, so the cycles a long-running worker does make are still collected.
    At 50,000, a 400,000-event replay spent 0.6 s in 38 young collections and 0.45 s in two of
    the middle generation (4% of its time, timed with ``gc.callbacks``); 200,000 gave 0% to 7%
    more events per CPU-second in four alternating pairs."""
    gc.set_threshold(200_000, 10, 10)
    gc.freeze()


def run_worker(settings: Settings) -> int:
    logs.configure(settings.log_level)
    use_uvloop()
    create_topics_sync(settings.bootstrap, topic_specs(settings))
    app = create_app(settings)
    tune_gc()
    worker = Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        # Faust's Worker otherwise sets the root logger to DEBUG for its terminal spinner, so
        # every debug call in Faust and aiokafka builds a log record (10-15% of the CPU time,
        # measured); our logs are configured above.
        override_logging=False,
    )
    # Its start-up spinner writes terminal escapes even when stdout is not a terminal, which
    # breaks the JSON lines of a worker's log at its first record.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
