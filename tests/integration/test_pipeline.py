"""The live pipeline on a real broker (Tansu and Apache Kafka): same alerts as the inline
engine, through crashes and rebalances; live deadlines on time; poison dead-lettered."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from streams import codec
from streams.backtest import backtest_inline
from streams.backtest_kafka import backtest_kafka
from streams.domain.events import (
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    RiskLevel,
)
from streams.domain.time import DAY, HOUR, SECOND, parse_rfc3339
from streams.generate import run_generate
from streams.replay import replay
from tests.integration import pipelinekit as kit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated history of a little over 10,000 events."""
    path = tmp_path_factory.mktemp("world") / "world.jsonl"
    run_generate(children=3000, days=300, seed=11, out=path)
    assert path.read_bytes().count(b"\n") >= 10_000
    return path


@pytest.fixture(scope="module")
def expected(
    world: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[object, ...]]:
    return kit.inline_alerts(world, tmp_path_factory.mktemp("inline"))


def test_kafka_engine_equals_inline_alert_for_alert(
    kafka_broker: kit.Any, world: Path, expected: dict, tmp_path: Path
) -> None:
    out = tmp_path / "kafka.jsonl"
    summary = backtest_kafka([world], out, bootstrap=kafka_broker.bootstrap, timeout=600)
    got = kit.inline_from_file(out)
    assert summary.events >= 10_000
    assert len(got) == len(expected) > 1000
    assert got == expected


def test_kafka_engine_equals_inline_with_until_before_the_last_event(
    kafka_broker: kit.Any, world: Path, tmp_path: Path
) -> None:
    """``--until`` caps raising in both engines, an SG04 of an event after it included (the
    worker is told ``--until`` before the replay; from the finish ticks alone it would learn
    it only after every event)."""
    times = sorted(orjson.loads(line)["occurred_at"] for line in world.read_bytes().splitlines())
    until = parse_rfc3339(times[len(times) * 6 // 10])
    inline_out, kafka_out = tmp_path / "inline.jsonl", tmp_path / "kafka.jsonl"
    backtest_inline([world], inline_out, until=until)
    want = kit.inline_from_file(inline_out)
    later = [line for line in world.read_bytes().splitlines() if b'"REPORTED"' in line]
    assert any(parse_rfc3339(orjson.loads(x)["occurred_at"]) > until for x in later)
    backtest_kafka([world], kafka_out, bootstrap=kafka_broker.bootstrap, until=until, timeout=600)
    got = kit.inline_from_file(kafka_out)
    assert len(want) > 500
    assert got == want


CRASH_SAVE_S = 0.25
"""The workers that crash below write their cases every 0.25 s, not a replay's default 30 s, so
a kill finds states, clocks and replay sources half written, which the next worker recovers."""


def _replay_in_background(
    world: Path, settings: kit.Settings, *, finish: bool = True
) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: asyncio.run(replay([world], settings, create=False, finish=finish)),
        daemon=True,
    )
    thread.start()
    return thread


def _wait_for_alerts(settings: kit.Settings, at_least: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = asyncio.run(kit.read_all(settings.bootstrap, settings.topics.alerts, 4, quiet=0.5))
        if len(got) >= at_least:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} alerts within {timeout} s")


def test_worker_killed_mid_replay_loses_nothing(
    kafka_broker: kit.Any, topic_prefix: str, world: Path, expected: dict, tmp_path: Path
) -> None:
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, save_interval_s=CRASH_SAVE_S)
    kit.create(settings)
    first = kit.spawn_worker(settings, tmp_path / "worker1.log")
    try:
        replaying = _replay_in_background(world, settings)
        _wait_for_alerts(settings, at_least=300)
    finally:
        kit.kill9(first)  # no clean shutdown: nothing flushed, nothing committed on purpose
    with kit.worker(settings, tmp_path / "worker2.log") as second:
        replaying.join(120)
        alerts = kit.collect(settings, second, [tmp_path / "worker2.log"])
    assert kit.comparable(alerts.values()) == expected
    # Every version on the topic of one (rule, child, trigger) carries the same id, and is
    # keyed by its child, on the partition Kafka's default partitioner gives that key.
    records = asyncio.run(kit.read_records(settings.bootstrap, settings.topics.alerts, 4))
    kafka = DefaultPartitioner()
    ids: dict[tuple[str, str, str], set[str]] = {}
    for record in records:
        v = codec.decode_alert_avro(record.value)
        ids.setdefault(v.key, set()).add(v.alert_id)
        assert record.key == v.child_id.encode()
        assert record.partition == kafka(record.key, [0, 1, 2, 3], [0, 1, 2, 3])
    assert all(len(s) == 1 for s in ids.values())


