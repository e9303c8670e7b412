"""`safeguarding run`: the embedded default behind `make run`.

Starts a local broker, a worker (live mode), the hub page and a synthetic live feed, and prints
alerts as they are raised. The feed is a generated history that ends a day from now: the part
up to now is sent at once (its missed deadlines are in the past, so alerts appear within
seconds), the rest as its time comes. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import codec, logs
from streams.backtest_kafka import start_worker, stop_worker
from streams.broker import EmbeddedBroker, create_topics
from streams.cli_output import err, out, print_alert
from streams.domain.alerts import AlertStatus, Mode
from streams.domain.time import DAY
from streams.generate import run_generate
from streams.replay import replay
from streams.settings import Settings
from streams.worker.topics import topic_specs


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


def run_embedded(settings: Settings, *, children: int, days: int, seed: int) -> int:
    logs.configure("warning")
    with tempfile.TemporaryDirectory(prefix="safeguarding-run-") as tmp, EmbeddedBroker() as broker:
        live = replace(settings, bootstrap=broker.bootstrap, mode=Mode.LIVE.value)
        err.print(f"[bold]safeguarding run[/]: embedded broker at {broker.bootstrap}")
        world = Path(tmp) / "feed.jsonl"
        start = _now_ms() - (days - 1) * DAY  # the history's last day lies ahead: a live tail
        run_generate(children, days, seed, world, start=start)
        try:
            return asyncio.run(_run(live, world, Path(tmp)))
        except KeyboardInterrupt:
            return 0


async def _run(settings: Settings, world: Path, tmp: Path) -> int:
    from streams.hub.serve import serve_hub

    await create_topics(settings.bootstrap, topic_specs(settings))
    worker = start_worker(settings, tmp / "worker.log")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready: asyncio.Future[str] = loop.create_future()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(serve_hub(settings, stop=stop, ready=ready), name="hub"),
        asyncio.create_task(_print_alerts(settings, stop), name="alerts"),
    ]
    try:
        url = await ready
        err.print(f"[bold]hub[/]: {url}  (Ctrl-C stops everything)")
        tasks.append(
            asyncio.create_task(
                replay([world], settings, create=False, ticks=False, live_tail=True), name="feed"
            )
        )
        while not stop.is_set():
            if worker.poll() is not None:
                err.print(f"[red]the worker exited with status {worker.returncode}[/]")
                err.print((tmp / "worker.log").read_text(errors="replace")[-2000:])
                return 1
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        stop.set()
        for task in tasks:
            if task.get_name() != "hub":
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_worker(worker)
        err.print("stopped: worker, hub, feed and broker")


async def _print_alerts(settings: Settings, stop: asyncio.Event) -> None:
    """Every alert version as it is published (pretty on a terminal, JSON lines otherwise)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.alerts, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        pretty = out.is_terminal
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    alert = codec.decode_alert_avro(record.value)
                    if alert.status is AlertStatus.WITHDRAWN:
                        # The feed's backlog reaches a live worker behind the wall clock, so
                        # some alerts are raised and then disproved by a later-arriving event.
                        continue
                    if pretty:
                        print_alert(alert)
                    else:
                        sys.stdout.buffer.write(orjson.dumps(codec.alert_to_dict(alert)) + b"\n")
                        sys.stdout.flush()
    finally:
        await consumer.stop()
