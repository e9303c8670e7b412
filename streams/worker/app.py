"""The live pipeline: a Faust app that ingests, re-keys by child, detects, and publishes alerts.

The agents translate; they do not decide. Every rule lives in :mod:`streams.domain`; this module
decodes records, calls the same :class:`~streams.domain.detector.Detector` the inline engine
uses (one per partition of the per-child topic, its cases in a changelog-backed table), sends
what comes back, and logs.

Topology::

    incidents ──┐                                        ┌─> alerts (key: child_id)
    missing ────┼─ ingest: decode, validate ─> by-child ─┤
    referrals ──┘   (invalid -> dead-letters)  (key: child) └─ cases table (changelog)

The clock. In live mode each partition's clock is the greatest event time it has seen minus the
allowed lateness, and a leader timer publishes the wall clock into every partition so a
deadline fires on time with no further input. In replay mode Faust reads the input partitions at
different paces, so event times alone would make honest events look late; instead the replayer
sends ticks into every input partition ("everything up to t has been sent"), the ingest agents
forward them to every per-child partition, and a partition's clock is the least tick over all
sources: the same clock the inline engine has, so both engines give the same alerts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
import orjson
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import codec
from streams.domain.alerts import Alert, DeadLetter, Mode
from streams.domain.case import CaseState
from streams.domain.detector import Detector
from streams.domain.events import Incident
from streams.domain.params import Params
from streams.domain.time import Millis
from streams.errors import InvalidEvent
from streams.settings import Settings
from streams.state_codec import decode_case, encode_case
from streams.worker import envelope
from streams.worker.envelope import FINISH, FINISH_HEADER, TAG_KINDS, TICK, TICK_HEADER, WALL

log = structlog.get_logger("streams.worker")

FETCH_MAX_WAIT_MS = 50
"""How long the broker may hold a fetch that finds no new record (Faust hard-codes 1,500 ms).
Tansu answers such a fetch only when the time is up, even if records arrive meanwhile, so each
caught-up hop (input -> by-child -> detect) waited up to 1.5 s; Apache Kafka answers as soon as
data arrives, so there this only bounds idle polling (20 fetches/s)."""


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start()
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a shorter fetch wait (see FETCH_MAX_WAIT_MS)."""

    Consumer = _Consumer


_CLOCK_KEY = "{p}|__clock__"
_CLOCK_EVERY = 500
"""Events between two saves of a partition's clock (a stale clock is safe: it is only lower)."""


def wall_ms() -> Millis:
    return time.time_ns() // 1_000_000