def _log_records(log: Path) -> list[dict[str, Any]]:
    """Every line of a worker's log, each a JSON record (the libraries' warnings included)."""
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


def _done_markers(settings: kit.Settings) -> Counter[int]:
    """How many times each per-child partition was announced finished on the control topic."""
    markers = asyncio.run(kit.read_all(settings.bootstrap, settings.topics.control, 1, quiet=0.5))
    return Counter(m["partition"] for m in map(orjson.loads, markers) if m.get("done"))


def _split_in_time(world: Path, tmp: Path) -> tuple[Path, Path]:
    """The world's events of the days before its middle day, and the rest (all later)."""
    lines = world.read_bytes().splitlines(keepends=True)
    days = [orjson.loads(line)["occurred_at"][:10] for line in lines]  # UTC, as generated
    middle = sorted(days)[len(days) // 2]
    first, rest = tmp / "first.jsonl", tmp / "rest.jsonl"
    first.write_bytes(b"".join(x for x, day in zip(lines, days, strict=True) if day < middle))
    rest.write_bytes(b"".join(x for x, day in zip(lines, days, strict=True) if day >= middle))
    return first, rest


def test_two_workers_share_partitions_and_one_may_die(
    kafka_broker: kit.Any, topic_prefix: str, world: Path, expected: dict, tmp_path: Path
) -> None:
    """Two workers share the partitions; one dies half-way through the replay, and the other
    takes its partitions over from their saved cases and finishes them. The history goes in
    two replays, the second after the kill, so the dead worker cannot have finished its
    partitions however fast or slow the machine (in one replay of this world it finished them
    in under a second on a quiet machine, and nothing was taken over; under load it did not,
    and CI once saw a partition never finished)."""
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, save_interval_s=CRASH_SAVE_S)
    kit.create(settings)
    first, rest = _split_in_time(world, tmp_path)
    with kit.worker(settings, tmp_path / "a.log") as a:
        b = kit.spawn_worker(settings, tmp_path / "b.log")
        try:
            # Both hold partitions before the replay starts: the pipeline is fast enough to
            # detect the first half before a worker that joins meanwhile gets a partition.
            _, b_partitions = kit.wait_for_shared_assignment(
                [(tmp_path / "a.log", a), (tmp_path / "b.log", b)], settings.partitions
            )
            replaying = _replay_in_background(first, settings, finish=False)
            # b dies as soon as each of its partitions has a case on the changelog, while the
            # first half may still be streaming in.
            asyncio.run(_first_saved_case(settings, b_partitions))
        finally:
            kit.kill9(b)
        replaying.join(120)
        assert not replaying.is_alive(), "the first half's replay did not end within 120 s"
        assert not _done_markers(settings), "a partition finished before the whole history"
        asyncio.run(replay([rest], settings, create=False))
        alerts = kit.collect(settings, a, [tmp_path / "a.log", tmp_path / "b.log"])
    assert kit.comparable(alerts.values()) == expected
    # a took b's partitions over, from b's saved cases (or rebuilt one whose states did not
    # match its saved clock: b killed between the two), and finished them.
    records_a = _log_records(tmp_path / "a.log")
    found: Counter[int] = Counter()
    for r in records_a:
        if r["event"] in ("partition_started", "partition_rebuilt"):
            found[r["partition"]] += r["children"]
    assert all(found[p] > 0 for p in b_partitions), (b_partitions, found)
    finished_by_a = {r["partition"] for r in records_a if r["event"] == "partition_finished"}
    assert b_partitions <= finished_by_a, (b_partitions, finished_by_a)


