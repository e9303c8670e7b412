"""The live pipeline: a Faust app that ingests, re-keys by child, detects, and publishes alerts.

The worker translates; it does not decide. Every rule lives in :mod:`streams.domain`; this module
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
sends ticks into every input partition ("everything up to t has been sent"), ingest
forwards them to every per-child partition, and a partition's clock is the least tick over all
sources: the same clock the inline engine has, so both engines give the same alerts.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import hashlib
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any, cast

import faust
import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

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
from streams.worker.envelope import (
    BATCH,
    FINISH,
    FINISH_HEADER,
    TAG_KINDS,
    TICK,
    TICK_HEADER,
    WALL,
)
from streams.worker.ingest import Ingest

log = structlog.get_logger("streams.worker")


_CLOCK_KEY = "{p}|__clock__"

BATCH_ITEMS = 2_000
"""Items at most in one per-child record (about 150 bytes each: well under Kafka's 1 MB)."""
BATCH_WAIT_S = {Mode.LIVE: 0.01, Mode.REPLAY: 0.1}
"""How long ingest waits for more records before it forwards a list that is not full:
the latency a quiet pipeline adds (live: 10 ms, of SPEC's seconds; a replay has time, and
larger batches mean fewer per-child records, each child's state written once per record)."""

SAVE_EVERY_S = {Mode.LIVE: 1.0, Mode.REPLAY: 5.0}
"""How often the detect agent writes its partitions' changed states (and then acks the records
it applied): a child with several events in that time is written once. A crash costs applying
these seconds again, from the per-child topic. A child's events come in bursts (a missing
episode's steps, an incident and its referrals): in a generated history, the distinct children
in 40,000 events (about 5 s of replay) were half those in 8,000 (about 1 s)."""

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

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Seek every assigned partition to its committed offset, and one with none to its
        beginning (``consumer_auto_offset_reset="earliest"``).

        Faust calls this after every rebalance, to read again what a fetch cut short by the
        rebalance took out of the consumer but never handed to a stream. aiokafka's own
        ``seek_to_committed`` leaves a partition with no committed offset where it is, so
        those records were skipped for good: measured, a worker restarted after ``kill -9``
        waited forever for per-child records that the consumer had fetched before the dead
        worker left the group and then dropped."""
        return await self.call_thread(self._seek_to_committed_or_beginning)  # type: ignore[no-any-return]

    async def _seek_to_committed_or_beginning(self) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[Any, int] = await consumer.seek_to_committed()
        changelogs = set(self.app.tables.changelog_topics)  # positioned by table recovery
        fresh = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        return committed


class _ReadOffsets(defaultdict[Any, int | None]):
    """Faust's read offsets (it drops a fetched record below its partition's), none for a
    partition that :class:`OffsetGuard` sought back on until the record it sought arrives:
    the rest of the fetch under way at the seek raises the read offset again, and Faust then
    dropped the very records sought back for (measured: the worker waited for them forever).
    The guard drops those late records itself."""

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.rewinding: set[Any] = set()

    def __getitem__(self, tp: Any) -> int | None:
        return None if tp in self.rewinding else super().__getitem__(tp)


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _ReadOffsets()

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_in_thread(self, tp: Any, offset: int) -> None:
        """Seek back to ``offset`` for :class:`OffsetGuard`, in the consumer's own thread:
        Faust's ``Consumer.seek`` calls aiokafka from the worker's thread, which is not safe
        while a fetch is under way (measured: the fetch failed with a KeyError and the worker
        stopped)."""
        cast(_ReadOffsets, self._read_offset).rewinding.add(tp)
        thread = self._thread
        await thread.call_thread(thread._ensure_consumer().seek, tp, offset)

    def end_rewind(self, tp: Any) -> None:
        """The record sought back for arrived (or the partition was revoked)."""
        cast(_ReadOffsets, self._read_offset).rewinding.discard(tp)


class _Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a shorter fetch wait (see FETCH_MAX_WAIT_MS) and the
    seeks of :class:`OffsetGuard`."""

    Consumer = _Consumer


