"""Ingest's own consumer: the input topics read in lists, not one record at a time through Faust.

Faust's consumer hands every fetched record to a handler on its own (a thread hop, an async
generator step, offset bookkeeping, a coroutine for the handler and one for the flow, an ack):
measured, that was a third of the worker's time, more than decoding the record. Ingest needs
none of what Faust adds (its input partitions carry no state and join nothing: it decodes,
dead-letters and re-keys), so it reads them with a plain aiokafka consumer in a consumer group
of its own (``<prefix>ingest``), in lists of up to :data:`INGEST_BATCH` records, and forwards
each list in one call.

Nothing is lost: a list's offsets are committed only after ``forward`` returned for it and the
producer was flushed (its per-child records are on the broker). A crash reads again from the
committed offsets: at least once, and the detector ignores an event it has seen by
``event_id``. On a rebalance, the revoked partitions' forwarded records are committed before
they go; records of theirs fetched but not yet forwarded are dropped, for their next owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

log = structlog.get_logger("streams.worker")

INGEST_BATCH = 10_000
"""Input records ingest takes at most in one list: it sends one per-child record per partition
per list (see :mod:`streams.worker.envelope`)."""

COMMIT_EVERY_S = 1.0
"""How often forwarded offsets are committed (a producer flush first): what a crash reads
again is at most this much, plus the list in hand."""

Forward = Callable[[list[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


class Ingest(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no types here
    """Reads ``topics`` with ``consumer`` (in its consumer group) and hands each list to
    ``forward``.

    A list is what came within ``within`` seconds of its first record (10 ms live, 100 ms in
    a replay), up to ``max_records``. ``flush`` waits until everything handed to the producer
    is on the broker.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: Sequence[str],
        forward: Forward,
        flush: Callable[[], Awaitable[Any]],
        *,
        within: float,
        max_records: int = INGEST_BATCH,
        commit_every: float = COMMIT_EVERY_S,
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._forward = forward
        self._flush = flush
        self._within = within
        self._max = max_records
        self._commit_every = commit_every
        self._lock = asyncio.Lock()  # a list is forwarded whole before a rebalance goes on
        self._done: dict[TopicPartition, int] = {}  # next offset after what was forwarded
        self._committed: dict[TopicPartition, int] = {}
        self._revoked_epoch = 0

    async def run(self) -> None:
        """Read, forward and commit until cancelled (then commit what was forwarded)."""
        consumer = self._consumer
        consumer.subscribe(self._topics, listener=self)
        await consumer.start()
        last_commit = time.monotonic()
        try:
            while True:
                epoch = self._revoked_epoch
                records = await self._take()
                async with self._lock:
                    if epoch != self._revoked_epoch:  # a rebalance came while taking
                        assigned = consumer.assignment()
                        records = [r for r in records if _tp(r) in assigned]
                    if records:
                        await self._forward(records)
                        done = self._done
                        for r in records:  # in offset order within a partition
                            done[_tp(r)] = r.offset + 1
                    now = time.monotonic()
                    if now - last_commit >= self._commit_every:
                        last_commit = now
                        await self._commit(consumer.assignment())
        finally:
            try:
                async with self._lock:
                    await self._commit(consumer.assignment())
            except Exception as exc:  # stopping anyway: what is not committed is read again
                log.warning("ingest_commit_on_stop_failed", error=type(exc).__name__)
            await consumer.stop()

    async def _take(self) -> list[ConsumerRecord[bytes, bytes]]:
        """The next list: what the consumer has, then what comes within ``within``."""
        consumer, limit = self._consumer, self._max
        got = await consumer.getmany(timeout_ms=1000, max_records=limit)
        records = [r for batch in got.values() for r in batch]
        if not records:
            return records
        deadline = time.monotonic() + self._within
        while len(records) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = await consumer.getmany(
                timeout_ms=int(left * 1000) or 1, max_records=limit - len(records)
            )
            if not got:
                break
            records += [r for batch in got.values() for r in batch]
        return records

    async def _commit(self, assigned: Any) -> None:
        """Flush the producer, then commit the forwarded offsets of assigned partitions."""
        offsets = {
            tp: offset
            for tp, offset in self._done.items()
            if tp in assigned and self._committed.get(tp) != offset
        }
        if not offsets:
            return
        await self._flush()
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance under way: read again by whoever owns them
            log.warning("ingest_commit_failed", error=type(exc).__name__)
            return
        self._committed.update(offsets)

    # -- ConsumerRebalanceListener ---------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Commit what was forwarded of the revoked partitions (after the list in hand)."""
        self._revoked_epoch += 1
        async with self._lock:
            await self._commit(set(revoked))
        for tp in revoked:
            self._done.pop(tp, None)
            self._committed.pop(tp, None)
        log.info("ingest_partitions_revoked", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("ingest_partitions_assigned", partitions=len(assigned))


def _tp(record: ConsumerRecord[bytes, bytes]) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)