def test_live_deadline_fires_on_time_without_further_input(
    kafka_broker: kit.Any, topic_prefix: str, tmp_path: Path
) -> None:
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, mode="live")
    settings = kit.replace(settings, lateness_ms=2 * SECOND)
    kit.create(settings)
    with kit.worker(settings, tmp_path / "live.log") as proc:
        # Timed from when the worker detects, so a slow start on a loaded machine is not
        # counted as a late deadline.
        kit.wait_for_assignment(tmp_path / "live.log", proc)
        due = kit.wall_ms() + 8 * SECOND
        incident = Incident(
            "live-1", due - 24 * HOUR, "LIVE-I1", IncidentType.DOMESTIC_ABUSE, None,
            (HouseholdChild("LIVE-C1", True, 2),),
        )  # fmt: skip
        asyncio.run(
            kit.produce(
                settings.bootstrap,
                [(settings.topics.incidents, b"LIVE-I1", codec.encode_avro(incident))],
            )
        )
        alert = kit.wait_for_alert(settings, "SG01", timeout=90, worker=proc)
    assert alert.due_at == due
    # Fired by the wall clock alone: no event came after the incident.
    assert 0 <= alert.detected_at - due < 10 * SECOND, alert.detected_at - due


def test_poison_messages_are_dead_lettered_and_the_pipeline_carries_on(
    kafka_broker: kit.Any, topic_prefix: str, tmp_path: Path
) -> None:
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, mode="live")
    kit.create(settings)
    now = kit.wall_ms()
    valid_referral = codec.encode_avro(
        codec.event_from_dict(
            {"type": "referral", "event_id": "r1", "occurred_at": "2024-01-01T00:00:00Z",
             "referral_id": "R1", "child_id": "P-C9", "agency": "SCHOOL"}
        )
    )  # fmt: skip
    poison = []
    for topic in settings.topics.inputs.values():
        poison += [
            (topic, b"k", b"\x00\xff garbage \xfe"),
            (topic, b"k", b""),
            (topic, b"k", b"x" * 70_000),
        ]
    poison.append((settings.topics.incidents, b"k", valid_referral))  # wrong schema
    lac = [
        MissingReport("p-1", now - 5 * DAY, "P-E1", "P-C1", MissingStatus.REPORTED,
                      RiskLevel.LOW, True, 14),
        MissingReport("p-2", now - HOUR, "P-E2", "P-C1", MissingStatus.REPORTED,
                      RiskLevel.ABSENT, True, 14),
    ]  # fmt: skip
    with kit.worker(settings, tmp_path / "poison.log") as proc:
        asyncio.run(kit.produce(settings.bootstrap, poison))
        asyncio.run(
            kit.produce(
                settings.bootstrap,
                [(settings.topics.missing_reports, b"P-C1", codec.encode_avro(e)) for e in lac],
            )
        )
        alert = kit.wait_for_alert(settings, "SG04", timeout=90, worker=proc)
        letters = kit.dead_letters(
            asyncio.run(kit.read_all(settings.bootstrap, settings.topics.dead_letters, 4))
        )
    assert alert.child_id == "P-C1"
    assert alert.trigger_id == "P-E2"
    assert len(letters) == len(poison)
    by_topic: dict[str, int] = {}
    for letter in letters:
        by_topic[letter.source_topic] = by_topic.get(letter.source_topic, 0) + 1
        assert letter.reason
        assert letter.offset is not None
        assert letter.partition is not None
    assert by_topic == {
        settings.topics.incidents: 4,
        settings.topics.missing_reports: 3,
        settings.topics.referrals: 3,
    }
    assert any(letter.payload == b"x" * 70_000 for letter in letters)


