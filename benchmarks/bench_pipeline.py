"""The pipeline benchmark: one table of events/s and SG04 latency, per broker.

    .venv/bin/python benchmarks/bench_pipeline.py [--events N] [--brokers apache,tansu]

For each broker, started here and stopped at the end (one at a time), in a fresh topic prefix:

1. **replay**: a generated history of about N events (``streams.generate``) is produced to the
   input topics by ``streams.replay.replay`` (Avro, with the replay ticks);
2. **ceiling**: a plain aiokafka consumer reads those input topics: events/s from its first to
   its last event (what the client library can do here, with no Faust);
3. **passthrough**: ``benchmarks/faust_passthrough.py`` (a Faust agent forwarding every record
   to another topic) as a child process: events/s between the timestamps of its first and last
   forwarded record (so Faust's start-up and group join are not counted), and events per
   CPU-second of that process over the same window;
4. **pipeline**: ``safeguarding worker --mode replay`` as a child process over the same input:
   events/s between its first per-child record and the last partition's finish marker on the
   control topic (``collect_alerts`` in streams/backtest_kafka.py waits for them), and events
   per CPU-second of the worker;
5. **SG04 latency**: a live-mode worker in another prefix, a steady background load of valid
   referrals to unrelated children, and every ``--probe-every`` seconds a looked-after child's
   two missing reports (REPORTED at HIGH, then a second episode REPORTED as ABSENT), which
   raise SG04 at once; latency = the second report handed to the producer -> the alert read
   from the alerts topic by a consumer in this process; p50, p99 and max, and the part of it
   up to the alert's ``detected_at`` (the rest is publishing the alert and reading it back).

Every phase reads topics that are already full (2-4) or a steady feed (5): a measure is the
consumer's, not the producer's. Speed is printed, never asserted. Events/s depend on the
machine and on what else runs on it (on a shared 2-core machine they vary by half from run to
run); events per CPU-second vary much less, so compare those. The two brokers are measured in
one run so that they can be compared.

Workers and brokers are child processes of this one; they are stopped on the way out, also on
Ctrl-C. Their logs are kept in a temporary directory that is printed when a phase fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import codec
from streams.backtest_kafka import collect_alerts, stop_worker
from streams.broker import TopicSpec, create_topics
from streams.domain.events import Agency, MissingReport, MissingStatus, Referral, RiskLevel
from streams.generate import run_generate
from streams.replay import replay
from streams.settings import Settings
from streams.testing.kafka import BROKER_NAMES, BrokerName, start_broker
from streams.worker.topics import topic_specs

HERE = Path(__file__).resolve().parent
PASSTHROUGH = HERE / "faust_passthrough.py"
EVENTS_PER_CHILD_YEAR = 4.27
"""Events ``streams.generate`` writes per child over 365 days (measured: 24,000 children ->
102,448 events); used to size the history for ``--events``."""


@dataclass(slots=True)
class Result:
    """One broker's figures; None where a phase was skipped or failed."""

    broker: str
    events: int = 0
    replay_rate: float | None = None
    ceiling_rate: float | None = None
    passthrough_rate: float | None = None
    pipeline_rate: float | None = None
    passthrough_per_cpu: float | None = None
    """Events per CPU-second of the pass-through process, over the same window."""
    pipeline_per_cpu: float | None = None
    pipeline_alerts: int | None = None
    worker_ready_s: float | None = None
    """Pipeline: worker process start -> its first per-child record."""
    latencies_ms: list[float] = field(default_factory=list)
    """SG04: the report handed to the producer -> the alert read back, sorted."""
    detect_ms: list[float] = field(default_factory=list)
    """SG04: the report handed to the producer -> the alert's ``detected_at``, sorted (the rest
    of the latency is publishing the alert and reading it back)."""
    latency_lost: int = 0
    notes: list[str] = field(default_factory=list)


# -- child processes ---------------------------------------------------------------------------


