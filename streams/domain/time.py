"""Event time as integer milliseconds since the Unix epoch, UTC (Avro's ``timestamp-millis``).

Integers compare and add an order of magnitude faster than ``datetime`` and cannot be naive.
Conversions to and from RFC 3339 happen only at the edges (codec, summaries, reports).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

Millis = int
"""Milliseconds since 1970-01-01T00:00:00Z."""

SECOND: Millis = 1_000
MINUTE: Millis = 60 * SECOND
HOUR: Millis = 60 * MINUTE
DAY: Millis = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def from_datetime(value: datetime) -> Millis:
    """Exact milliseconds of an aware datetime (microseconds are truncated toward the past).

    >>> from_datetime(datetime(2024, 1, 1, tzinfo=UTC))
    1704067200000
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no UTC offset")
    return (value - _EPOCH) // _ONE_MS


def to_datetime(ms: Millis) -> datetime:
    """The aware UTC datetime of ``ms``."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_rfc3339(ms: Millis) -> str:
    """``2024-01-01T00:00:00Z``, or with ``.123`` when there are milliseconds.

    >>> to_rfc3339(1704067200000)
    '2024-01-01T00:00:00Z'
    >>> to_rfc3339(1704067200000 + 13 * HOUR + 59 * MINUTE + 7 * SECOND + 5)
    '2024-01-01T13:59:07.005Z'
    """
    # The date is cached per UTC day; the hour and minute come from a table of the 1,440
    # minutes of a day, the seconds from another. Measured: 3.3 us -> 0.4 us a call (two to
    # four calls per alert written).
    day, rest = divmod(ms, DAY)
    date = _UTC_DATE.get(day)
    if date is None:
        date = _utc_date(day)
    seconds, milli = divmod(rest, SECOND)
    minute, second = divmod(seconds, 60)
    if milli:
        return f"{date}{_HOUR_MINUTE[minute]}{_TWO_DIGITS[second]}.{milli:03d}Z"
    return f"{date}{_HOUR_MINUTE[minute]}{_TWO_DIGITS[second]}Z"


_HOUR_MINUTE = tuple(f"{n // 60:02d}:{n % 60:02d}:" for n in range(1440))
"""``HH:MM:`` of each minute of the day."""
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_UTC_DATE: dict[int, str] = {}
_CACHE_DAYS = 40_000
"""About a century of days; the cache is emptied when it is full (memory stays flat)."""


def _utc_date(day: int) -> str:
    """``2024-01-01T`` for ``day`` (days since the epoch), cached."""
    if len(_UTC_DATE) >= _CACHE_DAYS:
        _UTC_DATE.clear()
    date = _UTC_DATE[day] = to_datetime(day * DAY).strftime("%Y-%m-%dT")
    return date


def parse_rfc3339(text: str) -> Millis:
    """Parse an RFC 3339 timestamp that carries an offset (``Z`` or ``+01:00``).

    Raises ``ValueError`` for a malformed text or a timestamp without an offset.
    """
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return from_datetime(dt)
