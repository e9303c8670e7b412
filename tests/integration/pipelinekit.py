"""Running the real pipeline in tests: workers as child processes, replay, alerts read back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import codec
from streams.backtest import backtest_inline
from streams.backtest_kafka import PipelineFailed, collect_alerts, start_worker
from streams.broker import create_topics
from streams.domain.alerts import Alert, DeadLetter
from streams.settings import Settings
from streams.worker.topics import topic_specs

COMPARED = (
    "rule_id", "child_id", "trigger_id", "severity", "status", "raised_at", "due_at",
    "resolved_at", "evidence", "summary",
)  # fmt: skip


def settings_for(
    bootstrap: str,
    prefix: str,
    *,
    mode: str = "replay",
    partitions: int = 4,
    save_interval_s: float | None = None,
) -> Settings:
    return Settings.from_env(
        {}, bootstrap=bootstrap, topic_prefix=prefix, mode=mode, partitions=partitions,
        tick_interval_s=0.5, save_interval_s=save_interval_s,
    )  # fmt: skip


def create(settings: Settings) -> None:
    asyncio.run(create_topics(settings.bootstrap, topic_specs(settings)))


@contextmanager
def worker(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn_worker(settings, log)
    try:
        yield proc
    finally:
        stop(proc)


def spawn_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``safeguarding worker`` as a child process, exactly as the product starts one."""
    return start_worker(settings, log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def logged(log: Path, event: str) -> list[dict[str, Any]]:
    """The records of ``event`` in the log of a worker (none while the log does not exist)."""
    needle = f'"event": "{event}"'.encode()
    lines = log.read_bytes().splitlines() if log.exists() else []
    return [orjson.loads(line[line.index(b"{") :]) for line in lines if needle in line]


def wait_for_log(
    log: Path,
    proc: subprocess.Popen[bytes],
    event: str,
    timeout: float = 120,
    where: Any = lambda _: True,
) -> dict[str, Any]:
    """The first ``event`` the worker writing ``log`` logged for which ``where`` holds;
    fails if the worker exits or logs none within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the worker exited with {proc.returncode}"
        for record in logged(log, event):
            if where(record):
                return record
        time.sleep(0.2)
    raise AssertionError(f"no {event} within {timeout} s ({log.name})")


def wait_for_assignment(
    log: Path, proc: subprocess.Popen[bytes], timeout: float = 120
) -> list[int]:
    """The per-child partitions the worker writing ``log`` was first given (its
    ``partitions_assigned`` line with some); fails if it has none within ``timeout``."""
    record = wait_for_log(log, proc, "partitions_assigned", timeout, lambda r: r["partitions"])
    return list(record["partitions"])


def wait_for_shared_assignment(
    workers: list[tuple[Path, subprocess.Popen[bytes]]], partitions: int, timeout: float = 120
) -> list[set[int]]:
    """The per-child partitions of each worker (its log and process) once they share them:
    each worker's latest ``partitions_assigned`` names some, no two name the same, and
    together they name all. (A worker's first assignment can be every partition, given
    before the others joined.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held: list[set[int]] = []
        for log, proc in workers:
            assert proc.poll() is None, f"the worker exited with {proc.returncode}"
            assigned = logged(log, "partitions_assigned")
            held.append(set(assigned[-1]["partitions"]) if assigned else set())
        if all(held) and sum(map(len, held)) == partitions == len(set().union(*held)):
            return held
        time.sleep(0.2)
    raise AssertionError(f"the workers did not share the {partitions} partitions in {timeout} s")


def collect(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    logs: Sequence[Path],
    timeout: float = 600,
) -> dict[str, Alert]:
    """:func:`collect_alerts` of every partition; when a partition never finishes, the failure
    carries the end of each worker's log, so a run in CI says what the workers did."""
    try:
        return asyncio.run(
            collect_alerts(settings, partitions=settings.partitions, worker=worker, timeout=timeout)
        )
    except PipelineFailed as exc:
        tails = [f"--- {log.name} ---\n" + log_tail(log) for log in logs]
        raise AssertionError("\n".join([str(exc), *tails])) from exc


def log_tail(log: Path, lines: int = 60, width: int = 400) -> str:
    """The last ``lines`` lines of a worker's log, each cut to ``width`` characters."""
    text = log.read_bytes().decode(errors="replace").splitlines() if log.exists() else []
    return "\n".join(line[:width] for line in text[-lines:])


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def inline_alerts(path: Path, tmp: Path) -> dict[str, tuple[object, ...]]:
    out = tmp / "inline.jsonl"
    backtest_inline([path], out)
    return inline_from_file(out)


def inline_from_file(path: Path) -> dict[str, tuple[object, ...]]:
    rows = map(orjson.loads, path.read_bytes().splitlines())
    return {d["alert_id"]: tuple(d[k] for k in COMPARED) for d in rows}


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def wait_for_alert(
    settings: Settings, rule_id: str, *, timeout: float, worker: subprocess.Popen[bytes]
) -> Alert:
    """The first alert of ``rule_id`` on the alerts topic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        values = asyncio.run(
            read_all(settings.bootstrap, settings.topics.alerts, settings.partitions, quiet=0.3)
        )
        for value in values:
            alert = codec.decode_alert_avro(value)
            if alert.rule_id == rule_id:
                return alert
        assert worker.poll() is None, f"the worker exited with status {worker.returncode}"
        time.sleep(0.3)
    raise AssertionError(f"no {rule_id} alert within {timeout} s")


__all__ = ["Any", "Settings", "replace"]


def comparable(alerts: Iterable[Alert]) -> dict[str, tuple[object, ...]]:
    return {a.alert_id: tuple(codec.alert_to_dict(a)[k] for k in COMPARED) for a in alerts}


async def read_all(
    bootstrap: str, topic: str, partitions: int, *, quiet: float = 2.0
) -> list[bytes]:
    """The value of every record of ``topic`` (until ``quiet`` seconds pass with nothing new)."""
    return [r.value for r in await read_records(bootstrap, topic, partitions, quiet=quiet)]


async def read_records(
    bootstrap: str, topic: str, partitions: int, *, quiet: float = 2.0
) -> list[Any]:
    """Every record of ``topic`` (aiokafka's, with key and partition), until ``quiet`` seconds
    pass with nothing new."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        idle = 0.0
        while idle < quiet:
            batch = await consumer.getmany(timeout_ms=250)
            got = [r for records in batch.values() for r in records]
            out += got
            idle = 0.0 if got else idle + 0.25
        return out
    finally:
        await consumer.stop()


async def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def dead_letters(values: Iterable[bytes]) -> list[DeadLetter]:
    return [codec.decode_dead_letter_avro(v) for v in values]
