"""One exception tree for the whole product, wrapped at the boundary.

Each error says what went wrong, where, and what was received, so that a dead letter or a
command-line message explains itself to the person who has to act on it.
"""

from __future__ import annotations


class SafeguardingError(Exception):
    """Base of every error this package raises on purpose."""

    #: True when trying the same thing again may succeed (a broker not yet up, say).
    retriable: bool = False


class InvalidEvent(SafeguardingError):
    """An input event that cannot be used: bad JSON or Avro, a missing or mistyped field,
    an unknown enum value, an empty household, an oversized record, a time too far ahead.

    ``reason`` is a sentence for a person: which field, what was received, what was expected.
    """

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class CorruptFile(InvalidEvent):
    """A historic file damaged at a record (a corrupt Avro block): nothing after it can be read."""


class ConfigurationError(SafeguardingError):
    """A setting or command-line option that cannot work."""


class BrokerUnavailable(SafeguardingError):
    """A Kafka-protocol broker did not answer in time."""

    retriable = True
