"""`safeguarding replay`: historic files -> the input topics, in event-time order.

Each event is produced as Avro to its topic (key: incident_id for incidents, child_id for the
others; the record timestamp is its ``occurred_at``). Every ``tick_every`` events, and at the
end, a tick goes into every partition of every input topic: "everything up to this event time
has been sent". The worker's clock follows those ticks, so a replay gives the same alerts as
the inline engine however fast Faust reads each partition. The last tick carries ``--until``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from streams import codec
from streams.domain.alerts import DeadLetter
from streams.domain.events import Event, Incident
from streams.domain.time import Millis
from streams.history import InvalidRecord, NotInEventTimeOrder, OnProgress, ordered_events
from streams.settings import Settings
from streams.worker.envelope import FINISH_HEADER, TICK_HEADER
from streams.worker.topics import topic_specs

TICK_EVERY = 2_000


@dataclass(slots=True)
class ReplaySummary:
    events: int = 0
    invalid: int = 0
    until: Millis | None = None
    seconds: float = 0.0


def parse_speed(text: str) -> float | None:
    """``max`` (None: as fast as the broker takes them) or ``Nx`` (N times event time)."""
    if text == "max":
        return None
    if text.endswith("x"):
        try:
            value = float(text[:-1])
        except ValueError:
            value = 0.0
        if value > 0:
            return value
    raise ValueError(f"--speed: expected max or a factor like 60x, received {text!r}")


def _key(event: Event) -> bytes:
    return (event.incident_id if isinstance(event, Incident) else event.child_id).encode()


async def replay(
    paths: Sequence[str | os.PathLike[str]],
    settings: Settings,
    *,
    speed: float | None = None,
    until: Millis | None = None,
    on_invalid: Callable[[InvalidRecord], None] | None = None,
    on_progress: OnProgress | None = None,
    create: bool = True,
    ticks: bool = True,
    live_tail: bool = False,
    finish: bool = True,
) -> ReplaySummary:
    """Produce the events of ``paths`` and the replay ticks; return what was sent.

    The last tick finishes the replay: the workers flush every partition to its end. With
    ``finish=False`` it is an ordinary tick instead, and more history follows in a later
    replay, every event of it after this one's last."""
    from streams.broker import create_topics

    topics = settings.topics
    if create:
        await create_topics(settings.bootstrap, topic_specs(settings))
    summary = ReplaySummary()
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    try:
        partitions = {
            name: sorted(await producer.partitions_for(name)) for name in topics.inputs.values()
        }
        invalid: list[InvalidRecord] = []

        def collect(record: InvalidRecord) -> None:
            invalid.append(record)

        async def flush_invalid() -> None:
            for record in invalid:
                summary.invalid += 1
                if on_invalid is not None:
                    on_invalid(record)
                letter = DeadLetter(
                    record.source, None, record.line, record.reason, record.raw, _wall()
                )
                await producer.send(
                    topics.dead_letters, codec.encode_avro(letter), key=record.source.encode()
                )
            invalid.clear()

        async def tick(header: str, at: Millis) -> None:
            if not ticks:
                return  # a live feed: the worker's clock follows events and the wall clock
            if until is not None:
                at = min(at, until)
            for name, parts in partitions.items():
                for p in parts:
                    await producer.send(
                        name, b"", partition=p, headers=[(header, str(at).encode())]
                    )

        def events() -> Iterator[Event]:
            return ordered_events(paths, collect, on_progress)

        try:
            last = await _produce(
                producer, topics.inputs, events(), speed, tick, flush_invalid, summary, live_tail
            )
        except NotInEventTimeOrder:
            # Nothing was sent that a sorted replay would not send first; start again sorted.
            summary.events = 0
            invalid.clear()
            last = await _produce(
                producer, topics.inputs,
                ordered_events(paths, collect, on_progress, assume_sorted=False),
                speed, tick, flush_invalid, summary, live_tail,
            )  # fmt: skip
        await flush_invalid()
        end = until if until is not None else last
        if end is not None:
            await tick(FINISH_HEADER if finish else TICK_HEADER, end)
        summary.until = end
        await producer.flush()
    finally:
        await producer.stop()
    summary.seconds = time.perf_counter() - started
    return summary


async def _produce(
    producer: AIOKafkaProducer,
    topic_of: dict[str, str],
    events: Iterable[Event],
    speed: float | None,
    tick: Callable[[str, Millis], Awaitable[None]],
    flush_invalid: Callable[[], Awaitable[None]],
    summary: ReplaySummary,
    live_tail: bool = False,
) -> Millis | None:
    """Send the events; with ``live_tail``, events still in the future wait for their time."""
    last: Millis | None = None
    first_event: Millis | None = None
    wall_start = time.monotonic()
    n = 0
    for event in events:
        at = event.occurred_at
        if speed is not None:
            if first_event is None:
                first_event = at
            wait = (at - first_event) / 1000 / speed - (time.monotonic() - wall_start)
            if wait > 0:
                await producer.flush()
                await asyncio.sleep(wait)
        if live_tail and (wait := (at - _wall()) / 1000) > 0:
            await producer.flush()
            await asyncio.sleep(wait)
        if last is not None and at > last and n >= TICK_EVERY:
            await tick(TICK_HEADER, last)  # everything up to `last` has been sent
            await flush_invalid()
            n = 0
        await producer.send(
            topic_of[event.type], codec.encode_avro(event), key=_key(event), timestamp_ms=at
        )
        last = at
        n += 1
        summary.events += 1
    return last


def _wall() -> Millis:
    return time.time_ns() // 1_000_000
