"""``schemas/*.avsc`` <-> typed values: Avro binary and container files, JSON Lines.

This module is the only place that validates raw input. Everything it returns is a valid
:mod:`streams.domain` value; everything it rejects raises :class:`~streams.errors.InvalidEvent`
with a reason a person can act on (which field, what was received, what was expected), so a
dead letter explains itself.

>>> line = (b'{"type": "referral", "event_id": "E1", "occurred_at": "2024-05-01T15:30:00+01:00",'
...         b' "referral_id": "R1", "child_id": "C1", "agency": "SCHOOL"}')
>>> event = decode_json_line(line)
>>> event.occurred_at, event.agency, event.incident_id
(1714573800000, <Agency.SCHOOL: 'SCHOOL'>, None)
>>> decode_event_avro("referral", encode_avro(event)) == event
True

Validation rules beyond the schema (SPEC section 3, and where SPEC is silent):

- a record over :data:`MAX_RECORD_BYTES` (64 KiB, not counting a JSON line's terminator) is
  invalid; Avro input is measured *before* decoding, so crafted bytes cannot make the decoder
  allocate or loop for long;
- strings must be non-empty and not only whitespace; booleans must be JSON ``true``/``false``
  (not ``1`` or ``"true"``); integers must be integers (not booleans, floats or strings);
- JSON times are RFC 3339 strings with an offset (``Z`` or ``+01:00``), converted to UTC epoch
  milliseconds; times must fall in years 1900 to 9999 (:data:`MIN_MILLIS`, :data:`MAX_MILLIS`),
  and an event's ``occurred_at`` a week before the end of 9999 (:data:`MAX_EVENT_MILLIS`);
- ``children`` has 1 to 20 entries, each ``child_id`` once; ages are 0 to :data:`MAX_AGE` or null;
- ``risk_level`` is required for REPORTED and RISK_REVIEWED and must be null (or absent) for
  RETURNED and RETURN_INTERVIEW;
- nullable fields (those with ``"default": null`` in the schema) may be absent in JSON;
- unknown extra JSON fields are ignored, so an older reader accepts a newer writer's lines.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Final, TypeGuard, TypeVar

import fastavro
import orjson

from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    DeadLetter,
    Mode,
    RuleId,
    Severity,
)
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
    new_household_child,
    new_incident,
    new_missing_report,
    new_referral,
)
from streams.domain.time import Millis, from_datetime, parse_rfc3339, to_rfc3339
from streams.errors import CorruptFile, InvalidEvent

__all__ = [
    "EVENT_KINDS",
    "MAX_AGE",
    "MAX_CHILDREN",
    "MAX_DEAD_LETTER_BYTES",
    "MAX_EVENT_MILLIS",
    "MAX_MILLIS",
    "MAX_NOTE_CHARS",
    "MAX_RECORD_BYTES",
    "MIN_MILLIS",
    "NAMESPACE",
    "SCHEMA_DIR",
    "action_from_dict",
    "action_to_dict",
    "alert_from_dict",
    "alert_json_line",
    "alert_to_dict",
    "dead_letter_from_dict",
    "dead_letter_to_dict",
    "decode_action_avro",
    "decode_alert_avro",
    "decode_dead_letter_avro",
    "decode_event_avro",
    "decode_json_line",
    "encode_avro",
    "encode_json_line",
    "enum_table",
    "event_from_dict",
    "event_to_dict",
    "load_schema",
    "read_avro_container",
    "write_avro_container",
]

# --------------------------------------------------------------------------------------------
# Limits

MAX_RECORD_BYTES: Final = 65_536
"""SPEC section 3: an input record over 64 KiB is invalid."""

MAX_DEAD_LETTER_BYTES: Final = 8 * 1024 * 1024
"""A dead letter carries the original bytes, which may themselves be over 64 KiB (an oversized
record is dead-lettered whole), so its own limit is larger. Kafka's default maximum message
(about 1 MB) is lower still: the producer of dead letters decides whether to truncate."""

MAX_CHILDREN: Final = 20
"""SPEC section 3: an incident lists 1 to 20 children."""

MAX_AGE: Final = 25
"""Oldest plausible age in years: local authorities support care leavers up to 25 (Children and
Social Work Act 2017), so an older age is a data error, not a child."""

MAX_NOTE_CHARS: Final = 10_000
"""Longest hub note or outcome accepted from the hub's API, so an action stays well under 64 KiB."""

MIN_MILLIS: Final[Millis] = from_datetime(datetime(1900, 1, 1, tzinfo=UTC))
"""Earliest time accepted: anything before 1900 is a data error (and ``strftime`` would not
print a four-digit year before 1000)."""

MAX_MILLIS: Final[Millis] = from_datetime(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))
"""Latest time that RFC 3339 (and Python) can write."""

MAX_EVENT_MILLIS: Final[Millis] = from_datetime(
    datetime(9999, 12, 24, 23, 59, 59, 999_000, tzinfo=UTC)
)
"""Latest event time accepted: a week before :data:`MAX_MILLIS`, so that every deadline of an
event (at most four and a half days after it: SG02's Friday-night incident to Monday 08:30)
is still a time an alert can carry. 9999 is a common "date unknown" in exports; an event
there is dead-lettered instead of stopping the run."""

EVENT_KINDS: Final = ("incident", "missing_report", "referral")
"""The JSON ``type`` of each input event, also the ``kind`` of :func:`decode_event_avro`."""

# --------------------------------------------------------------------------------------------
# Schemas: parsed once, at import

SCHEMA_DIR: Final = Path(__file__).resolve().parent.parent / "schemas"
"""The ``schemas/`` directory at the repository root: the single source of truth."""

NAMESPACE: Final = "uk.safeguarding.streams"

_SCHEMA_FILES: Final = {
    "incident": "Incident.avsc",
    "missing_report": "MissingReport.avsc",
    "referral": "Referral.avsc",
    "alert": "Alert.avsc",
    "alert_action": "AlertAction.avsc",
    "dead_letter": "DeadLetter.avsc",
}


