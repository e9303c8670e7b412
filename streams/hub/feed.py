"""The door into the hub from Kafka: apply a record to the state, push the change to the pages.

The consumer of the ``alerts``, ``alert-actions`` and input topics calls these methods, on the
event loop that serves the hub (they do not block and do not await; from another thread, use
``loop.call_soon_threadsafe``).

>>> from streams.hub.state import HubState
>>> feed = HubFeed(HubState())
>>> feed.apply_event  # doctest: +ELLIPSIS
<bound method HubFeed.apply_event of <...HubFeed object at ...>>
"""

from __future__ import annotations

import structlog

from streams.domain.alerts import Alert, AlertAction
from streams.domain.events import Event
from streams.hub.sse import Broadcaster
from streams.hub.state import AlertChanged, HubState, TimelineChanged

log = structlog.get_logger(__name__)


class HubFeed:
    """Applies alerts, hub actions and input events to a :class:`HubState` and notifies SSE."""

    def __init__(self, state: HubState, broadcaster: Broadcaster | None = None) -> None:
        self.state = state
        self.broadcaster = broadcaster or Broadcaster()

    def apply_alert(self, alert: Alert) -> AlertChanged | None:
        """One version of an alert, from the ``alerts`` topic."""
        change = self.state.apply_alert(alert)
        if change is not None:
            self.broadcaster.publish_change(change)
            # Never the child_id: alert_id is derived by a one-way hash and reveals nothing.
            log.debug(
                "hub_alert_applied",
                alert_id=alert.alert_id,
                rule_id=str(alert.rule_id),
                status=str(alert.status),
                new=change.previous is None,
            )
        return change

    def apply_action(self, action: AlertAction) -> AlertChanged | None:
        """A hub action, from the ``alert-actions`` topic (the hub's own, coming back)."""
        change = self.state.apply_action(action)
        if change is not None:
            self.broadcaster.publish_change(change)
            log.debug(
                "hub_action_applied",
                alert_id=action.alert_id,
                action_id=action.action_id,
                kind=str(action.kind),
            )
        return change

    def apply_event(self, event: Event) -> TimelineChanged | None:
        """An input event, for the children's timelines."""
        change = self.state.apply_event(event)
        if change is not None:
            self.broadcaster.publish_change(change)
        return change
