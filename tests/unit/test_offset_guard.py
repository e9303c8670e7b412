"""The worker's offset guard: a record that Faust skipped is read again, never lost.

The consumer here is a stand-in that records seeks: the guard's decisions are a function of the
offsets it is shown and of the committed and earliest offsets the consumer reports. The real
consumer is exercised by the kill and rebalance tests in tests/integration/test_pipeline.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP

from streams.worker.app import OffsetGuard

TP0 = TP("t", 0)


class _Consumer:
    def __init__(self, committed: int | None = None, earliest: int = 0) -> None:
        self._committed_offset: dict[TP, int | None] = {TP0: committed}
        self.earliest = earliest
        self.seeks: list[tuple[TP, int]] = []
        self.rewinding: set[TP] = set()

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    async def seek_in_thread(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.rewinding.add(tp)

    def end_rewind(self, tp: TP) -> None:
        self.rewinding.discard(tp)


class _App:
    def __init__(self, consumer: _Consumer) -> None:
        self.consumer = consumer


def _admitted(guard: OffsetGuard, offsets: list[int]) -> list[int]:
    async def run() -> list[int]:
        return [o for o in offsets if await guard.admit(TP0, o)]

    return asyncio.run(run())


def _guard(consumer: _Consumer) -> OffsetGuard:
    app: Any = _App(consumer)
    return OffsetGuard(app)


def test_consecutive_offsets_from_the_committed_one_pass() -> None:
    consumer = _Consumer(committed=5)
    assert _admitted(_guard(consumer), [5, 6, 7]) == [5, 6, 7]
    assert consumer.seeks == []


def test_a_gap_seeks_back_once_and_drops_until_the_missing_record_comes() -> None:
    consumer = _Consumer(committed=None)
    guard = _guard(consumer)
    # Read 0, then the consumer skipped 1-22; after the seek, 1 comes again.
    assert _admitted(guard, [0, 23, 24]) == [0]
    assert consumer.seeks == [(TP0, 1)]
    assert consumer.rewinding == {TP0}  # Faust must not drop 1 as read already
    assert _admitted(guard, [25, 1, 2]) == [1, 2]
    assert consumer.seeks == [(TP0, 1)]
    assert consumer.rewinding == set()


def test_a_first_record_after_the_committed_one_is_a_gap() -> None:
    consumer = _Consumer(committed=3)
    assert _admitted(_guard(consumer), [7, 3, 4]) == [3, 4]
    assert consumer.seeks == [(TP0, 3)]


def test_repeats_pass_after_faust_sought_back() -> None:
    consumer = _Consumer(committed=0)
    assert _admitted(_guard(consumer), [0, 1, 2, 1, 2, 3]) == [0, 1, 2, 1, 2, 3]
    assert consumer.seeks == []


def test_records_gone_to_retention_are_not_waited_for() -> None:
    consumer = _Consumer(committed=2, earliest=10)
    assert _admitted(_guard(consumer), [10, 11]) == [10, 11]
    assert consumer.seeks == []


def test_after_a_rebalance_the_committed_offset_is_the_start_again() -> None:
    consumer = _Consumer(committed=0)
    guard = _guard(consumer)
    assert _admitted(guard, [0, 1, 2, 3]) == [0, 1, 2, 3]
    guard.forget([TP0])
    consumer._committed_offset[TP0] = 2  # Faust sought back to the committed offset
    assert _admitted(guard, [2, 3, 4]) == [2, 3, 4]
    assert consumer.seeks == []


def test_a_recovered_state_position_wins_over_the_committed_offset() -> None:
    """The detector's clock names the next per-child offset it has not applied: a changelog
    cut short by a crash can be older than the offset Faust committed."""
    consumer = _Consumer(committed=9)
    guard = _guard(consumer)
    guard.expect(TP0, 4)
    assert _admitted(guard, [9, 4, 5]) == [4, 5]
    assert consumer.seeks == [(TP0, 4)]
