"""The live feed of `safeguarding run` holds back events whose time has not come."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from streams import codec
from streams import replay as replay_module
from streams.replay import replay
from streams.settings import Settings
from tests.unit.rulekit import referral

NOW = 1_800_000_000_000


class FakeProducer:
    """Stands in for AIOKafkaProducer: records what would be sent, when."""

    sent: ClassVar[list[int]] = []

    def __init__(self, **_: Any) -> None:
        FakeProducer.sent = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    async def send(self, topic: str, value: bytes, **kw: Any) -> None:
        if "timestamp_ms" in kw:
            FakeProducer.sent.append(kw["timestamp_ms"])


def test_replay_with_live_tail_waits_for_future_events(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(replay_module, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(replay_module, "_wall", lambda: NOW)
    monkeypatch.setattr(replay_module.asyncio, "sleep", sleep)
    history = tmp_path / "feed.jsonl"
    history.write_bytes(
        codec.encode_json_line(referral("C1", NOW - 5_000))
        + codec.encode_json_line(referral("C1", NOW + 7_000))
    )
    settings = Settings.from_env({}, bootstrap="unused:1")
    asyncio.run(replay([history], settings, create=False, ticks=False, live_tail=True))
    assert slept == [7.0]  # the past event at once; the future one waits for its time
    assert FakeProducer.sent == [NOW - 5_000, NOW + 7_000]
