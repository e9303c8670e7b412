"""How the worker takes input records without Faust's streams: kept in lists, forwarded, and
acked only once forwarded; and Faust's consumer running a record's handler eagerly.

The consumer in the batcher tests is a stand-in that records acks: what matters is which
records are acked, and when. The kill and rebalance tests in tests/integration/test_pipeline.py
run the real consumer on both brokers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from streams.settings import Settings
from streams.worker.app import InputBatcher, OffsetGuard, create_app

T0, T1 = TP("incidents", 0), TP("incidents", 1)


@dataclass(frozen=True)
class _Message:
    tp: TP
    offset: int


class _Flow:
    def __init__(self) -> None:
        self._resumed = asyncio.Event()
        self._resumed.set()

    def is_active(self) -> bool:
        return self._resumed.is_set()

    async def acquire(self) -> None:
        await self._resumed.wait()


@dataclass
class _Consumer:
    acked: list[_Message] = field(default_factory=list)
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)

    def ack(self, message: _Message) -> bool:
        self.acked.append(message)
        return True


class _App:
    def __init__(self) -> None:
        self.consumer = _Consumer()
        self.flow_control = _Flow()
        self.crashed: list[BaseException] = []

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def _batcher(
    forwarded: list[list[_Message]], *, max_: int = 3, within: float = 0.05, fail: bool = False
) -> tuple[InputBatcher, _App]:
    app = _App()

    async def forward(messages: list[Any]) -> None:
        assert not any(m in app.consumer.acked for m in messages), "acked before forwarded"
        await asyncio.sleep(0)  # sending waits on the producer
        if fail:
            raise RuntimeError("broker gone")
        forwarded.append(list(messages))

    guard = OffsetGuard(app)  # type: ignore[arg-type]
    return InputBatcher(app, guard, forward, max_=max_, within=within), app


def test_a_full_list_is_forwarded_in_order_then_acked() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=3)
    messages = [_Message(T0, 0), _Message(T1, 0), _Message(T0, 1), _Message(T0, 2)]

    async def run() -> None:
        for m in messages:
            await batcher.on_message(m)

    asyncio.run(run())
    assert forwarded == [messages[:3]]
    assert app.consumer.acked == messages[:3]  # the fourth waits for its list


def test_a_list_that_is_not_full_is_forwarded_after_the_wait() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=100, within=0.02)
    messages = [_Message(T0, 0), _Message(T0, 1)]

    async def run() -> None:
        for m in messages:
            await batcher.on_message(m)
        assert forwarded == []
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert forwarded == [messages]
    assert app.consumer.acked == messages


def test_a_list_whose_forwarding_failed_is_not_acked() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=2, fail=True)

    async def run() -> None:
        await batcher.on_message(_Message(T0, 0))
        with pytest.raises(RuntimeError, match="broker gone"):
            await batcher.on_message(_Message(T0, 1))

    asyncio.run(run())
    assert app.consumer.acked == []


def test_a_failure_after_the_wait_crashes_the_worker_and_acks_nothing() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=100, within=0.01, fail=True)

    async def run() -> None:
        await batcher.on_message(_Message(T0, 0))
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert [str(e) for e in app.crashed] == ["broker gone"]
    assert app.consumer.acked == []


def test_revoked_partitions_lose_their_kept_records_and_a_list_in_flight_is_not_acked() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=100, within=10.0)

    async def run() -> None:
        gate = asyncio.Event()

        async def slow_forward(messages: list[Any]) -> None:
            await gate.wait()
            forwarded.append(list(messages))

        batcher._forward = slow_forward
        await batcher.on_message(_Message(T0, 0))
        await batcher.on_message(_Message(T1, 0))
        in_flight = asyncio.ensure_future(batcher.flush())
        await asyncio.sleep(0)
        await batcher.on_message(_Message(T0, 1))  # kept while the first list is sent
        await batcher.on_message(_Message(T1, 1))
        batcher.revoke({T0})  # a rebalance: T0 goes to another worker
        gate.set()
        await in_flight
        await batcher.flush()

    asyncio.run(run())
    assert forwarded == [[_Message(T0, 0), _Message(T1, 0)], [_Message(T1, 1)]]
    # The list in flight at the revocation is not acked (its records are read again by
    # whoever owns the partitions next); the one after it is.
    assert app.consumer.acked == [_Message(T1, 1)]


def test_records_wait_while_the_flow_is_stopped() -> None:
    forwarded: list[list[_Message]] = []
    batcher, app = _batcher(forwarded, max_=1)

    async def run() -> None:
        app.flow_control._resumed.clear()  # a rebalance under way
        task = asyncio.ensure_future(batcher.on_message(_Message(T0, 0)))
        await asyncio.sleep(0.05)
        assert forwarded == []
        assert not task.done()
        app.flow_control._resumed.set()
        await task

    asyncio.run(run())
    assert forwarded == [[_Message(T0, 0)]]


def test_the_input_topics_go_to_the_batcher_not_to_a_stream() -> None:
    settings = Settings()
    app = create_app(settings)
    conductor: Any = app.topics
    subscribed = {name for channel in conductor for name in channel.topics}
    for name in settings.topics.inputs.values():
        assert name in subscribed
        handler = conductor._build_handler(TP(name, 0), set())
        assert getattr(handler, "__self__", None).__class__ is InputBatcher
    assert settings.topics.by_child not in conductor.own_handlers


# -- the consumer runs a record's handler eagerly ------------------------------------------


def test_a_handler_that_does_not_wait_runs_without_a_task() -> None:
    async def run() -> None:
        consumer = create_app(Settings()).consumer
        ran: list[str] = []

        async def handler() -> int:
            ran.append("now")
            return 5

        tasks_before = len(asyncio.all_tasks())
        result = await consumer.wait_first(handler(), asyncio.Event().wait())
        assert ran == ["now"]
        assert result.results == [5]
        assert not result.stopped
        assert len(asyncio.all_tasks()) == tasks_before

    asyncio.run(run())


def test_a_handler_that_waits_goes_on_where_it_stopped() -> None:
    async def run() -> None:
        consumer = create_app(Settings()).consumer
        steps: list[str] = []

        async def handler() -> int:
            steps.append("before")
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.01, fut.set_result, 3)
            value = await fut
            steps.append("after")
            await asyncio.sleep(0)
            return value + 4

        result = await consumer.wait_first(handler(), asyncio.Event().wait())
        assert steps == ["before", "after"]
        assert result.results == [7]

    asyncio.run(run())


def test_a_waiting_handler_is_cancelled_when_the_flow_is_suspended() -> None:
    async def run() -> None:
        consumer = create_app(Settings()).consumer
        suspend = asyncio.Event()
        cleaned: list[str] = []

        async def handler() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                cleaned.append("finally")

        asyncio.get_running_loop().call_later(0.01, suspend.set)
        result = await consumer.wait_first(handler(), suspend.wait())
        assert result.results == [True]  # the suspension won
        await asyncio.sleep(0)
        assert cleaned == ["finally"]

    asyncio.run(run())


def test_a_waiting_handler_s_error_reaches_the_consumer() -> None:
    async def run() -> None:
        consumer = create_app(Settings()).consumer

        async def handler() -> None:
            await asyncio.sleep(0)
            raise ValueError("bad record")

        with pytest.raises(ValueError, match="bad record"):
            await consumer.wait_first(handler(), asyncio.Event().wait())

    asyncio.run(run())
