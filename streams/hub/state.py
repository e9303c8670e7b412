"""The hub's state: a pure fold of alerts, hub actions and input events.

No I/O, no clock, no logging: :class:`HubState` is fed typed values (by :class:`~streams.hub.feed.
HubFeed`, which the Kafka consumer calls) and answers queries. Every mutation returns what changed,
so the shell can push it to the page, or ``None`` when nothing did (a duplicate, a replayed
version, an action waiting for its alert).

Because the hub applies its own actions only when they come back from the ``alert-actions``
topic, replaying the ``alerts`` and ``alert-actions`` topics into a fresh state rebuilds exactly
the state a restart lost.

>>> from streams.domain.alerts import AlertStatus, Mode, RuleId, Severity, Alert
>>> state = HubState()
>>> a = Alert("a1", RuleId.SG03, "C1", "E1", Severity.HIGH, 10, 10, ("e1",), "s", "r",
...           AlertStatus.RAISED, None, Mode.LIVE, 11)
>>> state.apply_alert(a) is not None, state.apply_alert(a) is None
(True, True)
>>> [v.alert.alert_id for v in state.alerts()]
['a1']
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from streams.domain.alerts import (
    RULE_TITLES,
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
)
from streams.domain.events import Event, child_ids
from streams.domain.time import DAY, Millis, to_rfc3339
from streams.hub.views import action_to_dict, alert_to_dict, event_to_dict

# Bounds on memory. A hub serves one force: tens of thousands of alerts a year at most.
MAX_ALERTS = 100_000
"""Alerts kept; past this the oldest finished ones (resolved, withdrawn or closed) go first."""
MAX_CHILDREN = 10_000
"""Children whose event timelines are kept (least recently updated are dropped first)."""
MAX_EVENTS_PER_CHILD = 500
"""Events kept per child (the oldest by event time are dropped first)."""
MAX_BOARD_FINISHED = 2_000
"""Finished alerts a page loads at first (all open ones always); the API lists every one."""
MAX_PENDING_ACTIONS = 10_000
"""Actions kept for alerts not seen yet (the two topics are consumed independently)."""


class Workflow(StrEnum):
    """Where an alert is in the hub's hands, derived from its actions."""

    NEW = "NEW"
    """Nobody has acted on it yet."""
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ASSIGNED = "ASSIGNED"
    CLOSED = "CLOSED"


class Outcome(StrEnum):
    """How a practitioner closed an alert (the closed set the hub accepts)."""

    REFERRED = "REFERRED"
    """The missed referral or notification has now been made."""
    SAFEGUARDING_ACTION_TAKEN = "SAFEGUARDING_ACTION_TAKEN"
    NO_FURTHER_ACTION = "NO_FURTHER_ACTION"
    DUPLICATE = "DUPLICATE"
    FALSE_POSITIVE = "FALSE_POSITIVE"


_E = TypeVar("_E", bound=StrEnum)

SEVERITY_RANK: dict[Severity, int] = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}
"""Sort order of severities: the most urgent first."""


