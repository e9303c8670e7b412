"""Records of the internal per-child topic: an event re-keyed by child, or a clock tick.

One tag byte, then the payload:

- ``I`` / ``M`` / ``R``: an incident, missing report or referral, its original Avro bytes
  (already validated by the ingest agent);
- ``T``: a replay tick: ``source`` (input topic and partition) has delivered every event up to
  an event time, so a detector that heard it from every source may advance its clock there;
- ``F``: a replay's end: as ``T``, and then the clock goes to ``--until``;
- ``W``: a live wall-clock tick (processing time).

Ticks carry 8-byte big-endian milliseconds and, for ``T``/``F``, the source name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streams.domain.time import Millis

TICK_HEADER = "safeguarding-tick"
"""Header of a replay tick on an input topic (its value is empty): event-time milliseconds."""
FINISH_HEADER = "safeguarding-finish"
"""Header of a replay's last tick: the ``--until`` milliseconds."""

KIND_TAGS = {"incident": b"I", "missing_report": b"M", "referral": b"R"}
TAG_KINDS = {v[0]: k for k, v in KIND_TAGS.items()}
TICK, FINISH, WALL = ord("T"), ord("F"), ord("W")
_MS = struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class Tick:
    kind: int
    """TICK, FINISH or WALL."""
    at: Millis
    source: str
    """``topic:partition`` of the input that sent it (empty for WALL)."""


def event_record(kind: str, avro: bytes) -> bytes:
    return KIND_TAGS[kind] + avro


def tick_record(kind: int, at: Millis, source: str = "") -> bytes:
    return bytes((kind,)) + _MS.pack(at) + source.encode()


def parse_tick(value: bytes) -> Tick:
    (at,) = _MS.unpack_from(value, 1)
    return Tick(value[0], at, value[9:].decode())


def source_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"
