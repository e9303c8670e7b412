"""The topics of a run, with partitions and retention, created before the worker starts."""

from __future__ import annotations

from streams.broker import TopicSpec
from streams.settings import Settings

_FOREVER = {"retention.ms": "-1"}
"""History and alerts are records, not a cache. Time-based retention also counts from record
timestamps, which a replay sets to event times years back: it would delete them at once."""
_FUTURE = {"message.timestamp.after.max.ms": str(25 * 3600 * 1000)}
"""Apache Kafka 4 rejects timestamps more than 1 hour ahead by default; live events may be up
to a day ahead of the wall clock (SPEC section 3)."""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    n = settings.partitions
    inputs = [TopicSpec(name, n, {**_FOREVER, **_FUTURE}) for name in t.inputs.values()]
    return [
        *inputs,
        TopicSpec(t.by_child, n, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
        # Keyed by child (SPEC): every version of every alert is kept, so not compacted.
        TopicSpec(t.alerts, n, _FOREVER),
        TopicSpec(t.alert_actions, n, _FOREVER),
        TopicSpec(t.dead_letters, n, _FOREVER),
        TopicSpec(t.control, 1, {"retention.ms": str(24 * 3600 * 1000)}),
    ]