@dataclass(frozen=True, slots=True)
class AlertView:
    """The latest version of one alert with every hub action on it, oldest first."""

    alert: Alert
    actions: tuple[AlertAction, ...] = ()
    version: int = 0
    """The state version at which this view last changed (the SSE event id)."""

    @property
    def acknowledged(self) -> AlertAction | None:
        """The first ACKNOWLEDGE, if any."""
        return next((a for a in self.actions if a.kind is ActionKind.ACKNOWLEDGE), None)

    @property
    def assignee(self) -> str | None:
        """Who the latest ASSIGN named."""
        last = self._last(ActionKind.ASSIGN)
        return None if last is None else last.assignee

    @property
    def closure(self) -> AlertAction | None:
        """The latest CLOSE, if any."""
        return self._last(ActionKind.CLOSE)

    @property
    def workflow(self) -> Workflow:
        kinds = {a.kind for a in self.actions}
        if ActionKind.CLOSE in kinds:
            return Workflow.CLOSED
        if ActionKind.ASSIGN in kinds:
            return Workflow.ASSIGNED
        if ActionKind.ACKNOWLEDGE in kinds:
            return Workflow.ACKNOWLEDGED
        return Workflow.NEW

    @property
    def is_open(self) -> bool:
        """Still RAISED and not closed by the hub."""
        return self.alert.status is AlertStatus.RAISED and self.workflow is not Workflow.CLOSED

    def _last(self, kind: ActionKind) -> AlertAction | None:
        return next((a for a in reversed(self.actions) if a.kind is kind), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API and the page use (``AlertView`` in docs/openapi.yaml)."""
        ack = self.acknowledged
        closure = self.closure
        return alert_to_dict(self.alert) | {
            "workflow": str(self.workflow),
            "acknowledged": None if ack is None else {"user": ack.user, "at": to_rfc3339(ack.at)},
            "assignee": self.assignee,
            "closed": None
            if closure is None
            else {
                "user": closure.user,
                "at": to_rfc3339(closure.at),
                "outcome": closure.outcome,
                "note": closure.note,
            },
            "actions": [action_to_dict(a) for a in self.actions],
            "version": self.version,
        }


def sort_key(view: AlertView) -> tuple[int, Millis, str]:
    """Severity first, then age (the longest-missed first), then id for a stable order."""
    return (SEVERITY_RANK.get(view.alert.severity, 99), view.alert.raised_at, view.alert.alert_id)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which alerts to list; an empty set means "any"."""

    severities: frozenset[Severity] = frozenset()
    rules: frozenset[RuleId] = frozenset()
    statuses: frozenset[AlertStatus] = frozenset()
    workflows: frozenset[Workflow] = frozenset()

    def matches(self, view: AlertView) -> bool:
        a = view.alert
        return (
            (not self.severities or a.severity in self.severities)
            and (not self.rules or a.rule_id in self.rules)
            and (not self.statuses or a.status in self.statuses)
            and (not self.workflows or view.workflow in self.workflows)
        )

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]]) -> Filters:
        """Filters from query parameters ``severity``, ``rule``, ``status``, ``workflow``.

        Each may repeat or hold a comma-separated list. Raises ``ValueError`` naming the
        parameter and the value received when a value is not one of the closed set.

        >>> Filters.parse({"severity": ["HIGH,MEDIUM"]}).severities == {"HIGH", "MEDIUM"}
        True
        """
        return cls(
            severities=_parse_set(params, "severity", Severity),
            rules=_parse_set(params, "rule", RuleId),
            statuses=_parse_set(params, "status", AlertStatus),
            workflows=_parse_set(params, "workflow", Workflow),
        )


def _parse_set(params: Mapping[str, Sequence[str]], name: str, enum: type[_E]) -> frozenset[_E]:
    out: set[_E] = set()
    for raw in params.get(name, ()):
        for part in raw.split(","):
            text = part.strip().upper()
            if not text:
                continue
            try:
                out.add(enum(text))
            except ValueError:
                allowed = ", ".join(m.value for m in enum)
                raise ValueError(
                    f"query parameter {name!r}: {part.strip()[:40]!r} is not one of {allowed}"
                ) from None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert appeared or changed (a new version, or a hub action on it)."""

    view: AlertView
    previous: AlertView | None


@dataclass(frozen=True, slots=True)
class TimelineChanged:
    """An input event was added to these children's timelines."""

    child_ids: tuple[str, ...]
    version: int


Change = AlertChanged | TimelineChanged


class TimelineKind(StrEnum):
    EVENT = "event"
    ALERT_RAISED = "alert_raised"
    ALERT_RESOLVED = "alert_resolved"
    ALERT_WITHDRAWN = "alert_withdrawn"
    ACTION = "action"


_KIND_ORDER = {k: i for i, k in enumerate(TimelineKind)}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a child's story: an event, an alert's raising or ending, a hub action."""

    at: Millis
    kind: TimelineKind
    ref: str
    """The event_id, alert_id or action_id: the tie-break at equal times."""
    data: Mapping[str, Any]

    def sort_key(self) -> tuple[Millis, int, str]:
        return (self.at, _KIND_ORDER[self.kind], self.ref)

    def to_dict(self) -> dict[str, Any]:
        return {"at": to_rfc3339(self.at), "kind": str(self.kind), "ref": self.ref} | dict(
            self.data
        )


@dataclass(frozen=True, slots=True)
class Timeline:
    child_id: str
    entries: tuple[TimelineEntry, ...]
    complete: bool
    """False when some of the child's events were dropped to bound memory, or never seen."""


@dataclass(slots=True)
class _ChildEvents:
    """One child's events, sorted by (occurred_at, event_id)."""

    keys: list[tuple[Millis, str]] = field(default_factory=list)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    truncated: bool = False