def _read_schema_file(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / _SCHEMA_FILES[name]
    try:
        schema: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RuntimeError(f"cannot load Avro schema {path}: {exc}") from exc
    return schema


_RAW: Final = {name: _read_schema_file(name) for name in _SCHEMA_FILES}


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of the JSON of one schema file, for tools, tests and a schema registry.

    ``name`` is an event kind (``incident``, ``missing_report``, ``referral``) or ``alert``,
    ``alert_action`` or ``dead_letter``.

    >>> load_schema("referral")["name"]
    'Referral'
    """
    if name not in _RAW:
        raise KeyError(f"no schema named {name!r}; expected one of {', '.join(_RAW)}")
    return copy.deepcopy(_RAW[name])


def _wire(schema: Any) -> Any:
    """The schema without ``timestamp-millis`` annotations.

    The binary encoding is the same ``long``, but fastavro would turn every time into a
    ``datetime`` and back; the typed values hold integer milliseconds, so the hot path skips
    that. Container files keep the annotations so other tools see times.
    """
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis" and schema.get("type") == "long":
            return "long"
        return {key: _wire(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_wire(item) for item in schema]
    return schema


_WIRE: Final = {name: fastavro.parse_schema(_wire(raw)) for name, raw in _RAW.items()}
_EVENT_UNION: Final = fastavro.parse_schema([_RAW[kind] for kind in EVENT_KINDS])
_WIRE_EVENT_UNION: Final = fastavro.parse_schema([_wire(_RAW[kind]) for kind in EVENT_KINDS])
_KIND_OF_RECORD: Final = {f"{NAMESPACE}.{_RAW[kind]['name']}": kind for kind in EVENT_KINDS}
_RECORD_OF_KIND: Final = {kind: name for name, kind in _KIND_OF_RECORD.items()}
_canonical = fastavro.schema.to_parsing_canonical_form
_CANONICAL: Final = {kind: _canonical(_RAW[kind]) for kind in EVENT_KINDS}

# --------------------------------------------------------------------------------------------
# Error messages


class _Missing:
    """The marker of an absent field (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()
_SHOW_CHARS: Final = 60


def _show(value: object) -> str:
    """What was received, in JSON words and short: a reason must not carry a whole record."""
    if value is _MISSING:
        return "nothing (the field is missing)"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        text = orjson.dumps(value).decode()
        return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 4] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return f"an object with {len(value)} fields"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    return f"a value of type {type(value).__name__}"


def _bad(where: str, field: str, expected: str, received: object) -> InvalidEvent:
    return InvalidEvent(
        f"{where} field '{field}': expected {expected}, received {_show(received)}", field=field
    )


def _oversize(where: str, size: int, limit: int) -> InvalidEvent:
    return InvalidEvent(
        f"{where} record is {size:,} bytes; the limit is {limit:,} bytes ({limit // 1024} KiB)"
    )


# --------------------------------------------------------------------------------------------
# Field readers: one dict look-up and one type test on the happy path, no exceptions.

_E = TypeVar("_E")
_TimeReader = Callable[[Mapping[str, Any], str, str], Millis]


def _is_id(value: object) -> TypeGuard[str]:
    """An identifier: a string with something in it besides white space."""
    return type(value) is str and value != "" and not value.isspace()


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key, _MISSING)
    if _is_id(value):
        return value
    raise _bad(where, key, "a non-empty string", value)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or _is_id(value):
        return value
    raise _bad(where, key, "a non-empty string or null", value)


def _text(obj: Mapping[str, Any], key: str, where: str, limit: int) -> str | None:
    """Free text (a note, an outcome): may be null, at most ``limit`` characters."""
    value = obj.get(key)
    if value is None or (type(value) is str and len(value) <= limit):
        return value
    raise _bad(where, key, f"a string of at most {limit:,} characters or null", value)


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, _MISSING)
    if value is True or value is False:
        return value
    raise _bad(where, key, "true or false", value)


def _age(value: object, where: str, field: str) -> int | None:
    if value is None or (type(value) is int and 0 <= value <= MAX_AGE):
        return value
    raise _bad(where, field, f"an integer from 0 to {MAX_AGE} or null", value)


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None or (type(value) is int and value >= 0):
        return value
    raise _bad(where, key, "an integer >= 0 or null", value)


def enum_table(enum: Iterable[_E]) -> tuple[dict[str, _E], str]:
    """A lookup of ``enum``'s members by their string value, and the list of the values for an
    error message (the codec's and the state codec's readers)."""
    table = {str(member): member for member in enum}
    return table, ", ".join(table)


_INCIDENT_TYPES: Final = enum_table(IncidentType)
_DASH_RISKS: Final = enum_table(DashRisk)
_STATUSES: Final = enum_table(MissingStatus)
_RISK_LEVELS: Final = enum_table(RiskLevel)
_AGENCIES: Final = enum_table(Agency)
_RULES: Final = enum_table(RuleId)
_SEVERITIES: Final = enum_table(Severity)
_ALERT_STATUSES: Final = enum_table(AlertStatus)
_MODES: Final = enum_table(Mode)
_ACTION_KINDS: Final = enum_table(ActionKind)


def _enum(obj: Mapping[str, Any], key: str, where: str, enum: tuple[dict[str, _E], str]) -> _E:
    value = obj.get(key, _MISSING)
    member = enum[0].get(value) if type(value) is str else None
    if member is None:
        raise _bad(where, key, f"one of {enum[1]}", value)
    return member


def _opt_enum(
    obj: Mapping[str, Any], key: str, where: str, enum: tuple[dict[str, _E], str]
) -> _E | None:
    value = obj.get(key)
    if value is None:
        return None
    member = enum[0].get(value) if type(value) is str else None
    if member is None:
        raise _bad(where, key, f"one of {enum[1]} or null", value)
    return member


_TIME_EXPECTED: Final = (
    "an RFC 3339 timestamp with an offset, such as 2024-05-01T14:30:00Z or "
    "2024-05-01T15:30:00+01:00"
)
_RANGE_EXPECTED: Final = "a time from 1900-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z"
_EVENT_RANGE_EXPECTED: Final = (
    "an event time from 1900-01-01T00:00:00Z to 9999-12-24T23:59:59.999Z (a later one leaves "
    "no room for its deadlines)"
)


