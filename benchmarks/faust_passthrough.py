"""A minimal Faust pass-through app: read the input topics, forward every record unchanged.

The benchmark runs it as a child process to measure what Faust itself costs, without our
decoding, detection or state: ``benchmarks/bench_pipeline.py`` compares it with a plain aiokafka
consumer (the ceiling) and with the full pipeline.

    PASSTHROUGH_BOOTSTRAP=127.0.0.1:9092 PASSTHROUGH_INPUTS=a,b PASSTHROUGH_OUTPUT=out \\
        .venv/bin/python benchmarks/faust_passthrough.py

Environment:

- ``PASSTHROUGH_BOOTSTRAP``: ``host:port[,host:port]``;
- ``PASSTHROUGH_INPUTS``: comma-separated topics to read (they must exist);
- ``PASSTHROUGH_OUTPUT``: the topic every record is forwarded to (created if missing);
- ``PASSTHROUGH_APP_ID``: the Faust app id, so the consumer group (default: the output topic);
- ``PASSTHROUGH_SETTINGS``: a JSON object of extra ``faust.App(...)`` settings, merged over
  :data:`SETTINGS`, for trying Faust settings without editing the worker;
- ``PASSTHROUGH_FETCH_MAX_WAIT_MS``: how long the broker may hold a fetch that finds nothing
  (default 50; Faust itself hard-codes 1500, see :class:`ShortFetchWaitTransport`);
- ``PASSTHROUGH_FAUST_LOGGING=1``: let Faust's Worker set up logging (its default; see
  :func:`main`).

The settings are those the benchmark's findings recommend for the worker
(``streams/worker/app.py``), so the pass-through pays what Faust costs at its best here.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

import faust
import orjson
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.worker import Worker

SETTINGS: dict[str, Any] = {
    "store": "memory://",
    "web_enabled": False,
    "topic_allow_declare": True,
    "consumer_auto_offset_reset": "earliest",
    # As the worker: the embedded broker answers a first JoinGroup after half the timeout.
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 2.0,
    "broker_commit_interval": 1.0,
    "producer_acks": -1,
    # Up to 5 ms of batching: a produce request then carries hundreds of records, not one.
    "producer_linger": 0.005,
    "stream_wait_empty": False,
    "logging_config": None,
}


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = int(os.environ.get("PASSTHROUGH_FETCH_MAX_WAIT_MS") or 50)
        consumer._fetch_max_wait_ms = wait  # read by AIOKafkaConsumer.start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ShortFetchWaitTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a shorter fetch wait than Faust's fixed 1,500 ms.

    Tansu holds a fetch that finds no record for the whole wait, even when records arrive
    meanwhile, and aiokafka sends one fetch at a time per broker: a caught-up consumer then
    stalls up to 1.5 s. Apache Kafka answers as soon as data arrives.
    """

    Consumer = _Consumer


def create_app(env: dict[str, str] | None = None) -> faust.App:
    """The pass-through app configured from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    bootstrap = env["PASSTHROUGH_BOOTSTRAP"]
    inputs = [name for name in env["PASSTHROUGH_INPUTS"].split(",") if name]
    output = env["PASSTHROUGH_OUTPUT"]
    settings = {**SETTINGS, **orjson.loads(env.get("PASSTHROUGH_SETTINGS") or "{}")}
    if "datadir" not in settings:  # as the worker: not in the current directory
        settings["datadir"] = tempfile.mkdtemp(prefix="passthrough-")
        atexit.register(shutil.rmtree, settings["datadir"], ignore_errors=True)
    app = faust.App(
        env.get("PASSTHROUGH_APP_ID") or output,
        broker=[f"kafka://{b}" for b in bootstrap.split(",")],
        **settings,
    )
    app.transport = ShortFetchWaitTransport(app.conf.broker_consumer, app)
    source = app.topic(*inputs, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")  # fmt: skip
    sink = app.topic(output, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")  # fmt: skip

    @app.agent(source, name="passthrough")
    async def passthrough(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            await sink.send(key=msg.key, value=msg.value, headers=msg.headers)

    return app


def main() -> int:
    app = create_app()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    worker = Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        # Faust's Worker otherwise sets the root logger to DEBUG for its terminal spinner, so
        # every debug call in Faust and aiokafka builds a LogRecord (10-15% of the CPU time).
        override_logging=os.environ.get("PASSTHROUGH_FAUST_LOGGING") == "1",
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