def table_bytes(value: Any) -> bytes | None:
    """A value of the cases table as the bytes we wrote.

    Values written in a run are our bytes; after a crash, changelog recovery can hand them back
    decoded as JSON (measured on Apache Kafka: the worker restarted after kill -9 got non-bytes
    values). Both our encodings are JSON, so a decoded value is encoded again.
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


class TableStates(MutableMapping[str, CaseState]):
    """One partition's cases, cached as objects, written through to the changelog table.

    Keys in the table are ``"<partition>|<child_id>"``: the changelog partition of a key is the
    partition of the event that wrote it, so a recovered worker finds each partition's children
    by their prefix.
    """

    def __init__(self, table: Any, partition: int) -> None:
        self._table = table
        self._prefix = f"{partition}|"
        self._cache: dict[str, CaseState] = {}
        for key in list(table.keys()):
            if key.startswith(self._prefix) and not key.endswith("|__clock__"):
                data = table_bytes(table[key])
                if data is not None:
                    self._cache[key[len(self._prefix) :]] = decode_case(data)

    def __getitem__(self, child_id: str) -> CaseState:
        return self._cache[child_id]

    def get(self, child_id: str, default: Any = None) -> Any:
        return self._cache.get(child_id, default)

    def __setitem__(self, child_id: str, state: CaseState) -> None:
        self._cache[child_id] = state
        self._table[self._prefix + child_id] = encode_case(state)

    def __delitem__(self, child_id: str) -> None:
        del self._cache[child_id]
        self._table.pop(self._prefix + child_id, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)


@dataclasses.dataclass
class PartitionDetector:
    """A detector for one partition of the per-child topic, with its replay sources."""

    detector: Detector
    sources: dict[str, Millis] = dataclasses.field(default_factory=dict)
    finished: dict[str, Millis] = dataclasses.field(default_factory=dict)
    since_clock_save: int = 0


def create_app(settings: Settings, *, params: Params | None = None) -> faust.App:
    """The Faust app for ``settings`` (its id, and so its consumer group, follows the prefix)."""
    topics = settings.topics
    mode = Mode(settings.mode)
    params = params or Params(lateness=settings.lateness_ms)
    n = settings.partitions
    expected_sources = 3 * n  # every partition of the three input topics

    app = faust.App(
        f"{settings.topic_prefix}worker",
        broker=[f"kafka://{b}" for b in settings.bootstrap.split(",")],
        store="memory://",
        web_enabled=False,
        topic_partitions=n,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # The embedded broker answers a first JoinGroup after half the session timeout (and
        # Apache Kafka refuses one under 6 s: group.min.session.timeout.ms). A member learns
        # of a rebalance (another worker joining) from a heartbeat's answer: a short interval
        # hands partitions over sooner. Heartbeats run in the consumer's own thread.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=0.5,
        # Offsets are committed every second; Faust's broker_commit_every (200 before) made
        # the stream wait for a producer flush and a commit round trip every 200 records.
        broker_commit_interval=1.0,
        producer_acks=-1,
        table_cleanup_interval=3600.0,
        stream_wait_empty=False,
        logging_config=None,
    )
    app.transport = _Transport(app.conf.broker_consumer, app)  # before any topic is made

    def raw_topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, value_serializer="raw",
                         key_serializer="raw", partitions=n, **kw)  # fmt: skip

    inputs = {kind: raw_topic(name) for kind, name in topics.inputs.items()}
    by_child = raw_topic(topics.by_child, internal=True)
    alerts_topic = raw_topic(topics.alerts)
    dead_letters = raw_topic(topics.dead_letters)
    control = app.topic(
        topics.control, key_type=bytes, value_type=bytes, value_serializer="raw",
        key_serializer="raw", partitions=1,
    )  # fmt: skip
    cases = app.Table(
        "cases",
        default=None,
        partitions=n,
        # Keys as JSON strings (they come back as str after recovery); values are our bytes.
        schema=faust.Schema(
            key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
        ),
    )
    detectors: dict[int, PartitionDetector] = {}

    # -- ingest ------------------------------------------------------------------------------

    async def dead_letter(msg: Any, reason: str) -> None:
        letter = DeadLetter(
            msg.topic, msg.partition, msg.offset, reason, msg.value or b"", wall_ms()
        )
        await dead_letters.send(key=msg.topic.encode(), value=codec.encode_avro(letter))
        log.warning("event_dead_lettered", topic=msg.topic, partition=msg.partition,
                    offset=msg.offset, reason=reason)  # fmt: skip

    async def forward_tick(msg: Any, headers: dict[str, bytes]) -> None:
        source = envelope.source_name(msg.topic, msg.partition)
        if FINISH_HEADER in headers:
            record = envelope.tick_record(FINISH, int(headers[FINISH_HEADER]), source)
        else:
            record = envelope.tick_record(TICK, int(headers[TICK_HEADER]), source)
        for p in range(n):
            await by_child.send(value=record, partition=p)

    def make_ingest(kind: str) -> Any:
        async def ingest(stream: faust.StreamT) -> None:
            async for event in stream.events():
                msg = event.message
                headers = {k: v for k, v in (msg.headers or ())}
                if TICK_HEADER in headers or FINISH_HEADER in headers:
                    await forward_tick(msg, headers)
                    continue
                try:
                    decoded = codec.decode_event_avro(kind, msg.value or b"")
                    if (
                        mode is Mode.LIVE
                        and decoded.occurred_at > wall_ms() + settings.max_ahead_ms
                    ):
                        raise InvalidEvent(
                            f"{kind} field 'occurred_at': more than "
                            f"{settings.max_ahead_ms // 3_600_000} hours ahead of the wall clock"
                        )
                except InvalidEvent as exc:
                    await dead_letter(msg, exc.reason)
                    continue
                record = envelope.event_record(kind, msg.value)
                children = (
                    dict.fromkeys(c.child_id for c in decoded.children)
                    if isinstance(decoded, Incident)
                    else (decoded.child_id,)
                )
                for child_id in children:
                    await by_child.send(key=child_id.encode(), value=record)

        ingest.__name__ = f"ingest_{kind}"
        return ingest

    for kind, topic in inputs.items():
        app.agent(topic, name=f"ingest-{kind}")(make_ingest(kind))

    # -- detect ------------------------------------------------------------------------------

    def partition_detector(p: int) -> tuple[PartitionDetector, list[Alert]]:
        """The partition's detector; built from the recovered table on first use, with the
        alerts its cases hold. They are published again: an alert whose record a crash
        swallowed is still in the recovered state, so nothing is lost (same ids)."""
        pd = detectors.get(p)
        if pd is not None:
            return pd, []
        saved = table_bytes(cases.get(_CLOCK_KEY.format(p=p)))
        # [clock, max_seen, replay sources, finished sources]: the replay ticks a partition
        # has heard are not heard again after a crash (their offsets were committed).
        clock, max_seen, sources, finished = orjson.loads(saved) if saved else [None, None, {}, {}]
        states = TableStates(cases, p)
        det = Detector(
            params,
            mode=mode,
            states=states,
            clock=clock,
            max_seen=max_seen,
            until=settings.until_ms if mode is Mode.REPLAY else None,
            # Replay: the clock follows the replayer's ticks, not each partition's events.
            clock_from_events=mode is Mode.LIVE,
        )
        pd = detectors[p] = PartitionDetector(det, dict(sources), dict(finished))
        log.info("partition_started", partition=p, children=len(states),
                 clock=clock, mode=mode.value)  # fmt: skip
        return pd, [a for state in states.values() for a in state.alerts.values()]

    async def publish(alerts: list[Alert]) -> None:
        for alert in alerts:
            await alerts_topic.send(key=alert.child_id.encode(), value=codec.encode_avro(alert))
            log.info("alert_published", alert_id=alert.alert_id, rule_id=alert.rule_id,
                     status=alert.status.value, severity=alert.severity.value)  # fmt: skip

    async def on_tick(p: int, pd: PartitionDetector, tick: envelope.Tick) -> list[Alert]:
        det = pd.detector
        if tick.kind == WALL:
            out = det.tick(tick.at) if mode is Mode.LIVE else []
            log.debug("wall_tick", partition=p, clock=det.clock, children=len(det.states))
            return out
        pd.sources[tick.source] = max(pd.sources.get(tick.source, tick.at), tick.at)
        if tick.kind == FINISH:
            pd.finished[tick.source] = tick.at
        if len(pd.sources) < expected_sources:
            return []
        if len(pd.finished) == expected_sources:
            out = det.finish(max(pd.finished.values()))
            await publish(out)
            await app.producer.flush()
            await control.send(
                value=orjson.dumps({"partition": p, "clock": det.clock, "done": True}),
            )
            log.info("partition_finished", partition=p, clock=det.clock)
            return []
        # Every source has sent everything at or before its tick: deadlines up to the least
        # of them can fire (a deadline fires when the clock passes it).
        return det.advance_to(min(pd.sources.values()) + 1)

    @app.agent(by_child, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            p = msg.partition
            pd, recovered = partition_detector(p)
            if recovered:
                await publish(recovered)
            value: bytes = msg.value
            tag = value[0]
            log.debug("record", partition=p, offset=msg.offset, kind=chr(tag))
            if tag in TAG_KINDS:
                decoded = codec.decode_event_avro(TAG_KINDS[tag], value[1:])
                if isinstance(decoded, Incident):
                    child_id = msg.key.decode()
                    only = tuple(c for c in decoded.children if c.child_id == child_id)[:1]
                    decoded = dataclasses.replace(decoded, children=only)
                out = pd.detector.feed(decoded)
            else:
                out = await on_tick(p, pd, envelope.parse_tick(value))
            await publish(out)
            pd.since_clock_save += 1
            if pd.since_clock_save >= _CLOCK_EVERY or tag in (TICK, FINISH, WALL):
                det = pd.detector
                cases[_CLOCK_KEY.format(p=p)] = orjson.dumps(
                    [det.clock, det.max_seen, pd.sources, pd.finished]
                )
                pd.since_clock_save = 0

    @app.timer(interval=settings.tick_interval_s, on_leader=True)
    async def wall_clock_tick() -> None:
        if mode is Mode.LIVE:
            record = envelope.tick_record(WALL, wall_ms())
            for p in range(n):
                await by_child.send(value=record, partition=p)

    async def on_revoked(_: Any, revoked: Any, **__: Any) -> None:
        for tp in revoked:
            if tp.topic == topics.by_child:
                detectors.pop(tp.partition, None)

    app.on_partitions_revoked.connect(on_revoked)

    app.safeguarding_detectors = detectors  # type: ignore[attr-defined]
    return app
