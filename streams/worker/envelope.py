"""Records of the internal per-child topic: batches of events re-keyed by child, and clock ticks.

One tag byte, then the payload:

- ``B``: a batch: a JSON array (orjson) of items, in the order ingest read them, each an event
  for one child of this partition or a replay tick (see :func:`event_item`,
  :func:`tick_item`). The events were validated by ingest, so the detect agent builds
  them back from their fields without decoding Avro again. One record per partition per ingest
  batch: the per-record costs of Faust and Kafka are paid once for hundreds of events;
- ``I`` / ``M`` / ``R``: one incident, missing report or referral, its original Avro bytes
  (written by earlier versions; still read, so an upgrade mid-stream loses nothing: see
  :func:`legacy_event`);
- ``T``: a replay tick: ``source`` (input topic and partition) has delivered every event up to
  an event time, so a detector that heard it from every source may advance its clock there;
- ``F``: a replay's end: as ``T``, and then the clock goes to ``--until``;
- ``W``: a wall-clock tick (processing time): live, it moves the clock; in a replay it only
  wakes the detect agent, to save what it applied and announce a recovered finish.

Ticks carry 8-byte big-endian milliseconds and, for ``T``/``F``, the source name.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner, murmur2

from streams.codec import decode_event_avro, enum_table
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    RiskLevel,
    new_household_child,
    new_incident,
    new_missing_report,
    new_referral,
)
from streams.domain.time import Millis

TICK_HEADER = "safeguarding-tick"
"""Header of a replay tick on an input topic (its value is empty): event-time milliseconds."""
FINISH_HEADER = "safeguarding-finish"
"""Header of a replay's last tick: the ``--until`` milliseconds."""

KIND_TAGS = {"incident": b"I", "missing_report": b"M", "referral": b"R"}
TAG_KINDS = {v[0]: k for k, v in KIND_TAGS.items()}
TICK, FINISH, WALL, BATCH = ord("T"), ord("F"), ord("W"), ord("B")
_MS = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class Tick:
    kind: int
    """TICK, FINISH or WALL."""
    at: Millis
    source: str
    """``topic:partition`` of the input that sent it (empty for WALL)."""


def legacy_event(value: bytes, key: bytes) -> Event:
    """The event of an ``I``/``M``/``R`` record, which earlier versions wrote once per child of
    an event, keyed by the child: an incident keeps only that child, as its detector saw it.
    Raises :class:`~streams.errors.InvalidEvent` as the codec does."""
    decoded = decode_event_avro(TAG_KINDS[value[0]], value[1:])
    if isinstance(decoded, Incident):
        child_id = key.decode()
        only = tuple(c for c in decoded.children if c.child_id == child_id)[:1]
        decoded = dataclasses.replace(decoded, children=only)
    return decoded


def tick_record(kind: int, at: Millis, source: str = "") -> bytes:
    return bytes((kind,)) + _MS.pack(at) + source.encode()


def parse_tick(value: bytes) -> Tick:
    (at,) = _MS.unpack_from(value, 1)
    return Tick(value[0], at, value[9:].decode())


def source_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


# -- batches -----------------------------------------------------------------------------------

_INCIDENT, _MISSING, _REFERRAL, _TICK = 0, 1, 2, 3
"""The first field of an item: what it is."""


def event_item(event: Event, child: HouseholdChild | None = None) -> list[Any]:
    """``event`` as an item of a batch, for one child (an incident: ``child``, one of its
    household; the detector of a partition sees only its own children)."""
    if isinstance(event, Incident):
        assert child is not None
        return [_INCIDENT, event.event_id, event.occurred_at, event.incident_id,
                event.incident_type, event.dash_risk,
                child.child_id, child.present, child.age]  # fmt: skip
    if isinstance(event, MissingReport):
        return [_MISSING, event.event_id, event.occurred_at, event.episode_id, event.child_id,
                event.status, event.risk_level, event.looked_after, event.age]  # fmt: skip
    return [_REFERRAL, event.event_id, event.occurred_at, event.referral_id, event.child_id,
            event.agency, event.incident_id, event.episode_id]  # fmt: skip


def tick_item(kind: int, at: Millis, source: str) -> list[Any]:
    """A replay tick (TICK or FINISH) from ``source`` as an item of a batch."""
    return [_TICK, kind, at, source]


def batch_record(items: list[list[Any]]) -> bytes:
    return b"B" + orjson.dumps(items)


def parse_batch(value: bytes) -> list[list[Any]]:
    """The items of a ``B`` record; read each with :func:`is_tick`, :func:`item_event` or
    :func:`item_tick`."""
    items: list[list[Any]] = orjson.loads(memoryview(value)[1:])
    return items


def is_tick(item: list[Any]) -> bool:
    return bool(item[0] == _TICK)


def item_tick(item: list[Any]) -> Tick:
    return Tick(item[1], item[2], item[3])


_INCIDENT_TYPES = enum_table(IncidentType)[0]
_DASH = enum_table(DashRisk)[0]
_STATUSES = enum_table(MissingStatus)[0]
_RISKS = enum_table(RiskLevel)[0]
_AGENCIES = enum_table(Agency)[0]


def item_event(item: list[Any]) -> Event:
    """The event of an item (the inverse of :func:`event_item`; the enums are members again)."""
    tag = item[0]
    if tag == _INCIDENT:
        _, event_id, at, incident_id, kind, dash, child_id, present, age = item
        return new_incident(event_id, at, incident_id, _INCIDENT_TYPES[kind],
                            None if dash is None else _DASH[dash],
                            (new_household_child(child_id, present, age),))  # fmt: skip
    if tag == _MISSING:
        _, event_id, at, episode_id, child_id, status, risk, looked_after, age = item
        return new_missing_report(event_id, at, episode_id, child_id, _STATUSES[status],
                                  None if risk is None else _RISKS[risk], looked_after,
                                  age)  # fmt: skip
    _, event_id, at, referral_id, child_id, agency, incident_id, episode_id = item
    return new_referral(event_id, at, referral_id, child_id, _AGENCIES[agency], incident_id,
                        episode_id)  # fmt: skip


class KeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, or a random partition for none) with
    each key's hash cached: the producer's ``partitioner`` for the alerts, keyed by child. The
    pure-Python murmur2 took 3.3 microseconds a child id, 40% of an alert's send."""

    def __init__(self, cache_size: int = 1_000_000) -> None:
        self._hashes: dict[bytes, int] = {}
        self._cache_size = cache_size
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        h = self._hashes.get(key)
        if h is None:
            h = murmur2(key) & 0x7FFFFFFF
            if len(self._hashes) >= self._cache_size:
                self._hashes.clear()
            self._hashes[key] = h
        return all_partitions[h % len(all_partitions)]


class Partitioner:
    """The per-child partition of a child: Kafka's default partitioner of its key (murmur2), so
    a batch goes where a record keyed by the child would (and where the child's state is).
    Cached: the pure-Python murmur2 costs about 10 microseconds a key."""

    def __init__(self, partitions: int, cache_size: int = 1_000_000) -> None:
        self._n = partitions
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def __call__(self, child_id: str) -> int:
        p = self._cache.get(child_id)
        if p is None:
            p = (murmur2(child_id.encode()) & 0x7FFFFFFF) % self._n
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[child_id] = p
        return p
