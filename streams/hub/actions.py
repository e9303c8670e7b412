"""From a practitioner's request body to an :class:`AlertAction`, or a reason it cannot be one.

Pure: the server passes in who, when and the new id; this checks the rest.

>>> a = build_action({"kind": "ASSIGN", "assignee": "bo"}, alert_id="a1", user="al", at=5,
...                  action_id="x", assignees={"bo"})
>>> (a.kind, a.user, a.assignee)
(<ActionKind.ASSIGN: 'ASSIGN'>, 'al', 'bo')
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from streams.domain.alerts import ActionKind, AlertAction
from streams.domain.time import Millis
from streams.errors import SafeguardingError
from streams.hub.state import Outcome

MAX_NOTE = 2_000
"""Characters in a note: a paragraph; case notes belong in the case system."""

_FIELDS: dict[ActionKind, frozenset[str]] = {
    ActionKind.ACKNOWLEDGE: frozenset(),
    ActionKind.ASSIGN: frozenset({"assignee"}),
    ActionKind.NOTE: frozenset({"note"}),
    ActionKind.CLOSE: frozenset({"outcome", "note"}),
}
_SERVER_FIELDS = frozenset({"action_id", "alert_id", "user", "at"})


class InvalidAction(SafeguardingError):
    """A request for an action that cannot be accepted; ``reason`` says why, for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def build_action(
    body: Any,
    *,
    alert_id: str,
    user: str,
    at: Millis,
    action_id: str,
    assignees: Container[str],
) -> AlertAction:
    """The action a request body asks for, by ``user`` at ``at``; raises InvalidAction."""
    if not isinstance(body, dict):
        raise InvalidAction("the body must be a JSON object with a 'kind' field")
    raw_kind = body.get("kind")
    kinds = ", ".join(k.value for k in ActionKind)
    if raw_kind is None:
        raise InvalidAction(f"field 'kind' is required: one of {kinds}")
    try:
        kind = ActionKind(raw_kind)
    except ValueError:
        raise InvalidAction(f"kind {_shown(raw_kind)} is not one of {kinds}") from None
    for name in sorted(set(body) - {"kind"}):
        if name in _SERVER_FIELDS:
            raise InvalidAction(f"field {name!r} is set by the server; leave it out")
        if name not in _FIELDS[kind]:
            raise InvalidAction(f"field {_shown(name)} is not allowed for {kind.value}")

    assignee = note = outcome = None
    if kind is ActionKind.ASSIGN:
        assignee = body.get("assignee")
        if not isinstance(assignee, str) or not assignee.strip():
            raise InvalidAction("ASSIGN needs 'assignee': the name of a hub user")
        if assignee not in assignees:
            raise InvalidAction(f"assignee {_shown(assignee)} is not a hub user")
    if kind in (ActionKind.NOTE, ActionKind.CLOSE):
        note = body.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            raise InvalidAction(f"'note' must be text of at most {MAX_NOTE} characters")
        if note is not None:
            note = note.strip() or None
        if kind is ActionKind.NOTE and note is None:
            raise InvalidAction(f"NOTE needs 'note': text of 1 to {MAX_NOTE} characters")
    if kind is ActionKind.CLOSE:
        raw_outcome = body.get("outcome")
        outcomes = ", ".join(o.value for o in Outcome)
        if raw_outcome is None:
            raise InvalidAction(f"CLOSE needs 'outcome': one of {outcomes}")
        try:
            outcome = Outcome(raw_outcome).value
        except ValueError:
            raise InvalidAction(f"outcome {_shown(raw_outcome)} is not one of {outcomes}") from None
    return AlertAction(
        action_id=action_id,
        alert_id=alert_id,
        kind=kind,
        user=user,
        at=at,
        assignee=assignee,
        note=note,
        outcome=outcome,
    )
