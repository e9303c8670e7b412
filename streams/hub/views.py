"""JSON forms of what the hub shows: events, alerts with the rule in plain words, hub actions.

The field names and time format are the codec's (:mod:`streams.codec`, the single source of
truth for the JSON form of events, alerts and actions); the hub only adds its own fields.

>>> from streams.domain.events import Agency, Referral
>>> event_to_dict(Referral("e1", 0, "r1", "C1", Agency.SCHOOL, None, None))["type"]
'referral'
"""

from __future__ import annotations

from typing import Any

from streams import codec
from streams.domain.alerts import RULE_NAMES, RULE_TITLES, Alert, AlertAction
from streams.domain.events import Event


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an input event, as in the JSON Lines of SPEC section 3."""
    return codec.event_to_dict(event)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """The JSON form of one alert version, plus ``rule_name`` and ``rule_title`` (plain words)."""
    return codec.alert_to_dict(alert) | {
        "rule_name": RULE_NAMES.get(alert.rule_id, str(alert.rule_id)),
        "rule_title": RULE_TITLES.get(alert.rule_id, str(alert.rule_id)),
    }


def action_to_dict(action: AlertAction) -> dict[str, Any]:
    """The JSON form of a hub action (the fields of ``schemas/AlertAction.avsc``)."""
    return codec.action_to_dict(action)