async def _first_saved_case(
    settings: kit.Settings, partitions: set[int] | None = None, timeout: float = 180
) -> None:
    """Return as soon as the cases table's changelog holds a child's state (not only a
    partition's clock), on each of ``partitions`` if given."""
    changelog = f"{settings.topic_prefix}worker-cases-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while not consumer.assignment():
            found = consumer.partitions_for_topic(changelog)
            if found:
                tps = [TopicPartition(changelog, p) for p in found]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
            elif time.monotonic() > deadline:
                raise AssertionError(f"no topic {changelog} within {timeout} s")
            else:
                await asyncio.sleep(0.02)
                await consumer._client.force_metadata_update()
        saved: set[int] = set()  # partitions with a case
        while time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=20)).items():
                if any(not r.key.endswith(b'__clock__"') for r in records):
                    saved.add(tp.partition)
            if saved and (partitions is None or partitions <= saved):
                return
        raise AssertionError(f"no case saved within {timeout} s")
    finally:
        await consumer.stop()


def test_worker_killed_early_in_replay_loses_nothing(
    kafka_broker: kit.Any, topic_prefix: str, world: Path, expected: dict, tmp_path: Path
) -> None:
    """As above, but killed as soon as it has saved a case: the batched pipeline is fast enough
    to finish this world before 300 alerts are read back, so this one makes sure the second
    worker really recovers half-done partitions (states, clocks, replay sources) from the
    table."""
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, save_interval_s=CRASH_SAVE_S)
    kit.create(settings)
    first = kit.spawn_worker(settings, tmp_path / "worker1.log")
    try:
        replaying = _replay_in_background(world, settings)
        asyncio.run(_first_saved_case(settings))
    finally:
        kit.kill9(first)
    done = _done_markers(settings)
    assert done.total() < settings.partitions, "the first worker finished before it was killed"
    with kit.worker(settings, tmp_path / "worker2.log") as second:
        replaying.join(120)
        alerts = kit.collect(settings, second, [tmp_path / "worker1.log", tmp_path / "worker2.log"])
    assert kit.comparable(alerts.values()) == expected
    # The second worker found the first one's saved cases: it started from them, or rebuilt a
    # partition whose states did not match its saved clock (killed between the two).
    records = _log_records(tmp_path / "worker2.log")
    recovered = [r for r in records if r["event"] in ("partition_started", "partition_rebuilt")]
    assert sum(r["children"] for r in recovered) > 0, recovered
    # A partition is finished once, not again at each later record with ticks (each time a
    # save, a flush and another "done" on the control topic).
    finishes = Counter(r["partition"] for r in records if r["event"] == "partition_finished")
    assert finishes, "the second worker finished no partition"
    assert max(finishes.values()) == 1, finishes


def test_a_replay_finished_before_a_crash_is_announced_again(
    kafka_broker: kit.Any, topic_prefix: str, world: Path, expected: dict, tmp_path: Path
) -> None:
    """A worker that recovers a finished replay announces it again on the control topic, with
    no replay tick to prompt it (a wall tick does): its predecessor may have crashed between
    saving the finish and announcing it, and then a ``backtest --engine kafka`` would wait
    for the announcement for ever."""
    settings = kit.settings_for(kafka_broker.bootstrap, topic_prefix, save_interval_s=CRASH_SAVE_S)
    kit.create(settings)
    first = kit.spawn_worker(settings, tmp_path / "worker1.log")
    try:
        asyncio.run(replay([world], settings, create=False))
        kit.collect(settings, first, [tmp_path / "worker1.log"])
    finally:
        kit.kill9(first)
    before = _done_markers(settings)
    assert set(before) == set(range(settings.partitions)), before
    with kit.worker(settings, tmp_path / "worker2.log") as second:
        deadline = time.monotonic() + 120
        once_each = Counter(range(settings.partitions))
        while (again := _done_markers(settings) - before) != once_each:
            if time.monotonic() > deadline:
                raise AssertionError(f"announced again in 120 s: {dict(again)}")
            assert second.poll() is None, f"the worker exited with {second.returncode}"
            time.sleep(0.5)
        time.sleep(3)  # a few wall ticks more: announced once each, not at every tick
        assert _done_markers(settings) - before == once_each
        alerts = kit.collect(settings, second, [tmp_path / "worker2.log"])
    assert kit.comparable(alerts.values()) == expected