class HubState:
    """Alerts, hub actions and each child's events, folded into what the hub shows.

    Construct with the memory bounds (defaults above); pass ``show_replay=True`` only for a hub
    that looks at a replay's topic prefix (SPEC: replays never reach the live hub).
    """

    def __init__(
        self,
        *,
        max_alerts: int = MAX_ALERTS,
        max_children: int = MAX_CHILDREN,
        max_events_per_child: int = MAX_EVENTS_PER_CHILD,
        max_pending_actions: int = MAX_PENDING_ACTIONS,
        show_replay: bool = False,
    ) -> None:
        if min(max_alerts, max_children, max_events_per_child, max_pending_actions) < 1:
            raise ValueError("HubState bounds must be at least 1")
        self._max_alerts = max_alerts
        self._max_children = max_children
        self._max_events = max_events_per_child
        self._max_pending = max_pending_actions
        self._show_replay = show_replay
        self._version = 0
        self._views: dict[str, AlertView] = {}
        self._action_ids: dict[str, set[str]] = {}
        self._by_child: dict[str, set[str]] = {}
        self._pending: OrderedDict[str, list[AlertAction]] = OrderedDict()
        self._pending_count = 0
        self._children: OrderedDict[str, _ChildEvents] = OrderedDict()

    # -- mutations -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Increases by one with every change."""
        return self._version

    def apply_alert(self, alert: Alert) -> AlertChanged | None:
        """Fold one alert version in: the latest version applied wins, actions are kept.

        Returns None for an unchanged repeat, or a replay alert on a live hub.
        """
        if alert.mode is Mode.REPLAY and not self._show_replay:
            return None
        previous = self._views.get(alert.alert_id)
        if previous is not None and previous.alert == alert:
            return None
        actions = () if previous is None else previous.actions
        if previous is None:
            ids = self._action_ids.setdefault(alert.alert_id, set())
            waiting = self._pending.pop(alert.alert_id, [])
            self._pending_count -= len(waiting)
            fresh = []
            for action in waiting:
                if action.action_id not in ids:
                    ids.add(action.action_id)
                    fresh.append(action)
            actions = tuple(fresh)
        elif previous.alert.child_id != alert.child_id:  # cannot happen with derived ids
            self._by_child.get(previous.alert.child_id, set()).discard(alert.alert_id)
        self._version += 1
        view = AlertView(alert, actions, self._version)
        self._views[alert.alert_id] = view
        self._by_child.setdefault(alert.child_id, set()).add(alert.alert_id)
        self._evict_alerts()
        return AlertChanged(view, previous)

    def apply_action(self, action: AlertAction) -> AlertChanged | None:
        """Append a hub action to its alert, in arrival order; ignore a repeated action_id.

        An action for an alert not seen yet is kept until the alert arrives (and None returned).
        """
        previous = self._views.get(action.alert_id)
        if previous is None:
            waiting = self._pending.setdefault(action.alert_id, [])
            if all(a.action_id != action.action_id for a in waiting):
                waiting.append(action)
                self._pending_count += 1
                self._evict_pending()
            return None
        ids = self._action_ids.setdefault(action.alert_id, set())
        if action.action_id in ids:
            return None
        ids.add(action.action_id)
        self._version += 1
        view = AlertView(previous.alert, (*previous.actions, action), self._version)
        self._views[action.alert_id] = view
        return AlertChanged(view, previous)

    def apply_event(self, event: Event) -> TimelineChanged | None:
        """Add an input event to the timeline of each child it is about; ignore duplicates."""
        changed: list[str] = []
        as_dict: dict[str, Any] | None = None
        for child_id in dict.fromkeys(child_ids(event)):
            events = self._children.get(child_id)
            if events is None:
                events = self._children[child_id] = _ChildEvents()
            self._children.move_to_end(child_id)
            if event.event_id in events.data:
                continue
            if as_dict is None:
                as_dict = event_to_dict(event)
            key = (event.occurred_at, event.event_id)
            bisect.insort(events.keys, key)
            events.data[event.event_id] = as_dict
            if len(events.keys) > self._max_events:
                _, dropped = events.keys.pop(0)
                del events.data[dropped]
                events.truncated = True
            changed.append(child_id)
        while len(self._children) > self._max_children:
            self._children.popitem(last=False)
        if not changed:
            return None
        self._version += 1
        return TimelineChanged(tuple(changed), self._version)

    def _evict_alerts(self) -> None:
        excess = len(self._views) - self._max_alerts
        if excess <= 0:
            return
        # Evict in batches (1% of the bound) so a full hub does not sort on every alert.
        batch = max(excess, self._max_alerts // 100)
        victims = sorted(self._views.values(), key=lambda v: (v.is_open, v.alert.raised_at))
        for view in victims[:batch]:
            alert_id = view.alert.alert_id
            del self._views[alert_id]
            self._action_ids.pop(alert_id, None)
            siblings = self._by_child.get(view.alert.child_id)
            if siblings is not None:
                siblings.discard(alert_id)
                if not siblings:
                    del self._by_child[view.alert.child_id]

    def _evict_pending(self) -> None:
        while self._pending_count > self._max_pending and self._pending:
            _, dropped = self._pending.popitem(last=False)
            self._pending_count -= len(dropped)

    # -- queries ---------------------------------------------------------------------------

    def alert(self, alert_id: str) -> AlertView | None:
        return self._views.get(alert_id)

    def views(self) -> Iterator[AlertView]:
        """Every alert kept, in no particular order."""
        return iter(self._views.values())

    def alerts(self, filters: Filters | None = None) -> list[AlertView]:
        """The alerts that match ``filters``, by severity then age (oldest first)."""
        f = filters or Filters()
        return sorted((v for v in self._views.values() if f.matches(v)), key=sort_key)

    def board(self, max_finished: int = MAX_BOARD_FINISHED) -> list[AlertView]:
        """What a page loads first: every open alert, and the ``max_finished`` most recently
        raised finished ones (resolved, withdrawn or closed), by severity then age."""
        open_views: list[AlertView] = []
        finished: list[AlertView] = []
        for view in self._views.values():
            (open_views if view.is_open else finished).append(view)
        if len(finished) > max_finished:
            finished.sort(key=lambda v: (v.alert.raised_at, v.alert.alert_id), reverse=True)
            finished = finished[:max_finished]
        return sorted(open_views + finished, key=sort_key)

    def timeline(self, child_id: str) -> Timeline:
        """Every event, alert and hub action of one child, in time order."""
        entries: list[TimelineEntry] = []
        events = self._children.get(child_id)
        if events is not None:
            for at, event_id in events.keys:
                entries.append(
                    TimelineEntry(
                        at, TimelineKind.EVENT, event_id, {"event": events.data[event_id]}
                    )
                )
        for alert_id in self._by_child.get(child_id, ()):
            view = self._views[alert_id]
            entries.extend(_alert_entries(view))
        entries.sort(key=TimelineEntry.sort_key)
        complete = events is not None and not events.truncated
        return Timeline(child_id, tuple(entries), complete)

    def children_with_events(self, start: Millis, end: Millis) -> Iterator[str]:
        """Children (among those whose timelines are kept) with an event in [start, end]."""
        for child_id, events in self._children.items():
            i = bisect.bisect_left(events.keys, (start, ""))
            if i < len(events.keys) and events.keys[i][0] <= end:
                yield child_id

    def quality(self, now: Millis, days: int = 30) -> dict[str, Any]:
        """The live quality measures for the ``days`` up to ``now`` (see :func:`live_quality`)."""
        return live_quality(self, now, days)


def _alert_entries(view: AlertView) -> Iterable[TimelineEntry]:
    alert = view.alert
    summary = {
        "alert": {
            "alert_id": alert.alert_id,
            "rule_id": str(alert.rule_id),
            "rule_title": RULE_TITLES.get(alert.rule_id, str(alert.rule_id)),
            "severity": str(alert.severity),
            "status": str(alert.status),
            "summary": alert.summary,
            "workflow": str(view.workflow),
        }
    }
    yield TimelineEntry(alert.raised_at, TimelineKind.ALERT_RAISED, alert.alert_id, summary)
    if alert.resolved_at is not None and alert.status is not AlertStatus.RAISED:
        kind = (
            TimelineKind.ALERT_WITHDRAWN
            if alert.status is AlertStatus.WITHDRAWN
            else TimelineKind.ALERT_RESOLVED
        )
        yield TimelineEntry(alert.resolved_at, kind, alert.alert_id, summary)
    for action in view.actions:
        yield TimelineEntry(
            action.at,
            TimelineKind.ACTION,
            action.action_id,
            {"action": action_to_dict(action), "alert": summary["alert"]},
        )


QualityProvider = Callable[[HubState, Millis, int], Mapping[str, Any]]
"""Computes the quality measures shown on the hub: ``(state, now, days) -> JSON-ready dict``.

The default is :func:`live_quality`; the full report of SPEC section 6 can be swapped in.
"""


class Grade(StrEnum):
    GOOD = "good"
    REQUIRES_IMPROVEMENT = "requires_improvement"
    INADEQUATE = "inadequate"


def live_quality(state: HubState, now: Millis, days: int = 30) -> dict[str, Any]:
    """A live version of SPEC section 6 from the alerts the hub holds.

    Counts alerts raised in ``[now - days, now]`` per rule, status, severity and workflow, and
    grades each child: *inadequate* if a HIGH alert was still RAISED at ``now``, *requires
    improvement* if it had other alerts, *good* if it had events in the period and no alert.
    WITHDRAWN alerts do not count against a child: the action was in fact taken in time.
    """
    start = now - days * DAY
    by_rule: dict[str, dict[str, int]] = {
        str(r): {"total": 0} | {str(s): 0 for s in AlertStatus} for r in RuleId
    }
    by_status = dict.fromkeys(map(str, AlertStatus), 0)
    by_severity = dict.fromkeys(map(str, Severity), 0)
    by_workflow = dict.fromkeys(map(str, Workflow), 0)
    per_child: dict[str, dict[str, int]] = {}
    total = 0
    for view in state.views():
        a = view.alert
        if not start <= a.raised_at <= now:
            continue
        total += 1
        by_rule[str(a.rule_id)]["total"] += 1
        by_rule[str(a.rule_id)][str(a.status)] += 1
        by_status[str(a.status)] += 1
        by_severity[str(a.severity)] += 1
        by_workflow[str(view.workflow)] += 1
        if a.status is AlertStatus.WITHDRAWN and (a.resolved_at is None or a.resolved_at <= now):
            continue
        counts = per_child.setdefault(a.child_id, {"alerts": 0, "open_high": 0})
        counts["alerts"] += 1
        still_raised = a.status is AlertStatus.RAISED or (
            a.resolved_at is not None and a.resolved_at > now
        )
        if a.severity is Severity.HIGH and still_raised:
            counts["open_high"] += 1
    children: list[dict[str, Any]] = [
        {
            "child_id": child_id,
            "grade": str(Grade.INADEQUATE if c["open_high"] else Grade.REQUIRES_IMPROVEMENT),
            "alerts": c["alerts"],
            "open_high": c["open_high"],
        }
        for child_id, c in per_child.items()
    ]
    children.sort(key=lambda c: (-c["open_high"], -c["alerts"], c["child_id"]))
    good = sum(1 for c in state.children_with_events(start, now) if c not in per_child)
    grades = {
        str(Grade.GOOD): good,
        str(Grade.REQUIRES_IMPROVEMENT): sum(
            1 for c in children if c["grade"] == Grade.REQUIRES_IMPROVEMENT
        ),
        str(Grade.INADEQUATE): sum(1 for c in children if c["grade"] == Grade.INADEQUATE),
    }
    return {
        "from": to_rfc3339(start),
        "to": to_rfc3339(now),
        "days": days,
        "alerts": total,
        "by_rule": [
            {"rule_id": r, "rule_title": RULE_TITLES[RuleId(r)]} | counts
            for r, counts in by_rule.items()
        ],
        "by_status": by_status,
        "by_severity": by_severity,
        "by_workflow": by_workflow,
        "grades": grades,
        "children": children,
    }


def rebuild(alerts: Iterable[Alert], actions: Iterable[AlertAction], **bounds: Any) -> HubState:
    """A fresh state from the two topics' records, in their order (what a restart does)."""
    state = HubState(**bounds)
    for alert in alerts:
        state.apply_alert(alert)
    for action in actions:
        state.apply_action(action)
    return state


__all__ = [
    "AlertChanged",
    "AlertView",
    "Change",
    "Filters",
    "Grade",
    "HubState",
    "Outcome",
    "QualityProvider",
    "Timeline",
    "TimelineChanged",
    "TimelineEntry",
    "TimelineKind",
    "Workflow",
    "live_quality",
    "rebuild",
    "sort_key",
]
