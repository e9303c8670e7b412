"""The per-child topic's batch records: every event comes back equal, ticks keep their order,
and a batch goes to the partition a record keyed by its child would."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codec
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    HouseholdChild,
    Incident,
    IncidentType,
    Referral,
)
from streams.errors import InvalidEvent
from streams.worker import envelope
from streams.worker.envelope import FINISH, TICK
from tests.unit.test_properties import worlds


def _items(event: Event) -> list[tuple[Event, list[object]]]:
    """(the event as one child's detector sees it, its item), one per child."""
    if isinstance(event, Incident):
        return [
            (Incident(event.event_id, event.occurred_at, event.incident_id, event.incident_type,
                      event.dash_risk, (child,)), envelope.event_item(event, child))
            for child in event.children
        ]  # fmt: skip
    return [(event, envelope.event_item(event))]


@settings(max_examples=100, deadline=None)
@given(worlds())
def test_every_event_round_trips_through_a_batch(events: list[Event]) -> None:
    pairs = [pair for event in events for pair in _items(event)]
    items = envelope.parse_batch(envelope.batch_record([item for _, item in pairs]))
    back = [envelope.item_event(item) for item in items]
    assert back == [expected for expected, _ in pairs]
    # Enums come back as the members the rules compare with `is`.
    for got, (expected, _) in zip(back, pairs, strict=True):
        for name in ("incident_type", "dash_risk", "status", "risk_level", "agency"):
            assert getattr(got, name, None) is getattr(expected, name, None)


def test_ticks_keep_their_place_among_events() -> None:
    items = [envelope.tick_item(TICK, 5, "t:0"), envelope.tick_item(FINISH, 9, "t:1")]
    back = envelope.parse_batch(envelope.batch_record(items))
    assert [envelope.is_tick(i) for i in back] == [True, True]
    assert [envelope.item_tick(i) for i in back] == [
        envelope.Tick(TICK, 5, "t:0"),
        envelope.Tick(FINISH, 9, "t:1"),
    ]


def test_partition_of_a_child_is_kafkas_default_for_its_key() -> None:
    kafka = DefaultPartitioner()
    partition_of = envelope.Partitioner(4, cache_size=3)  # a small cache: it is cleared too
    for i in range(50):
        child = f"C{i}-é"
        assert partition_of(child) == kafka(child.encode(), [0, 1, 2, 3], [0, 1, 2, 3])
        assert partition_of(child) == partition_of(child)


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 12))
def test_the_producers_partitioner_is_kafkas_default(keys: list[bytes], n: int) -> None:
    kafka = DefaultPartitioner()
    ours = envelope.KeyPartitioner(cache_size=5)  # small: cleared along the way
    for partitions in ([*range(n)], [*range(n + 3)]):  # one cache, any partition count
        for key in keys + keys:
            assert ours(key, partitions, partitions) == kafka(key, partitions, partitions)
    assert ours(None, [0, 1, 2], [2]) == 2  # no key: one of the available, as Kafka's


def test_records_of_earlier_versions_give_each_child_its_event() -> None:
    """``I``/``M``/``R`` records (one Avro event per child, keyed by the child) are no longer
    written, but a worker upgraded mid-stream still applies the ones on the topic."""
    two = (HouseholdChild("C1", True, 4), HouseholdChild("C2", False, None))
    incident = Incident("E1", 1_000, "I1", IncidentType.DOMESTIC_ABUSE, DashRisk.HIGH, two)
    referral = Referral("E2", 2_000, "R1", "C2", Agency.CHILDRENS_SOCIAL_CARE, "I1", None)
    record = b"I" + codec.encode_avro(incident)
    assert envelope.legacy_event(record, b"C2") == Incident(
        "E1", 1_000, "I1", IncidentType.DOMESTIC_ABUSE, DashRisk.HIGH, (two[1],)
    )
    assert envelope.legacy_event(b"R" + codec.encode_avro(referral), b"C2") == referral
    with pytest.raises(InvalidEvent, match="incident record"):
        envelope.legacy_event(b"I\xff\x00", b"C1")
