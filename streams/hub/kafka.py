"""The hub's Kafka edge: read the topics into a :class:`~streams.hub.feed.HubFeed`, publish
hub actions (aiokafka; works on the embedded Tansu broker and on Apache Kafka).

- The consumer has no consumer group: partitions are assigned by hand and read from the
  earliest offset on every start, so a restart folds the same records into the same state.
  (Tansu also answers a JoinGroup slowly, and a hub has no offsets worth committing.)
- ``alerts`` -> :meth:`HubFeed.apply_alert`, ``alert-actions`` -> :meth:`HubFeed.apply_action`,
  the three input topics -> :meth:`HubFeed.apply_event` (the children's timelines).
- A record that cannot be decoded is skipped with a ``hub_record_skipped`` log line (topic,
  partition, offset, field; never its content); the pipeline dead-letters bad input.
- Topics and partitions are discovered from cluster metadata every few seconds, so a topic
  created after the hub started (or a partition added) is read from its beginning.
- Never relies on end offsets: Tansu 0.6 reports the last batch's base offset + 1.

>>> from streams.settings import Settings
>>> from streams.hub.state import HubState
>>> edge = HubKafka(Settings(), HubFeed(HubState()))
>>> sorted(edge.topics)[:2]
['safeguarding.alert-actions', 'safeguarding.alerts']
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from streams.broker import TopicSpec, create_topics
from streams.codec import decode_action_avro, decode_alert_avro, decode_event_avro, encode_avro
from streams.domain.alerts import AlertAction
from streams.errors import BrokerUnavailable, InvalidEvent, SafeguardingError
from streams.hub.feed import HubFeed
from streams.settings import Settings

log = structlog.get_logger(__name__)

METADATA_INTERVAL_S = 5.0
"""Seconds between looks for new topics and partitions once all five topics were found."""
MISSING_TOPIC_INTERVAL_S = 1.0
"""Seconds between looks while a topic is still missing (the worker is starting, say)."""
POLL_TIMEOUT_MS = 500  # how long one fetch waits for records; also the stop latency
MAX_RECORDS = 1_000  # per fetch: a backlog is applied in slices, so pages stay responsive
SEND_TIMEOUT_MS = 15_000  # an action not acknowledged by then is reported to the user (503)
CONNECT_BACKOFF_S = (0.5, 5.0)  # first and longest pause between attempts to reach Kafka


def hub_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics the hub creates if they do not exist: the two it keeps its state in.

    Their partitions and config come from the run's one list of topics
    (:func:`streams.worker.topics.topic_specs`), so whichever of the hub and the worker starts
    first creates them the same way: kept forever and not compacted. Compaction would keep one
    record per key, and SPEC keys ``alerts`` by child_id and ``alert-actions`` by alert_id: a
    restarted hub would see one alert per child and one action per alert. The input topics are
    the pipeline's; the hub reads them once they exist.
    """
    # Imported here: the hub should not load the worker package (Faust) to serve a page.
    from streams.worker.topics import topic_specs

    wanted = {settings.topics.alerts, settings.topics.alert_actions}
    return [spec for spec in topic_specs(settings) if spec.name in wanted]


# -- error policy ----------------------------------------------------------------------------

RecordVerdict = Literal["skip", "stop"]


def on_bad_record(exc: BaseException) -> RecordVerdict:
    """What the hub does with a record it could not decode or apply.

    The hub is a view of the topics, not their guardian: the pipeline dead-letters invalid
    input, so a record the hub cannot use is skipped (and logged), never fatal. Only what is not
    an ordinary exception (cancellation, interpreter exit) stops the consumer.

    >>> on_bad_record(InvalidEvent("x")), on_bad_record(KeyError("a1"))
    ('skip', 'skip')
    """
    return "skip" if isinstance(exc, Exception) else "stop"


# -- the edge --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    """What one topic's records become."""

    kind: str
    """``alert``, ``alert_action`` or an event kind (``incident``, ...): for log lines."""
    apply: Callable[[bytes], object]
    """Decode the value and hand it to the feed."""