def _json_time(obj: Mapping[str, Any], key: str, where: str) -> Millis:
    """An RFC 3339 string with an offset, as UTC epoch milliseconds."""
    value = obj.get(key, _MISSING)
    if type(value) is not str:
        raise _bad(where, key, _TIME_EXPECTED, value)
    try:
        millis = parse_rfc3339(value)
    except (ValueError, OverflowError) as exc:
        # Raised, not kept in a local: a frame holding its own exception is a reference cycle
        # (the backtest runs with the cycle collector's full passes off).
        raise _bad(where, key, _TIME_EXPECTED, value) from exc
    if MIN_MILLIS <= millis <= MAX_MILLIS:
        return millis
    raise _bad(where, key, _RANGE_EXPECTED, value)


def _avro_time(obj: Mapping[str, Any], key: str, where: str) -> Millis:
    """Integer milliseconds (schemaless reads); a ``datetime`` when a container file's schema
    carries ``timestamp-millis`` and fastavro converted it."""
    value = obj.get(key, _MISSING)
    if type(value) is int:
        if MIN_MILLIS <= value <= MAX_MILLIS:
            return value
    elif isinstance(value, datetime) and value.tzinfo is not None:
        return from_datetime(value)
    raise _bad(where, key, f"{_RANGE_EXPECTED} in epoch milliseconds", value)


def _opt_time(obj: Mapping[str, Any], key: str, where: str, time_of: _TimeReader) -> Millis | None:
    return None if obj.get(key) is None else time_of(obj, key, where)


# --------------------------------------------------------------------------------------------
# Events from dicts (JSON objects or Avro records): the same rules for both.


def _children(value: object, where: str) -> tuple[HouseholdChild, ...]:
    if type(value) is not list or not 1 <= len(value) <= MAX_CHILDREN:
        raise _bad(where, "children", f"a list of 1 to {MAX_CHILDREN} children", value)
    children: list[HouseholdChild] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        if type(item) is not dict:
            raise _bad(where, f"children[{index}]", "an object {child_id, present, age}", item)
        child_id = item.get("child_id", _MISSING)
        if not _is_id(child_id):
            raise _bad(where, f"children[{index}].child_id", "a non-empty string", child_id)
        if child_id in seen:
            # The value is not echoed: an id in a reason would travel into logs.
            field = f"children[{index}].child_id"
            raise InvalidEvent(
                f"{where} field '{field}': expected each child once, received a child_id "
                "already listed earlier in children",
                field=field,
            )
        seen.add(child_id)
        present = item.get("present", _MISSING)
        if present is not True and present is not False:
            raise _bad(where, f"children[{index}].present", "true or false", present)
        age = item.get("age")
        if age is not None and (type(age) is not int or not 0 <= age <= MAX_AGE):
            _age(age, where, f"children[{index}].age")  # raises
        children.append(HouseholdChild(child_id, present, age))
    return tuple(children)


def _event_time(obj: Mapping[str, Any], where: str, time_of: _TimeReader) -> Millis:
    """``occurred_at``: a time, and no later than :data:`MAX_EVENT_MILLIS`."""
    millis = time_of(obj, "occurred_at", where)
    if millis > MAX_EVENT_MILLIS:
        raise _bad(where, "occurred_at", _EVENT_RANGE_EXPECTED, obj.get("occurred_at"))
    return millis


def _incident(obj: Mapping[str, Any], time_of: _TimeReader) -> Incident:
    where = "incident"
    return Incident(
        event_id=_str(obj, "event_id", where),
        occurred_at=_event_time(obj, where, time_of),
        incident_id=_str(obj, "incident_id", where),
        incident_type=_enum(obj, "incident_type", where, _INCIDENT_TYPES),
        dash_risk=_opt_enum(obj, "dash_risk", where, _DASH_RISKS),
        children=_children(obj.get("children", _MISSING), where),
    )


_GRADED: Final = frozenset({MissingStatus.REPORTED, MissingStatus.RISK_REVIEWED})


def _missing_report(obj: Mapping[str, Any], time_of: _TimeReader) -> MissingReport:
    where = "missing_report"
    event_id = _str(obj, "event_id", where)
    occurred_at = _event_time(obj, where, time_of)
    episode_id = _str(obj, "episode_id", where)
    child_id = _str(obj, "child_id", where)
    status = _enum(obj, "status", where, _STATUSES)
    raw_risk = obj.get("risk_level", _MISSING)
    if status in _GRADED:
        risk_level = _RISK_LEVELS[0].get(raw_risk) if type(raw_risk) is str else None
        if risk_level is None:
            raise _bad(
                where, "risk_level", f"one of {_RISK_LEVELS[1]} for status {status}", raw_risk
            )
    elif raw_risk is None or raw_risk is _MISSING:
        risk_level = None
    else:
        raise _bad(where, "risk_level", f"null (or no field) for status {status}", raw_risk)
    looked_after = _bool(obj, "looked_after", where)
    age = obj.get("age")
    if age is not None:
        age = _age(age, where, "age")
    return MissingReport(
        event_id=event_id,
        occurred_at=occurred_at,
        episode_id=episode_id,
        child_id=child_id,
        status=status,
        risk_level=risk_level,
        looked_after=looked_after,
        age=age,
    )


def _referral(obj: Mapping[str, Any], time_of: _TimeReader) -> Referral:
    where = "referral"
    return Referral(
        event_id=_str(obj, "event_id", where),
        occurred_at=_event_time(obj, where, time_of),
        referral_id=_str(obj, "referral_id", where),
        child_id=_str(obj, "child_id", where),
        agency=_enum(obj, "agency", where, _AGENCIES),
        incident_id=_opt_str(obj, "incident_id", where),
        episode_id=_opt_str(obj, "episode_id", where),
    )


_EventReader = Callable[[Mapping[str, Any], _TimeReader], Event]
_EVENT_READERS: Final[dict[str, _EventReader]] = {
    "incident": _incident,
    "missing_report": _missing_report,
    "referral": _referral,
}
_KINDS_EXPECTED: Final = "one of " + ", ".join(EVENT_KINDS)


