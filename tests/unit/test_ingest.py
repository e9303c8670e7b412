"""How ingest reads the input topics: in lists, forwarded whole, committed only after the
producer was flushed, and what a rebalance does to a list in hand.

The consumer here is a stand-in for aiokafka's that serves scripted fetches and records
commits: what matters is which offsets are committed, and when. The kill and rebalance tests in
tests/integration/test_pipeline.py run the real consumer on both brokers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from streams.settings import Settings
from streams.worker.app import create_app
from streams.worker.ingest import Ingest

A0, A1 = TopicPartition("incidents", 0), TopicPartition("incidents", 1)


def rec(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"v", None, 0, 1, [])


Fetch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class _Consumer:
    """Serves ``fetches`` one per ``getmany`` (a callable is run first: a rebalance, say), then
    waits for ever; records the log of calls."""

    def __init__(self, fetches: list[Fetch | Callable[[], Awaitable[Fetch]]]) -> None:
        self.fetches = fetches
        self.log: list[Any] = []
        self.assigned = {A0, A1}
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Fetch:
        if not self.fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        fetch = self.fetches.pop(0)
        if callable(fetch):
            fetch = await fetch()
        return fetch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(("commit", dict(offsets)))


def _ingest(
    consumer: _Consumer,
    *,
    fail: bool = False,
    within: float = 0.02,
    max_records: int = 100,
    commit_every: float = 0.0,
) -> Ingest:
    async def forward(records: list[Any]) -> None:
        await asyncio.sleep(0)  # sending waits on the producer
        if fail:
            raise RuntimeError("broker gone")
        consumer.log.append(("forward", [(r.partition, r.offset) for r in records]))

    async def flush() -> None:
        consumer.log.append("flush")

    return Ingest(consumer, ["incidents"], forward, flush, within=within,  # type: ignore[arg-type]
                  max_records=max_records, commit_every=commit_every)  # fmt: skip


def _run(ingest: Ingest, consumer: _Consumer, until: Callable[[], bool]) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(ingest.run())
        for _ in range(500):
            await asyncio.sleep(0.002)
            if until() or task.done():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_list_is_forwarded_then_flushed_then_committed() -> None:
    consumer = _Consumer([{A0: [rec(A0, 5), rec(A0, 6)], A1: [rec(A1, 0)]}])
    ingest = _ingest(consumer)
    _run(ingest, consumer, lambda: any(e[0] == "commit" for e in consumer.log if type(e) is tuple))
    assert consumer.log[:4] == [
        "start",
        ("forward", [(0, 5), (0, 6), (1, 0)]),
        "flush",
        ("commit", {A0: 7, A1: 1}),
    ]
    assert consumer.log[-1] == "stop"


def test_what_comes_within_the_wait_is_forwarded_in_the_same_list() -> None:
    consumer = _Consumer([{A0: [rec(A0, 0)]}, {A1: [rec(A1, 0)]}, {A0: [rec(A0, 1)]}])
    _run(_ingest(consumer, within=0.5), consumer, lambda: len(consumer.log) > 2)
    assert consumer.log[1] == ("forward", [(0, 0), (1, 0), (0, 1)])


def test_a_list_is_at_most_max_records() -> None:
    consumer = _Consumer([{A0: [rec(A0, 0), rec(A0, 1)]}, {A0: [rec(A0, 2)]}])
    _run(_ingest(consumer, max_records=2), consumer, lambda: len(consumer.log) > 4)
    forwards = [e[1] for e in consumer.log if type(e) is tuple and e[0] == "forward"]
    assert forwards == [[(0, 0), (0, 1)], [(0, 2)]]


def test_a_failed_forward_commits_nothing_and_stops_ingest() -> None:
    consumer = _Consumer([{A0: [rec(A0, 0)]}])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="broker gone"):
            await _ingest(consumer, fail=True).run()

    asyncio.run(main())
    assert consumer.log == ["start", "stop"]


def test_stopping_commits_what_was_forwarded() -> None:
    consumer = _Consumer([{A0: [rec(A0, 0), rec(A0, 1)]}])
    _run(_ingest(consumer, commit_every=3600.0), consumer, lambda: len(consumer.log) > 1)
    assert consumer.log == [
        "start",
        ("forward", [(0, 0), (0, 1)]),
        "flush",
        ("commit", {A0: 2}),
        "stop",
    ]


def _revoking_a0(consumer: _Consumer, then: Fetch) -> Callable[[], Awaitable[Fetch]]:
    """A fetch during which the group revokes A0 (A1 stays), answering ``then``."""

    async def fetch() -> Fetch:
        consumer.assigned = {A1}
        await consumer.listener.on_partitions_revoked([A0])
        return then

    return fetch


def test_a_revocation_commits_the_forwarded_and_drops_what_was_taken_for_the_revoked() -> None:
    consumer = _Consumer([])
    consumer.fetches = [
        {A0: [rec(A0, 0)]},  # forwarded before the rebalance
        {A0: [rec(A0, 1)]},  # taken, then A0 revoked while taking more
        _revoking_a0(consumer, then={A1: [rec(A1, 3)]}),
    ]
    ingest = _ingest(consumer, within=0.0, commit_every=3600.0)
    _run(ingest, consumer, lambda: len(consumer.log) > 5)
    assert consumer.log[:5] == [
        "start",
        ("forward", [(0, 0)]),
        ("forward", [(0, 1)]),
        "flush",  # the revocation: A0's forwarded records committed before it goes
        ("commit", {A0: 2}),
    ]
    assert ("forward", [(1, 3)]) in consumer.log
    assert all(A0 not in e[1] for e in consumer.log[5:] if type(e) is tuple and e[0] == "commit")


def test_a_list_taken_across_a_revocation_loses_the_revoked_partitions_records() -> None:
    consumer = _Consumer([])
    consumer.fetches = [{A0: [rec(A0, 7)]}, _revoking_a0(consumer, then={A1: [rec(A1, 0)]})]
    _run(_ingest(consumer, within=0.5), consumer, lambda: len(consumer.log) > 1)
    assert consumer.log[1] == ("forward", [(1, 0)])  # A0's record is its next owner's


def test_the_worker_reads_the_input_topics_with_its_own_consumer_not_faust_s() -> None:
    settings = Settings()
    app = create_app(settings)
    conductor: Any = app.topics
    subscribed = {name for channel in conductor for name in channel.topics}
    agents = {name for agent in app.agents.values() for name in agent.channel.topics}
    assert agents == {settings.topics.by_child}
    assert not (subscribed | agents) & set(settings.topics.inputs.values())
    assert [t.__name__ for t in app.on_started_early] == ["ingest"]