class HubKafka:
    """The consumer of the hub's five topics and the producer of ``alert-actions``.

    ``await start()`` (retries until Kafka answers or ``stop`` is set), then run :meth:`run`
    as a task; :meth:`publish_action` is the ``publish_action`` of
    :func:`streams.hub.app.create_app`; ``await close()`` at the end. Every method runs on the
    event loop that serves the hub (the feed is not thread-safe).
    """

    def __init__(
        self,
        settings: Settings,
        feed: HubFeed,
        *,
        ensure_topics: bool = True,
        metadata_interval_s: float = METADATA_INTERVAL_S,
        missing_topic_interval_s: float = MISSING_TOPIC_INTERVAL_S,
        client_id: str = "safeguarding-hub",
    ) -> None:
        self.settings = settings
        self.feed = feed
        self._ensure_topics = ensure_topics
        self._metadata_interval_s = metadata_interval_s
        self._missing_interval_s = missing_topic_interval_s
        self._client_id = client_id
        topics = settings.topics
        routes: dict[str, _Route] = {
            topics.alerts: _Route("alert", lambda v: feed.apply_alert(decode_alert_avro(v))),
            topics.alert_actions: _Route(
                "alert_action", lambda v: feed.apply_action(decode_action_avro(v))
            ),
        }
        for kind, topic in topics.inputs.items():
            routes[topic] = _Route(kind, _event_reader(feed, kind))
        self._routes: Mapping[str, _Route] = routes
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._next: dict[TopicPartition, int] = {}
        """Offset after the last record applied, per assigned partition."""
        self._next_metadata = 0.0
        self.records_applied = 0
        self.records_skipped = 0

    @property
    def topics(self) -> frozenset[str]:
        """The topics read."""
        return frozenset(self._routes)

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions being read now."""
        return frozenset(self._next)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, stop: asyncio.Event | None = None) -> bool:
        """Create the hub's topics if needed, start the clients and assign what exists.

        Tries again (with a growing pause, logging ``hub_waiting_for_kafka``) while the broker
        does not answer; returns False if ``stop`` was set before it did, True once started.
        Raises :class:`~streams.errors.ConfigurationError` when the broker refuses a topic.
        """
        pause, longest = CONNECT_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._start_once()
                return True
            except (BrokerUnavailable, KafkaError, OSError) as exc:
                await self._close_clients()
                log.warning(
                    "hub_waiting_for_kafka",
                    bootstrap=self.settings.bootstrap,
                    attempt=attempt,
                    error=type(exc).__name__,
                    retry_in_s=pause,
                )
            if stop is None:
                await asyncio.sleep(pause)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    return False
            pause = min(pause * 2, longest)

    async def _start_once(self) -> None:
        bootstrap = self.settings.bootstrap
        if self._ensure_topics:
            created = await create_topics(bootstrap, hub_topic_specs(self.settings))
            if created:
                log.info("hub_topics_created", topics=created)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=f"{self._client_id}-metadata"
        )
        await self._admin.start()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"{self._client_id}-actions",
            acks="all",
            linger_ms=0,  # an action is one record a person waits for
            request_timeout_ms=SEND_TIMEOUT_MS,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=self._client_id,
            group_id=None,  # manual assignment: no group, no commits
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_RECORDS,
        )
        await self._consumer.start()
        self._next = {}
        await self._refresh_assignment()

    async def close(self) -> None:
        """Stop the clients (the producer sends what it holds first). Idempotent."""
        await self._close_clients()

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        for name, stopper in (
            ("consumer", None if consumer is None else consumer.stop),
            ("producer", None if producer is None else producer.stop),
            ("admin", None if admin is None else admin.close),
        ):
            if stopper is None:
                continue
            try:
                await stopper()
            except Exception as exc:  # closing must not hide why we are closing
                log.warning("hub_kafka_close_failed", client=name, error=type(exc).__name__)

    # -- consuming -------------------------------------------------------------------------

    async def run(self) -> None:
        """Apply records until cancelled, looking for new topics and partitions as it goes."""
        consumer = self._require(self._consumer, "consumer")
        while True:
            if time.monotonic() >= self._next_metadata:
                await self._refresh_assignment()
            if not self._next:
                await asyncio.sleep(max(0.0, self._next_metadata - time.monotonic()))
                continue
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
            for tp, records in batches.items():
                for record in records:
                    self.apply_record(tp.topic, tp.partition, record.offset, record.value)
                if records:
                    self._next[tp] = records[-1].offset + 1

    def apply_record(self, topic: str, partition: int, offset: int, value: bytes | None) -> bool:
        """Decode one record and hand it to the feed; False when it was skipped."""
        route = self._routes.get(topic)
        if route is None or value is None:  # not ours, or a tombstone: nothing to show
            return False
        try:
            route.apply(value)
        except BaseException as exc:
            if on_bad_record(exc) == "stop":
                raise
            self.records_skipped += 1
            # Never the record or the exception's message: either can quote a child's id.
            log.warning(
                "hub_record_skipped",
                topic=topic,
                partition=partition,
                offset=offset,
                kind=route.kind,
                error=type(exc).__name__,
                field=exc.field if isinstance(exc, InvalidEvent) else None,
                bytes=len(value),
            )
            return False
        self.records_applied += 1
        return True

    async def _refresh_assignment(self) -> None:
        """Assign every partition of our topics that exists; new ones from their beginning.

        The metadata is asked for all topics, never by name: a Metadata request naming a topic
        makes Apache Kafka (``auto.create.topics.enable``) create it with default settings.
        """
        consumer = self._require(self._consumer, "consumer")
        admin = self._require(self._admin, "admin client")
        try:
            described = await admin.describe_topics()
        except KafkaError as exc:
            log.warning("hub_metadata_failed", error=type(exc).__name__)
            self._next_metadata = time.monotonic() + self._missing_interval_s
            return
        found = _partitions(described, self._routes)
        missing = self.topics - {tp.topic for tp in found}
        self._next_metadata = time.monotonic() + (
            self._missing_interval_s if missing else self._metadata_interval_s
        )
        new = found - set(self._next)
        if not new:
            return
        # assign() replaces the assignment and forgets positions: put back where we were.
        consumer.assign(sorted(found))
        for tp, offset in self._next.items():
            if tp in found:
                consumer.seek(tp, offset)
        await consumer.seek_to_beginning(*sorted(new))
        self._next = {tp: self._next.get(tp, 0) for tp in found}
        log.info(
            "hub_partitions_assigned",
            new=len(new),
            total=len(found),
            topics=sorted({tp.topic for tp in new}),
            missing_topics=sorted(missing),
        )

    # -- producing -------------------------------------------------------------------------

    async def publish_action(self, action: AlertAction) -> None:
        """Send a hub action to ``alert-actions``, keyed by alert_id; returns once the broker
        has acknowledged it (acks=all). The hub applies it when it comes back."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("the hub is not connected to Kafka yet")
        await producer.send_and_wait(
            self.settings.topics.alert_actions,
            key=action.alert_id.encode("utf-8"),
            value=encode_avro(action),
            timestamp_ms=action.at,
        )

    @staticmethod
    def _require(client: Any, what: str) -> Any:
        if client is None:
            raise SafeguardingError(f"the hub's Kafka {what} is not started")
        return client


def _event_reader(feed: HubFeed, kind: str) -> Callable[[bytes], object]:
    return lambda value: feed.apply_event(decode_event_avro(kind, value))


def _partitions(
    described: Iterable[Mapping[str, Any]], wanted: Iterable[str]
) -> set[TopicPartition]:
    """The partitions of the ``wanted`` topics in a describe_topics answer (those with errors,
    or still without partitions, are left for the next look)."""
    names = set(wanted)
    return {
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["topic"] in names and t["error_code"] == 0
        for p in t["partitions"]
    }