def event_from_dict(obj: Mapping[str, Any]) -> Event:
    """The event of a parsed JSON object with a ``type`` field; raises :class:`InvalidEvent`.

    Unknown extra fields are ignored (forward compatibility); nullable fields may be absent.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event: expected a JSON object, received {_show(obj)}")
    kind = obj.get("type", _MISSING)
    read = _EVENT_READERS.get(kind) if type(kind) is str else None
    if read is None:
        raise _bad("event", "type", _KINDS_EXPECTED, kind)
    return read(obj, _json_time)


def decode_json_line(line: bytes | str) -> Event:
    """The event of one JSON Lines line (the terminator is optional); raises
    :class:`InvalidEvent` for an oversized line, bad JSON, a non-object or an invalid event."""
    size = len(line)
    # A str of n characters is n to 4n bytes in UTF-8: only a long line needs measuring.
    if size > (MAX_RECORD_BYTES // 4 if isinstance(line, str) else MAX_RECORD_BYTES):
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
        size = len(raw.rstrip(b"\r\n"))  # the terminator is not part of the record
        if size > MAX_RECORD_BYTES:
            raise _oversize("JSON line", size, MAX_RECORD_BYTES)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"line is not valid JSON: {exc}") from exc
    if type(obj) is not dict:
        raise InvalidEvent(f"line is not a JSON object: received {_show(obj)}")
    kind = obj.get("type")
    fast = _FAST_READERS.get(kind) if type(kind) is str else None
    if fast is not None:
        event = fast(obj)
        if event is not None:
            return event
    return event_from_dict(obj)


# --------------------------------------------------------------------------------------------
# The fast path of JSON events
#
# Replays decode millions of lines, nearly all well formed and with times in one shape. The
# readers below accept exactly such an object, with the same checks as the readers above
# written out inline, and return the same event; on anything else they return None and the
# readers above decide (and word the error). Measured over a generated world: 5.8 us -> 2.9 us
# a line, of which orjson itself takes 1.4 us.

_FastTime = Callable[[object], "Millis | None"]
"""Reads an ``occurred_at`` in the usual shape, or gives None (the full readers decide)."""

_MINUTE_MILLIS: Final = {f"{n:02d}": n * 60_000 for n in range(60)}
"""``00`` to ``59`` (ASCII digits only; ``str.isdigit`` would also take other scripts)."""
_SECOND_MILLIS: Final = {f"{n:02d}": n * 1_000 for n in range(60)}
_HOURS: Final = {f"{n:02d}": n * 3_600_000 for n in range(24)}
_HOUR_MILLIS: dict[str, Millis | None] = {}
"""``2024-05-01T14:`` -> the hour's UTC epoch milliseconds, or None for a prefix to leave to
:func:`parse_rfc3339`. Emptied when full, so memory stays flat."""
_CACHE_HOURS: Final = 20_000
"""About two years of hours (a few MB)."""
_LAST_FULL_DAY: Final = MAX_EVENT_MILLIS - 86_399_999
"""The start of the last day wholly inside the accepted range of event times (the fast path
reads only events' ``occurred_at``)."""


_DAY_MILLIS: dict[str, Millis | None] = {}
"""``2024-05-01T`` -> the day's UTC epoch milliseconds, or None for a date to leave to
:func:`parse_rfc3339`. Emptied when full, so memory stays flat."""
_CACHE_DAYS: Final = 40_000


def _day_millis(date: str) -> Millis | None:
    """The UTC milliseconds of the day ``YYYY-MM-DDT``, validated by the full parser."""
    millis: Millis | None = None
    if date.isascii() and date[4] == "-" and date[7] == "-" and date[10] == "T":
        try:
            millis = parse_rfc3339(date + "00:00:00Z")
        except (ValueError, OverflowError):
            millis = None
        if millis is not None and not MIN_MILLIS <= millis <= _LAST_FULL_DAY:
            millis = None
    if len(_DAY_MILLIS) >= _CACHE_DAYS:
        _DAY_MILLIS.clear()
    _DAY_MILLIS[date] = millis
    return millis


def _hour_millis(prefix: str) -> Millis | None:
    """The UTC milliseconds of the hour ``YYYY-MM-DDTHH:`` (from the day's, cached)."""
    date = prefix[:11]
    day = _DAY_MILLIS.get(date, -1)
    if day == -1:  # not cached (no day starts at -1)
        day = _day_millis(date)
    hour = _HOURS.get(prefix[11:13])
    millis = None if day is None or hour is None or prefix[13] != ":" else day + hour
    if len(_HOUR_MILLIS) >= _CACHE_HOURS:
        _HOUR_MILLIS.clear()
    _HOUR_MILLIS[prefix] = millis
    return millis


def _fast_time(text: object) -> Millis | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` as milliseconds, or None for any other text."""
    # The date and hour come from a cache per hour (which a day's cache fills), the minutes
    # and seconds from tables: three look-ups where there were five. Measured: 0.60 us ->
    # 0.42 us a time.
    if type(text) is not str or len(text) != 20 or text[19] != "Z" or text[16] != ":":
        return None
    prefix = text[:14]
    hour = _HOUR_MILLIS.get(prefix, -1)
    if hour == -1:  # not cached (no hour starts at -1: that is not a whole hour)
        hour = _hour_millis(prefix)
    minute = _MINUTE_MILLIS.get(text[14:16])
    second = _SECOND_MILLIS.get(text[17:19])
    if hour is None or minute is None or second is None:
        return None
    return hour + minute + second


def _fast_incident(obj: dict[str, Any], read_time: _FastTime = _fast_time) -> Incident | None:
    event_id = obj.get("event_id")
    incident_id = obj.get("incident_id")
    if not (_is_id(event_id) and _is_id(incident_id)):
        return None
    occurred_at = read_time(obj.get("occurred_at"))
    kind = obj.get("incident_type")
    incident_type = _INCIDENT_TYPES[0].get(kind) if type(kind) is str else None
    dash = obj.get("dash_risk")
    dash_risk = None if dash is None else _DASH_RISKS[0].get(dash) if type(dash) is str else None
    items = obj.get("children")
    if (
        occurred_at is None
        or incident_type is None
        or (dash_risk is None and dash is not None)
        or type(items) is not list
        or not 1 <= len(items) <= MAX_CHILDREN
    ):
        return None
    children: list[HouseholdChild] = []
    for item in items:
        if type(item) is not dict:
            return None
        child_id = item.get("child_id")
        present = item.get("present")
        age = item.get("age")
        if not (
            _is_id(child_id)
            and (present is True or present is False)
            and (age is None or (type(age) is int and 0 <= age <= MAX_AGE))
        ):
            return None
        children.append(new_household_child(child_id, present, age))
    if len(children) > 1 and len({c.child_id for c in children}) != len(children):
        return None
    return new_incident(
        event_id, occurred_at, incident_id, incident_type, dash_risk, tuple(children)
    )


def _fast_missing_report(
    obj: dict[str, Any], read_time: _FastTime = _fast_time
) -> MissingReport | None:
    event_id = obj.get("event_id")
    episode_id = obj.get("episode_id")
    child_id = obj.get("child_id")
    if not (_is_id(event_id) and _is_id(episode_id) and _is_id(child_id)):
        return None
    occurred_at = read_time(obj.get("occurred_at"))
    raw_status = obj.get("status")
    status = _STATUSES[0].get(raw_status) if type(raw_status) is str else None
    raw_risk = obj.get("risk_level")
    if status in _GRADED:
        risk_level = _RISK_LEVELS[0].get(raw_risk) if type(raw_risk) is str else None
        if risk_level is None:
            return None
    elif raw_risk is None:
        risk_level = None
    else:
        return None
    looked_after = obj.get("looked_after")
    age = obj.get("age")
    if (
        occurred_at is None
        or status is None
        or (looked_after is not True and looked_after is not False)
        or not (age is None or (type(age) is int and 0 <= age <= MAX_AGE))
    ):
        return None
    return new_missing_report(
        event_id, occurred_at, episode_id, child_id, status, risk_level, looked_after, age
    )


def _fast_referral(obj: dict[str, Any], read_time: _FastTime = _fast_time) -> Referral | None:
    event_id = obj.get("event_id")
    referral_id = obj.get("referral_id")
    child_id = obj.get("child_id")
    incident_id = obj.get("incident_id")
    episode_id = obj.get("episode_id")
    if not (
        _is_id(event_id)
        and _is_id(referral_id)
        and _is_id(child_id)
        and (incident_id is None or _is_id(incident_id))
        and (episode_id is None or _is_id(episode_id))
    ):
        return None
    occurred_at = read_time(obj.get("occurred_at"))
    raw_agency = obj.get("agency")
    agency = _AGENCIES[0].get(raw_agency) if type(raw_agency) is str else None
    if occurred_at is None or agency is None:
        return None
    return new_referral(
        event_id, occurred_at, referral_id, child_id, agency, incident_id, episode_id
    )


_FAST_READERS: Final[dict[str, Callable[[dict[str, Any]], Event | None]]] = {
    "incident": _fast_incident,
    "missing_report": _fast_missing_report,
    "referral": _fast_referral,
}


def _fast_avro_time(value: object) -> Millis | None:
    """An Avro ``occurred_at``: epoch milliseconds in the range of event times, else None."""
    if type(value) is int and MIN_MILLIS <= value <= MAX_EVENT_MILLIS:
        return value
    return None


_FAST_AVRO_READERS: Final[dict[str, Callable[[dict[str, Any]], Event | None]]] = {
    "incident": functools.partial(_fast_incident, read_time=_fast_avro_time),
    "missing_report": functools.partial(_fast_missing_report, read_time=_fast_avro_time),
    "referral": functools.partial(_fast_referral, read_time=_fast_avro_time),
}
"""The same shortcut for a record decoded from Avro (the ingest agent's input): the schema
already fixed each field's type, the checks of values (non-blank ids, ages, the household,
the status's risk level) are the JSON path's. Measured: 16.5 us -> 10 us an incident."""


# --------------------------------------------------------------------------------------------
# Events to dicts and JSON


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event: with ``type``, times as RFC 3339 UTC, enums as strings.

    The inverse of :func:`event_from_dict`.
    """
    if isinstance(event, Incident):
        return {
            "type": "incident",
            "event_id": event.event_id,
            "occurred_at": to_rfc3339(event.occurred_at),
            "incident_id": event.incident_id,
            "incident_type": event.incident_type.value,
            "dash_risk": None if event.dash_risk is None else event.dash_risk.value,
            "children": [
                {"child_id": c.child_id, "present": c.present, "age": c.age} for c in event.children
            ],
        }
    if isinstance(event, MissingReport):
        return {
            "type": "missing_report",
            "event_id": event.event_id,
            "occurred_at": to_rfc3339(event.occurred_at),
            "episode_id": event.episode_id,
            "child_id": event.child_id,
            "status": event.status.value,
            "risk_level": None if event.risk_level is None else event.risk_level.value,
            "looked_after": event.looked_after,
            "age": event.age,
        }
    if isinstance(event, Referral):
        return {
            "type": "referral",
            "event_id": event.event_id,
            "occurred_at": to_rfc3339(event.occurred_at),
            "referral_id": event.referral_id,
            "child_id": event.child_id,
            "agency": event.agency.value,
            "incident_id": event.incident_id,
            "episode_id": event.episode_id,
        }
    raise TypeError(f"not an event: {type(event).__name__}")


def encode_json_line(event: Event) -> bytes:
    """One JSON Lines line, terminated by ``\\n``: the inverse of :func:`decode_json_line`."""
    return orjson.dumps(event_to_dict(event), option=orjson.OPT_APPEND_NEWLINE)


# --------------------------------------------------------------------------------------------
# Alerts, actions and dead letters as dicts (the backtest's output, the hub's API)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """Every field of SPEC section 5: times as RFC 3339 UTC, enums as strings, ``resolved_at``
    null while unresolved, ``evidence`` as a list."""
    text = _ENUM_TEXT  # an enum's text by look-up: ``.value`` costs 0.24 us, this 0.05 us
    resolved_at = alert.resolved_at
    raised_at = to_rfc3339(alert.raised_at)
    return {
        "alert_id": alert.alert_id,
        "rule_id": text[alert.rule_id],
        "child_id": alert.child_id,
        "trigger_id": alert.trigger_id,
        "severity": text[alert.severity],
        "raised_at": raised_at,
        "due_at": raised_at if alert.due_at == alert.raised_at else to_rfc3339(alert.due_at),
        "evidence": list(alert.evidence),
        "summary": alert.summary,
        "recommended_action": alert.recommended_action,
        "status": text[alert.status],
        "resolved_at": None if resolved_at is None else to_rfc3339(resolved_at),
        "mode": text[alert.mode],
        "detected_at": to_rfc3339(alert.detected_at),
    }


def alert_json_line(alert: Alert) -> bytes:
    """``orjson.dumps(alert_to_dict(alert))`` and a newline, the same bytes, built faster for
    the backtest's output: orjson writes an enum as its value and a tuple as a list itself, and
    ``detected_at`` is the same instant for many alerts in a row. Measured: 2.2 us -> 1.6 us."""
    resolved_at = alert.resolved_at
    raised_at = to_rfc3339(alert.raised_at)
    detected_at, detected_text = _LAST_DETECTED[0]
    if detected_at != alert.detected_at:
        detected_at = alert.detected_at
        detected_text = to_rfc3339(detected_at)
        _LAST_DETECTED[0] = (detected_at, detected_text)  # one store: safe across threads
    return _dumps(
        {
            "alert_id": alert.alert_id,
            "rule_id": alert.rule_id,
            "child_id": alert.child_id,
            "trigger_id": alert.trigger_id,
            "severity": alert.severity,
            "raised_at": raised_at,
            "due_at": raised_at if alert.due_at == alert.raised_at else to_rfc3339(alert.due_at),
            "evidence": alert.evidence,
            "summary": alert.summary,
            "recommended_action": alert.recommended_action,
            "status": alert.status,
            "resolved_at": None if resolved_at is None else to_rfc3339(resolved_at),
            "mode": alert.mode,
            "detected_at": detected_text,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


_dumps: Final = orjson.dumps
_LAST_DETECTED: Final[list[tuple[Millis, str]]] = [(-1, "")]
"""The last ``detected_at`` written, with its text."""


_ENUM_TEXT: Final[dict[object, str]] = {
    member: member.value for enum in (RuleId, Severity, AlertStatus, Mode) for member in enum
}


def _evidence(value: object, where: str) -> tuple[str, ...]:
    if type(value) is not list:
        raise _bad(where, "evidence", "a list of event_ids", value)
    for index, item in enumerate(value):
        if not _is_id(item):
            raise _bad(where, f"evidence[{index}]", "a non-empty string", item)
    return tuple(value)


def _alert(obj: Mapping[str, Any], time_of: _TimeReader) -> Alert:
    where = "alert"
    if not isinstance(obj, dict):
        raise InvalidEvent(f"{where}: expected a JSON object, received {_show(obj)}")
    return Alert(
        alert_id=_str(obj, "alert_id", where),
        rule_id=_enum(obj, "rule_id", where, _RULES),
        child_id=_str(obj, "child_id", where),
        trigger_id=_str(obj, "trigger_id", where),
        severity=_enum(obj, "severity", where, _SEVERITIES),
        raised_at=time_of(obj, "raised_at", where),
        due_at=time_of(obj, "due_at", where),
        evidence=_evidence(obj.get("evidence", _MISSING), where),
        summary=_str(obj, "summary", where),
        recommended_action=_str(obj, "recommended_action", where),
        status=_enum(obj, "status", where, _ALERT_STATUSES),
        resolved_at=_opt_time(obj, "resolved_at", where, time_of),
        mode=_enum(obj, "mode", where, _MODES),
        detected_at=time_of(obj, "detected_at", where),
    )


def alert_from_dict(obj: Mapping[str, Any]) -> Alert:
    """The inverse of :func:`alert_to_dict`; raises :class:`InvalidEvent`."""
    return _alert(obj, _json_time)


def action_to_dict(action: AlertAction) -> dict[str, Any]:
    """An alert action as JSON: ``at`` as RFC 3339 UTC, ``kind`` as a string."""
    return {
        "action_id": action.action_id,
        "alert_id": action.alert_id,
        "kind": action.kind.value,
        "user": action.user,
        "at": to_rfc3339(action.at),
        "assignee": action.assignee,
        "note": action.note,
        "outcome": action.outcome,
    }


def _action(obj: Mapping[str, Any], time_of: _TimeReader) -> AlertAction:
    where = "alert_action"
    if not isinstance(obj, dict):
        raise InvalidEvent(f"{where}: expected a JSON object, received {_show(obj)}")
    kind = _enum(obj, "kind", where, _ACTION_KINDS)
    action = AlertAction(
        action_id=_str(obj, "action_id", where),
        alert_id=_str(obj, "alert_id", where),
        kind=kind,
        user=_str(obj, "user", where),
        at=time_of(obj, "at", where),
        assignee=_opt_str(obj, "assignee", where),
        note=_text(obj, "note", where, MAX_NOTE_CHARS),
        outcome=_text(obj, "outcome", where, MAX_NOTE_CHARS),
    )
    # What each kind needs to mean anything (the AlertAction docstrings).
    if kind is ActionKind.ASSIGN and action.assignee is None:
        raise _bad(where, "assignee", "who the alert is assigned to, for kind ASSIGN", None)
    if kind is ActionKind.NOTE and not (action.note and not action.note.isspace()):
        raise _bad(where, "note", "the text of the note, for kind NOTE", obj.get("note"))
    if kind is ActionKind.CLOSE and not (action.outcome and not action.outcome.isspace()):
        raise _bad(where, "outcome", "the outcome, for kind CLOSE", obj.get("outcome"))
    return action


def action_from_dict(obj: Mapping[str, Any]) -> AlertAction:
    """The inverse of :func:`action_to_dict`; raises :class:`InvalidEvent`.

    ASSIGN needs ``assignee``, NOTE a ``note``, CLOSE an ``outcome``; nullable fields may be
    absent; unknown extra fields are ignored.
    """
    return _action(obj, _json_time)


def dead_letter_to_dict(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON (the backtest's ``--dead-letters`` file): the payload exactly, in
    ``payload_base64``, and for a person, as text in ``payload_text`` (bad UTF-8 replaced)."""
    return {
        "source_topic": letter.source_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "payload_base64": base64.b64encode(letter.payload).decode("ascii"),
        "payload_text": letter.payload.decode("utf-8", "replace"),
        "received_at": to_rfc3339(letter.received_at),
    }


def _dead_letter(obj: Mapping[str, Any], time_of: _TimeReader, payload: object) -> DeadLetter:
    where = "dead_letter"
    if not isinstance(payload, bytes):
        raise _bad(where, "payload", "bytes", payload)
    return DeadLetter(
        source_topic=_str(obj, "source_topic", where),
        partition=_opt_int(obj, "partition", where),
        offset=_opt_int(obj, "offset", where),
        reason=_str(obj, "reason", where),
        payload=payload,
        received_at=time_of(obj, "received_at", where),
    )


def dead_letter_from_dict(obj: Mapping[str, Any]) -> DeadLetter:
    """The inverse of :func:`dead_letter_to_dict` (``payload_text`` is not read)."""
    where = "dead_letter"
    if not isinstance(obj, dict):
        raise InvalidEvent(f"{where}: expected a JSON object, received {_show(obj)}")
    encoded = obj.get("payload_base64", _MISSING)
    if type(encoded) is not str:
        raise _bad(where, "payload_base64", "the payload in base64", encoded)
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(where, "payload_base64", "the payload in base64", encoded) from exc
    return _dead_letter(obj, _json_time, payload)


# --------------------------------------------------------------------------------------------
# Avro binary, schemaless: the topic gives the schema


def _avro_event_dict(event: Event) -> dict[str, Any]:
    if isinstance(event, Incident):
        return {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "incident_id": event.incident_id,
            "incident_type": event.incident_type,
            "dash_risk": event.dash_risk,
            "children": [
                {"child_id": c.child_id, "present": c.present, "age": c.age} for c in event.children
            ],
        }
    if isinstance(event, MissingReport):
        return {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "episode_id": event.episode_id,
            "child_id": event.child_id,
            "status": event.status,
            "risk_level": event.risk_level,
            "looked_after": event.looked_after,
            "age": event.age,
        }
    return {
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "referral_id": event.referral_id,
        "child_id": event.child_id,
        "agency": event.agency,
        "incident_id": event.incident_id,
        "episode_id": event.episode_id,
    }


def _avro_alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "rule_id": alert.rule_id,
        "child_id": alert.child_id,
        "trigger_id": alert.trigger_id,
        "severity": alert.severity,
        "raised_at": alert.raised_at,
        "due_at": alert.due_at,
        "evidence": list(alert.evidence),
        "summary": alert.summary,
        "recommended_action": alert.recommended_action,
        "status": alert.status,
        "resolved_at": alert.resolved_at,
        "mode": alert.mode,
        "detected_at": alert.detected_at,
    }


def _avro_action_dict(action: AlertAction) -> dict[str, Any]:
    return {
        "action_id": action.action_id,
        "alert_id": action.alert_id,
        "kind": action.kind,
        "user": action.user,
        "at": action.at,
        "assignee": action.assignee,
        "note": action.note,
        "outcome": action.outcome,
    }


def _avro_dead_letter_dict(letter: DeadLetter) -> dict[str, Any]:
    return {
        "source_topic": letter.source_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "payload": letter.payload,
        "received_at": letter.received_at,
    }


_ENCODERS: Final[dict[type, tuple[str, Callable[[Any], dict[str, Any]]]]] = {
    Incident: ("incident", _avro_event_dict),
    MissingReport: ("missing_report", _avro_event_dict),
    Referral: ("referral", _avro_event_dict),
    Alert: ("alert", _avro_alert_dict),
    AlertAction: ("alert_action", _avro_action_dict),
    DeadLetter: ("dead_letter", _avro_dead_letter_dict),
}


def encode_avro(value: Event | Alert | AlertAction | DeadLetter) -> bytes:
    """Schemaless Avro binary of an event, alert, action or dead letter (the topic says which
    schema). Raises :class:`InvalidEvent` when a field does not fit its schema (an ``int``
    over 32 bits, say) and ``TypeError`` for a value of another type."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        raise TypeError(f"no Avro schema for a {type(value).__name__}")
    name, to_dict = encoder
    out = BytesIO()
    try:
        fastavro.schemaless_writer(out, _WIRE[name], to_dict(value))
    except Exception as exc:  # fastavro raises ValueError, TypeError, struct.error, ...
        raise InvalidEvent(f"{name} cannot be written as Avro: {exc}") from exc
    return out.getvalue()


def _read_avro(data: object, name: str, limit: int) -> dict[str, Any]:
    """Decode one schemaless record, turning every failure into :class:`InvalidEvent`.

    The size is checked first: fastavro trusts lengths and counts in the data, so the only
    bound on its work is the bound on the input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidEvent(f"{name} record: expected Avro bytes, received {_show(data)}")
    size = len(data)
    if size > limit:
        raise _oversize(name, size, limit)
    if size == 0:
        raise InvalidEvent(f"{name} record is empty (0 bytes): expected Avro binary")
    buffer = BytesIO(data)
    try:
        record = fastavro.schemaless_reader(buffer, _WIRE[name], None)
    except Exception as exc:  # EOFError, IndexError, UnicodeDecodeError, ValueError, ...
        detail = f"{type(exc).__name__}: {exc}"[:200]
        raise InvalidEvent(
            f"{name} record is not valid Avro for the {_RAW[name]['name']} schema "
            f"({size:,} bytes; {detail})"
        ) from exc
    left = size - buffer.tell()
    if left:
        plural = "s" if left > 1 else ""
        raise InvalidEvent(
            f"{name} record has {left:,} byte{plural} left over after the {_RAW[name]['name']} "
            f"fields ({size:,} bytes in all): written with another schema, or with a "
            "schema-registry header?"
        )
    if type(record) is not dict:  # pragma: no cover - the schemas are records
        raise InvalidEvent(f"{name} record decoded to {_show(record)}")
    return record


def decode_event_avro(kind: str, data: bytes) -> Event:
    """The event in schemaless Avro ``data`` written with the schema of ``kind`` (``incident``,
    ``missing_report`` or ``referral``, given by the topic).

    Raises :class:`InvalidEvent` for anything but a valid event (garbage, truncated or
    oversized bytes, values that fail validation) and ``ValueError`` for an unknown ``kind``.
    """
    read = _EVENT_READERS.get(kind)
    if read is None:
        raise ValueError(f"unknown event kind {kind!r}; expected {_KINDS_EXPECTED}")
    record = _read_avro(data, kind, MAX_RECORD_BYTES)
    event = _FAST_AVRO_READERS[kind](record)
    return event if event is not None else read(record, _avro_time)


def decode_alert_avro(data: bytes) -> Alert:
    """The alert in schemaless Avro ``data``; raises :class:`InvalidEvent`."""
    return _alert(_read_avro(data, "alert", MAX_RECORD_BYTES), _avro_time)


def decode_action_avro(data: bytes) -> AlertAction:
    """The hub action in schemaless Avro ``data``; raises :class:`InvalidEvent`."""
    return _action(_read_avro(data, "alert_action", MAX_RECORD_BYTES), _avro_time)


def decode_dead_letter_avro(data: bytes) -> DeadLetter:
    """The dead letter in schemaless Avro ``data`` (up to :data:`MAX_DEAD_LETTER_BYTES`);
    raises :class:`InvalidEvent`."""
    record = _read_avro(data, "dead_letter", MAX_DEAD_LETTER_BYTES)
    return _dead_letter(record, _avro_time, record.get("payload", _MISSING))


# --------------------------------------------------------------------------------------------
# Avro object container files

_Source = str | os.PathLike[str] | IO[bytes]


def _writer_kinds(schema: object) -> tuple[dict[str, str], bool] | None:
    """Record name -> event kind for a file written with one event schema or a union of them,
    and whether every one is the current version; None for any other schema."""
    branches: list[Any] = schema if isinstance(schema, list) else [schema]
    kinds: dict[str, str] = {}
    current = True
    for branch in branches:
        if not isinstance(branch, dict) or branch.get("type") != "record":
            return None
        name = str(branch.get("name"))
        kind = _KIND_OF_RECORD.get(name)
        if kind is None:
            return None
        kinds[name] = kind
        try:
            current = current and _canonical(branch) == _CANONICAL[kind]
        except Exception:  # an odd schema fastavro accepted: resolution will tell
            current = False
    return (kinds, current) if kinds else None


def _describe_schema(schema: object) -> str:
    if isinstance(schema, list):
        return "a union of " + ", ".join(_describe_schema(branch) for branch in schema)
    if isinstance(schema, dict):
        return f"{schema.get('type')} {schema.get('name', '')}".strip()
    return repr(schema)


def _open_container(source: IO[bytes], reader_schema: Any) -> Any:
    try:
        return fastavro.reader(source, reader_schema=reader_schema, return_record_name=True)
    except Exception as exc:  # not Avro, a bad header, a schema that cannot be resolved
        raise InvalidEvent(
            "not an Avro container file of incidents, missing reports or referrals: "
            f"{type(exc).__name__}: {exc}"[:300]
        ) from exc


def read_avro_container(source: _Source) -> Iterator[Event | InvalidEvent]:
    """The events of an Avro object container file (a path or a binary file object).

    The file may be written with the Incident, MissingReport or Referral schema, or a union of
    them, in this or an older (compatible) version. Raises :class:`InvalidEvent` when the file
    is not such a file. Yields one item per record: the event, or the :class:`InvalidEvent` of
    a record that fails validation, so the caller can dead-letter it and go on. A corrupt block
    yields one last :class:`InvalidEvent` and ends the iteration: the rest cannot be found.

    A file of an older version is resolved against the current schemas (new fields get their
    defaults), which needs the header read twice: a stream that cannot seek (a pipe) is read
    into memory first.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield from read_avro_container(file)
        return
    if not source.seekable():
        source = BytesIO(source.read())
    start = source.tell()
    reader = _open_container(source, None)
    found = _writer_kinds(reader.writer_schema)
    if found is None:
        raise InvalidEvent(
            f"Avro container file written with {_describe_schema(reader.writer_schema)}; "
            "expected the Incident, MissingReport or Referral schema, or a union of them"
        )
    kinds, current = found
    if not current:
        # Schema resolution costs about three times the plain read, so only old files pay it.
        source.seek(start)
        reader = _open_container(source, _WIRE_EVENT_UNION)
    single = None if isinstance(reader.writer_schema, list) else next(iter(kinds.values()))
    count = 0
    records: Iterator[Any] = iter(reader)
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt or truncated block
            yield CorruptFile(
                f"Avro container file is corrupt after record {count:,}; the rest of the file "
                f"was not read ({type(exc).__name__}: {exc})"[:300]
            )
            return
        count += 1
        if single is None:
            name, record = item
            kind = kinds.get(name, "")
        else:
            kind, record = single, item
        try:
            yield _EVENT_READERS[kind](record, _avro_time)
        except InvalidEvent as invalid:
            yield invalid


def write_avro_container(
    target: _Source, events: Iterable[Event], *, codec: str = "deflate"
) -> int:
    """Write ``events`` to an Avro object container file (a path or a binary file object),
    under the union of the three event schemas so one file holds mixed events. Returns the
    number of events written."""
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as file:
            return write_avro_container(file, events, codec=codec)
    count = 0

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal count
        for event in events:
            count += 1
            yield (_RECORD_OF_KIND[event.type], _avro_event_dict(event))

    fastavro.writer(target, _EVENT_UNION, records(), codec=codec)
    return count
