"""`safeguarding backtest --engine kafka`: the real pipeline over a historic file.

An isolated topic prefix on the embedded broker (or ``--bootstrap``): start a worker in replay
mode, replay the files, wait until every partition of the per-child topic has finished (its
detector published its last alert, flushed, then said so on the control topic), read the alerts
topic, keep each alert's last version, write them, and clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import codec
from streams.backtest import BacktestSummary, write_alert
from streams.broker import child_process_setup
from streams.domain.alerts import Alert
from streams.domain.time import Millis
from streams.errors import SafeguardingError
from streams.files import replaced_on_success
from streams.history import InvalidRecord, OnProgress
from streams.replay import replay
from streams.settings import Settings

QUIET_S = 1.0
"""After every partition finished: the alerts topic is read until this long passes with no
new record. (Tansu's end offsets are wrong, so "the end of the log" cannot be asked.)"""


class PipelineFailed(SafeguardingError):
    """The worker died or did not finish in time."""


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from streams.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """``safeguarding worker`` for ``settings`` as a child process (its log to ``log_path``)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "SAFEGUARDING_TOPIC_PREFIX": settings.topic_prefix,
        "SAFEGUARDING_MODE": settings.mode,
        "SAFEGUARDING_PARTITIONS": str(settings.partitions),
        "SAFEGUARDING_LATENESS_MS": str(settings.lateness_ms),
        "SAFEGUARDING_TICK_INTERVAL_S": str(settings.tick_interval_s),
        "SAFEGUARDING_SAVE_INTERVAL_S": (
            "" if settings.save_interval_s is None else str(settings.save_interval_s)
        ),
        "SAFEGUARDING_LOG_LEVEL": settings.log_level,
        "SAFEGUARDING_UNTIL_MS": "" if settings.until_ms is None else str(settings.until_ms),
    }
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session (a terminal's Ctrl-C reaches us, not the worker), and SIGTERM if we
            # die, even by SIGKILL: a worker never outlives whoever started it.
            preexec_fn=child_process_setup(os.getpid()),
        )
    finally:
        os.close(fd)  # the child has its own copy


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def collect_alerts(
    settings: Settings,
    *,
    partitions: int,
    worker: subprocess.Popen[bytes] | None = None,
    timeout: float = 600.0,
) -> dict[str, Alert]:
    """Wait for every partition's finish marker, then fold the alerts topic by alert_id."""
    topics = settings.topics
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        alert_tps = [TopicPartition(topics.alerts, p) for p in range(partitions)]
        control_tp = TopicPartition(topics.control, 0)
        consumer.assign([*alert_tps, control_tp])
        await consumer.seek_to_beginning(*alert_tps, control_tp)
        finished: set[int] = set()
        latest: dict[str, Alert] = {}
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            got = False
            for tp, records in batch.items():
                for record in records:
                    got = True
                    if tp.topic == topics.control:
                        marker = orjson.loads(record.value)
                        if marker.get("done"):
                            finished.add(int(marker["partition"]))
                    else:
                        alert = codec.decode_alert_avro(record.value)
                        latest[alert.alert_id] = alert
            now = time.monotonic()
            if len(finished) == partitions:
                if got:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= QUIET_S:
                    return latest
            if worker is not None and worker.poll() is not None:
                raise PipelineFailed(f"the worker exited with status {worker.returncode}")
            if now > deadline:
                raise PipelineFailed(
                    f"only {len(finished)} of {partitions} partitions finished in {timeout:.0f} s"
                )
    finally:
        await consumer.stop()


def backtest_kafka(
    paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    until: Millis | None = None,
    dead_letters: str | os.PathLike[str] | None = None,
    bootstrap: str | None = None,
    partitions: int = 4,
    on_progress: OnProgress | None = None,
    timeout: float = 1800.0,
) -> BacktestSummary:
    """Same input and output as :func:`streams.backtest.backtest_inline`, through Kafka."""
    started = time.perf_counter()
    summary = BacktestSummary(files=len(paths))
    dl_lines: list[bytes] = []

    def invalid(record: InvalidRecord) -> None:
        dl_lines.append(orjson.dumps(record.to_dict()))
        if record.damage:
            summary.unread.append(record.damage)

    with _broker(bootstrap) as servers, tempfile.TemporaryDirectory(prefix="backtest-") as tmp:
        settings = Settings.from_env(
            bootstrap=servers,
            topic_prefix=f"backtest.{uuid.uuid4().hex[:12]}.",
            mode="replay",
            partitions=partitions,
            until_ms=until,  # so an SG04 after it is not raised, as inline
        )
        log_path = Path(tmp) / "worker.log"

        async def pipeline() -> dict[str, Alert]:
            from streams.broker import create_topics
            from streams.worker.topics import topic_specs

            await create_topics(settings.bootstrap, topic_specs(settings))
            worker = start_worker(settings, log_path)
            try:
                sent = await replay(
                    paths, settings, until=until, on_invalid=invalid, on_progress=on_progress,
                    create=False,
                )  # fmt: skip
                summary.events = sent.events
                summary.invalid = sent.invalid
                summary.until = sent.until
                if sent.until is None:
                    return {}
                return await collect_alerts(
                    settings, partitions=partitions, worker=worker, timeout=timeout
                )
            except BaseException:
                tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
                if tail:
                    print(f"worker log (tail):\n{tail}", file=sys.stderr)
                raise
            finally:
                stop_worker(worker)

        alerts = asyncio.run(pipeline())
    ordered = sorted(
        alerts.values(), key=lambda a: (a.raised_at, a.rule_id, a.child_id, a.trigger_id)
    )
    with replaced_on_success(out_path) as out:
        for alert in ordered:
            summary.alerts[(alert.rule_id, alert.status)] += 1
            write_alert(out, alert)
    if dead_letters is not None:
        with replaced_on_success(dead_letters) as dl:
            for line in dl_lines:
                dl.write(line + b"\n")
    summary.seconds = time.perf_counter() - started
    return summary