class OffsetGuard:
    """Notices a record that Faust skipped, and reads it again.

    Around a rebalance Faust drops records that a fetch had already taken out of the consumer
    (``Consumer.getmany`` stops handing them on when the flow stops), trusting the seek to the
    committed offsets that follows; measured, records were still skipped (a restarted worker
    read per-child offset 0 and then 23), and with them events and replay ticks. So the detect
    agent checks that a partition's offsets follow one another from where the consumer started
    (its committed offset): on a gap it seeks back, and drops what comes before the missing
    record arrives. A repeat (an offset already seen, after Faust sought back) goes through:
    the pipeline is at least once, and the detector ignores an event it has seen. (Ingest reads
    the input topics with a consumer of its own, which skips nothing: see
    :mod:`streams.worker.ingest`.)
    """

    SEEK_AGAIN_S = 2.0
    """A gap still there this long after a seek (a rebalance overrode it) seeks again."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._next: dict[Any, int] = {}
        self._sought: dict[Any, float] = {}

    def expect(self, tp: Any, offset: int) -> None:
        """The next record on ``tp`` must be at ``offset`` (a recovered state's position)."""
        self._next[tp] = offset
        self._sought.pop(tp, None)

    def forget(self, tps: Any) -> None:
        """After a rebalance the consumer starts again from the committed offsets."""
        for tp in tps:
            self._next.pop(tp, None)
            if self._sought.pop(tp, None) is not None:
                consumer: Any = self._app.consumer
                consumer.end_rewind(tp)

    async def admit(self, tp: Any, offset: int) -> bool:
        """Whether the record at ``offset`` follows what came before on ``tp``."""
        consumer: Any = self._app.consumer
        expected = self._next.get(tp)
        if expected is None:
            expected = consumer._committed_offset.get(tp)  # the next to read; None: never
        if expected is None or offset <= expected:
            self._next[tp] = max(offset + 1, expected or 0)
            if self._sought.pop(tp, None) is not None:
                consumer.end_rewind(tp)
            return True
        now = time.monotonic()
        if now - self._sought.get(tp, -self.SEEK_AGAIN_S) < self.SEEK_AGAIN_S:
            return False  # sought back already; this one comes again too
        earliest = (await consumer.earliest_offsets(tp)).get(tp, 0)
        if expected < earliest:  # the missing records are gone (retention): nothing to read
            log.warning("records_expired_before_read", topic=tp.topic, partition=tp.partition,
                        expected=expected, earliest=earliest)  # fmt: skip
            self._next[tp] = offset + 1
            return True
        self._sought[tp] = now
        log.warning("records_skipped_by_consumer", topic=tp.topic, partition=tp.partition,
                    expected=expected, got=offset)  # fmt: skip
        await consumer.seek_in_thread(tp, expected)
        return False


class _App(faust.App):
    """Faust's app, with tasks started as soon as its services are (``on_started_early``), not
    only after its tables are recovered as ``app.task`` are: ingest joins its consumer group
    meanwhile. On the embedded broker each first join takes half the session timeout, so one
    after the other they made a worker's first per-child record 12 s after its start, not 7."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_started_early: list[Callable[[], Awaitable[None]]] = []

    async def on_started(self) -> None:
        for task in self.on_started_early:
            self.add_future(task())
        await super().on_started()


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
    """One partition's cases, cached as objects, written behind to the changelog table.

    Keys in the table are ``"<partition>|<child_id>"`` in that partition of the changelog, so a
    recovered worker finds each partition's children by their prefix.

    A change marks the child; :meth:`changes` gives each marked child's state once (the detect
    agent writes them every SAVE_EVERY_S, before it acks the records applied: at least once).
    """

    def __init__(self, table: Any, partition: int) -> None:
        self._prefix = f"{partition}|"
        self._cache: dict[str, CaseState] = {}
        self._dirty: set[str] = set()
        self._hashes: dict[str, int] = {}
        self.digest = 0
        """XOR of :func:`state_hash` over the states as written: the clock carries it, so a
        recovery can tell whether the states it read are the ones that clock was saved with."""
        for key in list(table.keys()):
            if key.startswith(self._prefix) and not key.endswith("|__clock__"):
                data = table_bytes(table[key])
                if data is not None:
                    child_id = key[len(self._prefix) :]
                    self._cache[child_id] = decode_case(data)
                    self._hashes[child_id] = h = state_hash(key, data)
                    self.digest ^= h

    def discard(self) -> None:
        """Forget every recovered state (they do not match the recovered clock); the next
        :meth:`changes` deletes them from the table unless they are made again."""
        self._dirty.update(self._cache)
        self._cache.clear()

    def __getitem__(self, child_id: str) -> CaseState:
        return self._cache[child_id]

    def get(self, child_id: str, default: Any = None) -> Any:
        return self._cache.get(child_id, default)

    def __setitem__(self, child_id: str, state: CaseState) -> None:
        self._cache[child_id] = state
        self._dirty.add(child_id)

    def __delitem__(self, child_id: str) -> None:
        del self._cache[child_id]
        self._dirty.add(child_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def changes(self) -> list[tuple[str, bytes | None]]:
        """(table key, encoded state, or None for a deleted child) of every child changed since
        the last call."""
        dirty = self._dirty
        if not dirty:
            return []
        cache, prefix, hashes = self._cache, self._prefix, self._hashes
        digest = self.digest
        out: list[tuple[str, bytes | None]] = []
        for child_id in dirty:
            state = cache.get(child_id)
            key = prefix + child_id
            digest ^= hashes.pop(child_id, 0)
            if state is None:
                out.append((key, None))
            else:
                data = encode_case(state)
                hashes[child_id] = h = state_hash(key, data)
                digest ^= h
                out.append((key, data))
        self.digest = digest
        dirty.clear()
        return out


def state_hash(key: str, data: bytes) -> int:
    """A 64-bit hash of one table entry, the same in every process."""
    h = hashlib.blake2b(data, digest_size=8, key=key.encode()[:64])
    return int.from_bytes(h.digest(), "little")


@dataclasses.dataclass
class PartitionDetector:
    """A detector for one partition of the per-child topic, with its replay sources."""

    detector: Detector
    sources: dict[str, Millis] = dataclasses.field(default_factory=dict)
    finished: dict[str, Millis] = dataclasses.field(default_factory=dict)
    next_offset: int = 0
    """The offset of the next per-child record to apply: the ones before it are in the states."""
    writes: int = 0
    """Records written to the table (states and clock), for the log."""
    finished_at: Millis | None = None
    """The end this process last finished the replay at and announced on the control topic.
    Ticks after the finish (each source's position, again) finish it again only for a later
    end; a detector recovered finished (after a crash or a rebalance) finishes once more at
    the next tick, a wall tick included, in case the crash came before its announcement."""

    @property
    def states(self) -> TableStates:
        """The detector's states (a :class:`TableStates`, as :func:`create_app` builds it)."""
        return cast(TableStates, self.detector.states)


def _scratch_dir() -> str:
    """A temporary data directory for this process, removed when it exits normally (the
    tables live in memory and their changelogs in Kafka, so nothing in it outlives the worker)."""
    path = tempfile.mkdtemp(prefix="safeguarding-worker-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def create_app(settings: Settings, *, params: Params | None = None) -> faust.App:
    """The Faust app for ``settings`` (its id, and so its consumer group, follows the prefix)."""
    topics = settings.topics
    mode = Mode(settings.mode)
    params = params or Params(lateness=settings.lateness_ms)
    n = settings.partitions
    expected_sources = 3 * n  # every partition of the three input topics

    key_partitioner = envelope.KeyPartitioner()
    app = _App(
        f"{settings.topic_prefix}worker",
        broker=[f"kafka://{b}" for b in settings.bootstrap.split(",")],
        store="memory://",
        # Faust makes ``{id}-data/v1/tables`` even for tables held in memory: put it out of
        # the current directory (a run from the project used to leave one per prefix there).
        datadir=settings.data_dir or _scratch_dir(),
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
        # Up to 5 ms of batching: one produce request carries hundreds of records instead of
        # one or two (a quarter less CPU per record in the pass-through, measured).
        producer_linger=0.005,
        # aiokafka keeps one open batch per partition: a record that does not fit in it waits
        # until the sender takes the full batch, and the sender has one request in flight per
        # broker, so the wait is about a round trip. At the default 16 KiB, a changelog of
        # ~600-byte states waited like that every ~27 records. 256 KiB, as the replay producer:
        # 10,334 and 10,098 -> 13,444 and 16,948 events per CPU-second on Apache Kafka,
        # alternating; a 20 ms linger alone changed nothing.
        producer_max_batch_size=256 * 1024,
        producer_partitioner=key_partitioner,
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
    raw_topic(topics.alerts)  # declared as the others; alerts are sent by the producer itself
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
    wait_s = BATCH_WAIT_S[mode]
    save_every = settings.save_interval_s or SAVE_EVERY_S[mode]
    guard = OffsetGuard(app)

    # -- ingest ------------------------------------------------------------------------------

    producer_send = None  # the app's producer, once it runs

    async def send(
        topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> None:
        """Hand a record to the producer (as ``topic.send`` does, without Faust's per-record
        future, callbacks and buffer: the records of a batch cost what Kafka costs). Faust
        flushes the producer before it commits offsets, so a record handed over before its
        input is acked is on the broker before that input is committed."""
        nonlocal producer_send
        if producer_send is None:
            producer_send = app.producer.send
        await producer_send(topic, key, value, partition, None, None)

    async def send_batches(
        topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> None:
        """Hand many records for one partition to the producer in whole batches, in order:
        3-4 microseconds of CPU a record, against 10-11 for one ``send`` each (measured with
        600-byte values), which makes a future per record and resolves each on delivery.
        Like ``send``, it does not wait for the broker: the flush before a commit does."""
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        batch = producer.create_batch()
        for key, value in records:
            # An empty batch takes any record, even one over the batch size.
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                await producer.send_batch(batch, topic, partition=partition)
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            batch.close()
            await producer.send_batch(batch, topic, partition=partition)

    async def dead_letter(msg: Any, reason: str) -> None:
        letter = DeadLetter(
            msg.topic, msg.partition, msg.offset, reason, msg.value or b"", wall_ms()
        )
        await dead_letters.send(key=msg.topic.encode(), value=codec.encode_avro(letter))
        log.warning("event_dead_lettered", topic=msg.topic, partition=msg.partition,
                    offset=msg.offset, reason=reason)  # fmt: skip

    partition_of = envelope.Partitioner(n)
    by_child_name = topics.by_child

    def tick_of(headers: Any) -> tuple[int, Millis] | None:
        """A replay tick's (kind, time) from an input record's headers, or None for an event."""
        for key, value in headers:
            if key == TICK_HEADER:
                return TICK, int(value)
            if key == FINISH_HEADER:
                return FINISH, int(value)
        return None

    kind_of = {name: kind for kind, name in topics.inputs.items()}

    async def forward(messages: list[Any]) -> None:
        """Decode a list of input records and send one per-child record per partition (or a
        few, of at most BATCH_ITEMS items): events in field form, and the replay ticks in
        their place. :class:`~streams.worker.ingest.Ingest` flushes the producer before it
        commits the input offsets, so these are on the broker first."""
        batches: list[list[list[Any]]] = [[] for _ in range(n)]
        for msg in messages:
            tick = tick_of(msg.headers) if msg.headers else None
            if tick is not None:
                # After every event of its source (they are in the batches before it).
                item = envelope.tick_item(
                    tick[0], tick[1], envelope.source_name(msg.topic, msg.partition)
                )
                for items in batches:
                    items.append(item)
                continue
            kind = kind_of[msg.topic]
            try:
                decoded = codec.decode_event_avro(kind, msg.value or b"")
                if mode is Mode.LIVE and decoded.occurred_at > wall_ms() + settings.max_ahead_ms:
                    raise InvalidEvent(
                        f"{kind} field 'occurred_at': more than "
                        f"{settings.max_ahead_ms // 3_600_000} hours ahead of the wall clock"
                    )
            except InvalidEvent as exc:
                await dead_letter(msg, exc.reason)
                continue
            if isinstance(decoded, Incident):
                for child in decoded.children:  # each child once (the codec checks)
                    batches[partition_of(child.child_id)].append(
                        envelope.event_item(decoded, child)
                    )
            else:
                batches[partition_of(decoded.child_id)].append(envelope.event_item(decoded))
        for p, items in enumerate(batches):
            for start in range(0, len(items), BATCH_ITEMS):
                record = envelope.batch_record(items[start : start + BATCH_ITEMS])
                await send(by_child_name, None, record, p)

    async def ingest() -> None:
        """Read the input topics with a consumer of ingest's own (see :mod:`.ingest`)."""
        for topic in inputs.values():  # as the agents' topics are: with the prefix's partitions
            await topic.maybe_declare()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap.split(","),
            group_id=f"{settings.topic_prefix}ingest",
            client_id=f"{settings.topic_prefix}ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # As Faust's consumer (see broker_session_timeout above).
            session_timeout_ms=int(app.conf.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(app.conf.broker_heartbeat_interval * 1000),
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        reader = Ingest(
            consumer,
            [topic.get_topic_name() for topic in inputs.values()],
            forward,
            app.producer.flush,
            within=wait_s,
        )
        try:
            await reader.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as an agent's error would: the worker stops
            log.exception("ingest_failed", error=type(exc).__name__)
            await app.crash(exc)

    app.on_started_early.append(ingest)

    # -- detect ------------------------------------------------------------------------------

    def partition_detector(p: int) -> tuple[PartitionDetector, list[Alert]]:
        """The partition's detector; built from the recovered table on first use, with the
        alerts its cases hold. They are published again: an alert whose record a crash
        swallowed is still in the recovered state, so nothing is lost (same ids)."""
        pd = detectors.get(p)
        if pd is not None:
            return pd, []
        saved = table_bytes(cases.get(_CLOCK_KEY.format(p=p)))
        # [clock, max_seen, replay sources, finished sources, next per-child offset]: the
        # replay ticks a partition has heard are not heard again after a crash (their offsets
        # were committed). A clock saved by an earlier version has no offset.
        saved_clock = orjson.loads(saved) if saved else [None, None, {}, {}, 0]
        clock, max_seen, sources, finished = saved_clock[:4]
        next_offset = saved_clock[4] if len(saved_clock) > 4 else 0
        states = TableStates(cases, p)
        # The states must be those the clock was saved with. A worker killed between a save's
        # states and its clock leaves newer states (children pruned or deleted among them) with
        # an older clock, and applying records again from that clock's offset on top of them
        # raises wrong alerts (a pruned child takes an old event for a new one). Then the
        # partition is detected again from its first per-child record, with no state.
        expected_digest = saved_clock[5] if len(saved_clock) > 5 else None
        if (saved and expected_digest is not None and states.digest != expected_digest) or (
            not saved and len(states)
        ):
            log.warning("partition_rebuilt", partition=p, children=len(states),
                        reason="states do not match the saved clock")  # fmt: skip
            states.discard()
            clock, max_seen, sources, finished, next_offset = None, None, {}, {}, 0
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
        pd = detectors[p] = PartitionDetector(det, dict(sources), dict(finished), next_offset)
        guard.expect(TP(by_child_name, p), next_offset)  # what the states have not seen
        log.info("partition_started", partition=p, children=len(states), clock=clock,
                 next_offset=next_offset, finished=len(finished), mode=mode.value)  # fmt: skip
        return pd, [a for state in states.values() for a in state.alerts.values()]

    alerts_name = topics.alerts

    alert_partitions: list[int] = []  # the alerts topic's, once known

    async def publish(alerts: list[Alert]) -> None:
        """Alerts keyed by child, each on the partition the producer would choose for its key,
        handed over in batches (a replay's batch of events raises hundreds). In order: the
        versions of one alert share a key, so a partition, and are in the order raised."""
        if not alerts:
            return
        if not alert_partitions:
            producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
            alert_partitions.extend(sorted(await producer.partitions_for(alerts_name)))
        parts = alert_partitions
        records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for alert in alerts:
            key = alert.child_id.encode()
            partition = key_partitioner(key, parts, parts)
            records.setdefault(partition, []).append((key, codec.encode_avro(alert)))
            # Debug: the alerts topic is the record of every alert. One log line an alert
            # cost 10 microseconds (0.4 alerts an event in generated histories).
            log.debug("alert_published", alert_id=alert.alert_id, rule_id=alert.rule_id,
                      status=alert.status.value, severity=alert.severity.value)  # fmt: skip
        for partition, batch in records.items():
            await send_batches(alerts_name, partition, batch)

    changelog: list[str] = []  # the table's changelog topic, once the app runs

    async def save(p: int, pd: PartitionDetector) -> None:
        """Write the partition's changed states, then its clock, to partition ``p`` of the
        table's changelog, and to the table: once per changed child per save (every
        SAVE_EVERY_S, and at a replay's finish), not once per change.

        Sent straight to the producer: ``cases[key] = value`` goes through Faust's producer
        buffer, which holds 100 records and then drains at most one per 0.1 s wait (measured:
        a batch's few hundred writes stalled the worker for minutes). Nothing waits for the
        broker here: Faust flushes the producer before it commits offsets. What a crash can cut
        is the changelog's tail, and a recovered changelog is always a prefix of what was
        written (Tansu even hides all of its last batch but the first record, as it reports
        the end offset as that batch's base + 1). The clock goes last and names the next
        per-child offset to apply, so after recovery the detect agent starts there again
        (:class:`OffsetGuard`), whatever offset Faust had committed."""
        if not changelog:
            changelog.append(cases.changelog_topic.get_topic_name())
        det = pd.detector
        writes = pd.states.changes()
        pd.writes += len(writes) + 1
        data = cases.data
        records: list[tuple[bytes, bytes | None]] = []
        for key, value in writes:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            records.append((orjson.dumps(key), value))
        clock_key = _CLOCK_KEY.format(p=p)
        clock = data[clock_key] = orjson.dumps(
            [det.clock, det.max_seen, pd.sources, pd.finished, pd.next_offset, pd.states.digest]
        )
        await send_batches(changelog[0], p, records)
        # The clock in a batch of its own, after the states': Tansu reports a partition's end
        # as its last batch's base offset + 1, so Faust's recovery reads only the first record
        # of the last batch. With the clock last in the states' batch, a worker killed after
        # its final save recovered that save's states (children pruned and deleted at the
        # finish among them) with the previous save's clock, applied events again from that
        # clock's offset on top of them, and published wrong alerts (early-kill test on Tansu,
        # about one run in twelve under load).
        await send_batches(changelog[0], p, [(orjson.dumps(clock_key), clock)])
        log.debug("partition_saved", partition=p, writes=len(writes), next_offset=pd.next_offset,
                  children=len(pd.states), clock=det.clock)  # fmt: skip

    async def finish_replay(p: int, pd: PartitionDetector, out: list[Alert]) -> None:
        """Flush the partition to the replay's end, save it, and announce it on the control
        topic; ``out`` holds the alerts of the same batch so far, published first."""
        det = pd.detector
        end = max(pd.finished.values())
        await publish(out)
        out.clear()
        await publish(det.finish(end))
        await save(p, pd)
        await app.producer.flush()
        await control.send(
            value=orjson.dumps({"partition": p, "clock": det.clock, "done": True}),
        )
        pd.finished_at = end
        log.info("partition_finished", partition=p, clock=det.clock, events=det.stats.events,
                 table_writes=pd.writes)  # fmt: skip

    async def on_tick(
        p: int, pd: PartitionDetector, tick: envelope.Tick, out: list[Alert]
    ) -> list[Alert]:
        """Apply a tick; ``out`` holds the alerts of the same batch so far, not yet published
        (the finish publishes them first: they come before its own)."""
        det = pd.detector
        if tick.kind == WALL:
            log.debug("wall_tick", partition=p, clock=det.clock, children=len(det.states))
            if mode is Mode.LIVE:
                return det.tick(tick.at)
            if pd.finished_at is None and len(pd.finished) == expected_sources:
                # A replay finished before a crash (or a rebalance) and recovered so: announced
                # again, in case the crash came before the announcement and no replay tick
                # follows.
                await finish_replay(p, pd, out)
            return []
        pd.sources[tick.source] = max(pd.sources.get(tick.source, tick.at), tick.at)
        if tick.kind == FINISH:
            pd.finished[tick.source] = tick.at
        if len(pd.sources) < expected_sources:
            return []
        if len(pd.finished) == expected_sources:
            if max(pd.finished.values()) != pd.finished_at:  # else announced at this end
                await finish_replay(p, pd, out)
            return []
        # Every source has sent everything at or before its tick: deadlines up to the least
        # of them can fire (a deadline fires when the clock passes it).
        return det.advance_to(min(pd.sources.values()) + 1)

    async def apply(p: int, pd: PartitionDetector, msg: Any) -> list[Alert]:
        """The alert versions of one per-child record (a batch, or an older single record)."""
        value: bytes = msg.value
        tag = value[0]
        out: list[Alert] = []
        if tag == BATCH:
            feed = pd.detector.feed
            item_event, is_tick = envelope.item_event, envelope.is_tick
            for item in envelope.parse_batch(value):
                if is_tick(item):
                    out += await on_tick(p, pd, envelope.item_tick(item), out)
                else:
                    out += feed(item_event(item))
        elif tag in TAG_KINDS:
            out = pd.detector.feed(envelope.legacy_event(value, msg.key))
        else:
            out = await on_tick(p, pd, envelope.parse_tick(value), out)
        return out

    @app.agent(by_child, name="detect")
    async def detect(stream: faust.StreamT[bytes]) -> None:
        # One per-child record at a time (most carry a batch of events). Its alerts are
        # published at once; its partition's states are written every SAVE_EVERY_S, and the
        # records applied are acked then, once their states were handed to the producer (Faust
        # flushes the producer before it commits offsets). Faust's own ack comes in a
        # `finally`, so a body interrupted halfway (the worker stopping) would have its record
        # committed. A record before the partition's next offset was applied already (Faust
        # read it again after a rebalance).
        stream.enable_acks = False
        unsaved: list[tuple[Any, PartitionDetector]] = []  # applied, not yet written
        last_save = time.monotonic()
        async for event in stream.events():
            msg = event.message
            p = msg.partition
            pd, recovered = partition_detector(p)
            if recovered:
                await publish(recovered)
            if not await guard.admit(msg.tp, msg.offset):
                continue  # neither applied nor acked: it comes again after the seek
            finished = len(pd.finished)
            if msg.offset >= pd.next_offset:  # else it was applied before a rebalance
                await publish(await apply(p, pd, msg))
                pd.next_offset = msg.offset + 1
            unsaved.append((event, pd))
            now = time.monotonic()
            if now - last_save >= save_every or len(pd.finished) > finished:
                last_save = now
                await save_all(stream, unsaved)

    async def save_all(stream: Any, unsaved: list[tuple[Any, PartitionDetector]]) -> None:
        """Write the states of the partitions with records in ``unsaved``, then ack those
        records; not those of a partition revoked meanwhile (its next owner applies them)."""
        saved: set[int] = set()
        for event, pd in unsaved:
            p = event.message.partition
            if detectors.get(p) is not pd:
                continue
            if p not in saved:
                saved.add(p)
                await save(p, pd)
            await stream.ack(event)
        unsaved.clear()

    # Faust's decorators carry no types: typed here, so the functions they wrap keep theirs.
    leader_timer = cast(
        Callable[[Callable[[], Awaitable[None]]], Any],
        app.timer(interval=settings.tick_interval_s, on_leader=True),
    )

    @leader_timer
    async def wall_clock_tick() -> None:
        # Live, the wall clock fires deadlines that no event will. In a replay the clock
        # follows the replayer's ticks only, and a wall tick just wakes the detect agent: what
        # it applied is saved and committed within the save interval even when nothing more
        # comes (a replay that ends without a finish, or a pause in one), not at the next
        # record, whenever that is.
        record = envelope.tick_record(WALL, wall_ms())
        for p in range(n):
            await by_child.send(value=record, partition=p)

    async def on_revoked(_: Any, revoked: Any, **__: Any) -> None:
        guard.forget(revoked)
        for tp in revoked:
            if tp.topic == topics.by_child:
                detectors.pop(tp.partition, None)

    app.on_partitions_revoked.connect(cast(Any, on_revoked))  # (sender, revoked, signal=)

    async def on_assigned(_: Any, assigned: Any, **__: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == topics.by_child)
        log.info("partitions_assigned", partitions=mine)  # the per-child partitions it detects

    app.on_partitions_assigned.connect(cast(Any, on_assigned))  # (sender, assigned, signal=)

    app.safeguarding_detectors = detectors  # type: ignore[attr-defined]
    return app