def spawn(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child process in its own session, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@contextlib.contextmanager
def running(
    command: Sequence[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(command, env, log)
    try:
        yield proc
    finally:
        stop_worker(proc, timeout=20.0)


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "SAFEGUARDING_TOPIC_PREFIX": settings.topic_prefix,
        "SAFEGUARDING_MODE": settings.mode,
        "SAFEGUARDING_PARTITIONS": str(settings.partitions),
        "SAFEGUARDING_TICK_INTERVAL_S": str(settings.tick_interval_s),
        "SAFEGUARDING_LOG_LEVEL": "warning",
    }


WORKER_COMMAND = (sys.executable, "-m", "streams.cli", "worker")


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class CpuWatch:
    """A child process's CPU time (all threads, from /proc), sampled with wall-clock stamps.

    On a shared machine events/s depends on what else runs; events per CPU-second of the
    worker is the steadier figure. None where /proc is missing (not Linux).
    """

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self._path = Path(f"/proc/{pid}/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._every = every
        self.samples: list[tuple[float, float]] = []
        """(wall ms, CPU seconds) pairs."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fields = self._path.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                return
            # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
            cpu = (int(fields[11]) + int(fields[12])) / self._tick
            self.samples.append((time.time() * 1000, cpu))
            self._stop.wait(self._every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start_ms: float, end_ms: float) -> float | None:
        """CPU seconds used between two wall-clock times (linear between samples)."""
        if len(self.samples) < 2 or not (
            self.samples[0][0] <= start_ms < end_ms <= self.samples[-1][0]
        ):
            return None
        return self._at(end_ms) - self._at(start_ms)

    def _at(self, ms: float) -> float:
        for (t0, c0), (t1, c1) in itertools.pairwise(self.samples):
            if t0 <= ms <= t1:
                return c0 + (c1 - c0) * (ms - t0) / max(t1 - t0, 1e-9)
        raise ValueError(ms)


# -- reading topics ----------------------------------------------------------------------------


def consumer(bootstrap: str, **kw: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **kw,
    )


async def read_events(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int,
    expected: int,
    *,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> tuple[int, int, int]:
    """Read ``topics`` from the start until ``expected`` records with a value (events, not
    replay ticks) were seen; return (events, least timestamp, greatest timestamp), in ms.
    ``alive`` watches the process that writes them."""
    c = consumer(bootstrap)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        seen = 0
        ts_min, ts_max = sys.maxsize, 0
        deadline = time.monotonic() + timeout
        while seen < expected:
            batch = await c.getmany(timeout_ms=200, max_records=50_000)
            for records in batch.values():
                for record in records:
                    if record.value:
                        seen += 1
                        ts_min = min(ts_min, record.timestamp)
                        ts_max = max(ts_max, record.timestamp)
            if not alive():
                raise RuntimeError(f"the writer exited after {seen} of {expected} events")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{seen} of {expected} events in {timeout:.0f} s")
        return seen, ts_min, ts_max
    finally:
        await c.stop()


async def ceiling(settings: Settings, expected: int) -> float:
    """A plain consumer reading the input topics: events/s, from its first fetch (which
    includes finding the start offsets) to its last event."""
    c = consumer(settings.bootstrap)
    await c.start()
    try:
        tps = [
            TopicPartition(t, p) for t in settings.topics.inputs.values()
            for p in range(settings.partitions)
        ]  # fmt: skip
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while seen < expected:
            batch = await c.getmany(timeout_ms=200, max_records=50_000)
            for records in batch.values():
                seen += sum(1 for r in records if r.value)
            if time.monotonic() > deadline:
                raise TimeoutError(f"ceiling: {seen} of {expected} events in 600 s")
        return seen / max(time.perf_counter() - started, 1e-9)
    finally:
        await c.stop()


async def first_timestamp(bootstrap: str, topic: str, partitions: int, timeout: float) -> int:
    """The least timestamp among the first records of ``topic``'s partitions."""
    c = consumer(bootstrap)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        firsts: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(firsts) < partitions and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=200, max_records=1)
            for tp, records in batch.items():
                if records:
                    firsts.setdefault(tp.partition, records[0].timestamp)
                    c.pause(tp)
        if not firsts:
            raise TimeoutError(f"{topic}: no record in {timeout:.0f} s")
        return min(firsts.values())
    finally:
        await c.stop()


async def finish_timestamp(settings: Settings, timeout: float = 30.0) -> int:
    """The greatest timestamp of the replay's finish markers on the control topic."""
    c = consumer(settings.bootstrap)
    await c.start()
    try:
        tp = TopicPartition(settings.topics.control, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        done: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(done) < settings.partitions and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=200)
            for record in batch.get(tp, ()):
                marker = orjson.loads(record.value)
                if marker.get("done"):
                    done[int(marker["partition"])] = record.timestamp
        return max(done.values())
    finally:
        await c.stop()


# -- phases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """A consumer's speed over the window from its first to its last record."""

    per_second: float
    per_cpu_second: float | None
    """Events per CPU-second of the process measured, over the same window."""


def _rate(events: int, first_ms: float, last_ms: float, watch: CpuWatch) -> Rate:
    cpu = watch.cpu_between(first_ms, last_ms)
    return Rate(
        events / max((last_ms - first_ms) / 1000, 1e-3),
        events / cpu if cpu else None,
    )


async def passthrough(
    settings: Settings, expected: int, log: Path, faust_settings: str | None
) -> Rate:
    """The Faust pass-through over the input topics, first to last forwarded record."""
    output = f"{settings.topic_prefix}passthrough"
    await create_topics(settings.bootstrap, [TopicSpec(output, settings.partitions)])
    env = {
        "PASSTHROUGH_BOOTSTRAP": settings.bootstrap,
        "PASSTHROUGH_INPUTS": ",".join(settings.topics.inputs.values()),
        "PASSTHROUGH_OUTPUT": output,
        "PASSTHROUGH_APP_ID": f"{settings.topic_prefix}passthrough",
        "PASSTHROUGH_SETTINGS": faust_settings or "{}",
    }
    with running((sys.executable, str(PASSTHROUGH)), env, log) as proc:
        watch = CpuWatch(proc.pid)
        try:
            seen, first, last = await read_events(
                settings.bootstrap, [output], settings.partitions, expected,
                timeout=900, alive=lambda: proc.poll() is None,
            )  # fmt: skip
            await asyncio.sleep(0.5)  # a CPU sample after the last record
        finally:
            watch.stop()
    return _rate(seen, first, last, watch)


async def pipeline(
    settings: Settings, expected: int, log: Path, command: Sequence[str]
) -> tuple[Rate, int, float]:
    """The replay-mode worker over the full input topics, from its first per-child record to
    the last finish marker; also the alerts, and seconds from process start to that record."""
    started = time.time() * 1000
    with running(command, worker_env(settings), log) as proc:
        watch = CpuWatch(proc.pid)
        try:
            alerts = await collect_alerts(
                settings, partitions=settings.partitions, worker=proc, timeout=1800
            )
        finally:
            watch.stop()
    first = await first_timestamp(settings.bootstrap, settings.topics.by_child,
                                  settings.partitions, timeout=30)  # fmt: skip
    last = await finish_timestamp(settings)
    return _rate(expected, first, last, watch), len(alerts), (first - started) / 1000


def _missing(child: str, episode: str, at: int, risk: RiskLevel, seq: int) -> MissingReport:
    return MissingReport(
        event_id=f"{episode}-{seq}", occurred_at=at, episode_id=episode, child_id=child,
        status=MissingStatus.REPORTED, risk_level=risk, looked_after=True, age=14,
    )  # fmt: skip


async def sg04_latency(
    settings: Settings,
    log: Path,
    command: Sequence[str],
    *,
    samples: int,
    probe_every: float,
    background_rate: float,
    result: Result,
) -> None:
    """Live worker, background referrals, SG04 probes: latencies (ms) into ``result``."""
    topics = settings.topics
    run = uuid.uuid4().hex[:6]
    await create_topics(settings.bootstrap, topic_specs(settings))
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=0)
    # A short fetch wait: a broker that does not answer a waiting fetch as soon as data
    # arrives would otherwise add up to the default 500 ms to every sample.
    alerts = consumer(settings.bootstrap, fetch_max_wait_ms=20)
    sent_at: dict[str, float] = {}
    sent_wall: dict[str, int] = {}
    measured: set[str] = set()
    latencies: dict[str, float] = {}
    detected: dict[str, float] = {}
    first_alert = asyncio.Event()
    stopping = asyncio.Event()

    def wall() -> int:
        return time.time_ns() // 1_000_000

    async def background() -> None:
        per_tick = max(1, round(background_rate / 100))
        for i in itertools.count():
            if stopping.is_set():
                return
            now = wall()
            for j in range(per_tick):
                n = i * per_tick + j
                child = f"BG{run}-{n % 5000}"
                ref = Referral(
                    event_id=f"BGE{run}-{n}", occurred_at=now, referral_id=f"BGR{run}-{n}",
                    child_id=child, agency=Agency.SCHOOL, incident_id=None, episode_id=None,
                )  # fmt: skip
                await producer.send(topics.referrals, codec.encode_avro(ref), key=child.encode())
            await asyncio.sleep(0.01)

    async def probe(k: int, measure: bool) -> None:
        child = f"LAT{run}-{k}"
        now = wall()
        first = _missing(child, f"{child}-1", now - 2_000, RiskLevel.HIGH, 1)
        second = _missing(child, f"{child}-2", now - 1_000, RiskLevel.ABSENT, 1)
        await producer.send(topics.missing_reports, codec.encode_avro(first),
                            key=child.encode())  # fmt: skip
        sent_at[child] = time.perf_counter()
        sent_wall[child] = wall()
        if measure:
            measured.add(child)
        await producer.send(topics.missing_reports, codec.encode_avro(second),
                            key=child.encode())  # fmt: skip

    async def read_alerts() -> None:
        tps = [TopicPartition(topics.alerts, p) for p in range(settings.partitions)]
        alerts.assign(tps)
        await alerts.seek_to_beginning(*tps)
        while not stopping.is_set():
            batch = await alerts.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    alert = codec.decode_alert_avro(record.value)
                    at = sent_at.get(alert.child_id)
                    if alert.rule_id == "SG04" and at is not None:
                        first_alert.set()
                        latencies.setdefault(alert.child_id, (now - at) * 1000)
                        detected.setdefault(
                            alert.child_id, alert.detected_at - sent_wall[alert.child_id]
                        )

    await producer.start()
    await alerts.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        with running(command, worker_env(settings), log) as proc:
            tasks = [asyncio.create_task(read_alerts()), asyncio.create_task(background())]
            k = 0
            deadline = time.monotonic() + 120
            while not first_alert.is_set():  # warm-up: the worker joins and catches up
                await probe(k, measure=False)
                k += 1
                await asyncio.sleep(probe_every)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the live worker raised no SG04 alert in 120 s")
            await asyncio.sleep(2.0)
            for _ in range(samples):
                await probe(k, measure=True)
                k += 1
                await asyncio.sleep(probe_every)
            deadline = time.monotonic() + 10
            while not measured <= latencies.keys() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if proc.poll() is not None:
                raise RuntimeError(f"the live worker exited with status {proc.returncode}")
    finally:
        stopping.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        await alerts.stop()
        await producer.stop()
    result.latencies_ms = sorted(latencies[c] for c in measured if c in latencies)
    result.detect_ms = sorted(detected[c] for c in measured if c in detected)
    result.latency_lost = len(measured) - len(result.latencies_ms)


# -- one broker --------------------------------------------------------------------------------


def _fail(result: Result, phase: str, exc: BaseException, log: Path | None) -> None:
    result.notes.append(f"{phase} failed: {exc!r}")
    print(f"[{result.broker}] {phase} failed: {exc!r}", file=sys.stderr)
    if log is not None and (text := tail(log)):
        print(f"[{result.broker}] {log} (tail):\n{text}", file=sys.stderr)


def bench_broker(name: BrokerName, history: Path, events: int, args: argparse.Namespace) -> Result:
    result = Result(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    say = _say(name)
    say(f"starting the broker (logs in {workdir})")
    with start_broker(name) as broker:
        prefix = f"bench.{uuid.uuid4().hex[:8]}."
        settings = Settings.from_env(
            {}, bootstrap=broker.bootstrap, topic_prefix=prefix, mode="replay",
            partitions=args.partitions,
        )  # fmt: skip

        async def produce() -> None:
            sent = await replay([history], settings)
            result.events = sent.events
            result.replay_rate = sent.events / sent.seconds
            say(f"replay: {sent.events:,} events in {sent.seconds:.1f} s")

        asyncio.run(produce())
        if "ceiling" in args.measures:
            try:
                result.ceiling_rate = asyncio.run(ceiling(settings, result.events))
                say(f"ceiling: {result.ceiling_rate:,.0f} events/s")
            except Exception as exc:
                _fail(result, "ceiling", exc, None)
        if "passthrough" in args.measures:
            log = workdir / "passthrough.log"
            try:
                rate = asyncio.run(passthrough(settings, result.events, log, args.faust_settings))
                result.passthrough_rate = rate.per_second
                result.passthrough_per_cpu = rate.per_cpu_second
                say(f"passthrough: {rate.per_second:,.0f} events/s, "
                    f"{rate.per_cpu_second or 0:,.0f} per CPU-second")  # fmt: skip
            except Exception as exc:
                _fail(result, "passthrough", exc, log)
        if "pipeline" in args.measures:
            log = workdir / "pipeline-worker.log"
            try:
                rate, alerts, ready = asyncio.run(
                    pipeline(settings, result.events, log, args.worker_command)
                )
                result.pipeline_rate = rate.per_second
                result.pipeline_per_cpu = rate.per_cpu_second
                result.pipeline_alerts, result.worker_ready_s = alerts, ready
                say(f"pipeline: {rate.per_second:,.0f} events/s, "
                    f"{rate.per_cpu_second or 0:,.0f} per CPU-second, {alerts:,} alerts, "
                    f"first record {ready:.1f} s after the worker started")  # fmt: skip
            except Exception as exc:
                _fail(result, "pipeline", exc, log)
        if "latency" in args.measures:
            log = workdir / "live-worker.log"
            live = Settings.from_env(
                {}, bootstrap=broker.bootstrap, topic_prefix=f"bench.{uuid.uuid4().hex[:8]}.",
                mode="live", partitions=args.partitions,
            )  # fmt: skip
            try:
                asyncio.run(
                    sg04_latency(
                        live, log, args.worker_command, samples=args.samples,
                        probe_every=args.probe_every, background_rate=args.background_rate,
                        result=result,
                    )
                )  # fmt: skip
                say(f"SG04 latency: {len(result.latencies_ms)} samples, "
                    f"{result.latency_lost} lost")  # fmt: skip
            except Exception as exc:
                _fail(result, "latency", exc, log)
    return result


def _say(broker: str) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(f"[{broker}] {text}", file=sys.stderr, flush=True)

    return say


# -- the table ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


def table(results: Sequence[Result], args: argparse.Namespace) -> str:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    def ms(values: list[float], q: float | None) -> str:
        if not values:
            return "-"
        return f"{(values[-1] if q is None else percentile(values, q)):,.0f}"

    def alerts(r: Result) -> str:
        return "-" if r.pipeline_alerts is None else f"{r.pipeline_alerts:,}"

    def ready(r: Result) -> str:
        return "-" if r.worker_ready_s is None else f"{r.worker_ready_s:.1f}"

    measures: list[tuple[str, Callable[[Result], str]]] = [
        ("events", lambda r: f"{r.events:,}"),
        ("replay: produce, events/s", lambda r: rate(r.replay_rate)),
        ("ceiling: plain aiokafka consumer, events/s", lambda r: rate(r.ceiling_rate)),
        ("Faust pass-through, events/s", lambda r: rate(r.passthrough_rate)),
        ("  per CPU-second of its process", lambda r: rate(r.passthrough_per_cpu)),
        ("pipeline (replay worker), events/s", lambda r: rate(r.pipeline_rate)),
        ("  per CPU-second of the worker", lambda r: rate(r.pipeline_per_cpu)),
        ("pipeline: alerts", alerts),
        ("pipeline: worker start -> first record, s", ready),
        (
            f"SG04 latency p50, ms (background {args.background_rate:.0f}/s)",
            lambda r: ms(r.latencies_ms, 50),
        ),
        ("SG04 latency p99, ms", lambda r: ms(r.latencies_ms, 99)),
        ("SG04 latency max, ms", lambda r: ms(r.latencies_ms, None)),
        (
            "SG04 produce -> detected_at p50 / p99, ms",
            lambda r: f"{ms(r.detect_ms, 50)} / {ms(r.detect_ms, 99)}",
        ),
        ("SG04 samples (lost)", lambda r: f"{len(r.latencies_ms)} ({r.latency_lost})"),
    ]
    rows = [(label, *(cell(r) for r in results)) for label, cell in measures]
    header = ("measure", *(r.broker for r in results))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    out = [fmt(header), line, *(fmt(row) for row in rows)]
    for r in results:
        out.extend(f"note [{r.broker}]: {note}" for note in r.notes)
    return "\n".join(out)


# -- command line ------------------------------------------------------------------------------

MEASURES = ("ceiling", "passthrough", "pipeline", "latency")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=100_000, help="history size (approximate)")
    p.add_argument("--brokers", default=",".join(("apache", "tansu")),
                   help=f"comma-separated, of {', '.join(BROKER_NAMES)}")  # fmt: skip
    p.add_argument("--measures", default=",".join(MEASURES),
                   help=f"comma-separated, of {', '.join(MEASURES)}")  # fmt: skip
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--samples", type=int, default=300, help="SG04 latency samples")
    p.add_argument("--probe-every", type=float, default=0.1, help="seconds between probes")
    p.add_argument("--background-rate", type=float, default=300.0,
                   help="background referrals per second during the latency phase")  # fmt: skip
    p.add_argument("--faust-settings", default=None,
                   help="JSON of extra faust.App settings for the pass-through")  # fmt: skip
    p.add_argument("--worker-command", default=" ".join(WORKER_COMMAND),
                   help="the worker command (for trying a modified worker)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    args.worker_command = args.worker_command.split()
    args.measures = set(args.measures.split(","))
    unknown = args.measures - set(MEASURES)
    brokers = args.brokers.split(",")
    if unknown or any(b not in BROKER_NAMES for b in brokers):
        p.error(f"unknown measure or broker: {sorted(unknown)} {brokers}")
    args.brokers = brokers
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    # Right after a topic is created Apache Kafka answers NotLeaderForPartition for a moment;
    # aiokafka retries and logs each one as a warning.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        history = Path(tmp) / "history.jsonl"
        children = max(1, round(args.events / EVENTS_PER_CHILD_YEAR))
        summary = run_generate(children, 365, args.seed, history)
        print(f"history: {summary['events']:,} events, {children:,} children, 365 days",
              file=sys.stderr)  # fmt: skip
        results = [bench_broker(b, history, summary["events"], args) for b in args.brokers]
    print(table(results, args))
    return 1 if any(r.notes for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
