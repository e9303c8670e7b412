"""A small language for writing rule scenarios in tests: events by hand, alerts as tuples."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from streams.domain.alerts import Alert
from streams.domain.detector import Detector
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
)
from streams.domain.native import NativeDetector, detector_for
from streams.domain.params import Params
from streams.domain.time import DAY, HOUR, MINUTE, Millis, parse_rfc3339

ENGINES = ("python", "native")
"""The detection cores: the Python reference and the compiled one (streams.domain.native)."""
engine = ["python"]
"""The core :func:`detector` and :func:`run` use; the ``engine`` fixture (tests/unit/conftest.py)
sets it for the modules that run their tests through both."""


def detector(params: Params | None = None, **kwargs: Any) -> Detector | NativeDetector:
    """A detector on the core in use (:data:`engine`)."""
    return detector_for(engine[0], params, **kwargs)


T0 = parse_rfc3339("2024-03-06T10:00:00Z")
"""A Wednesday, in GMT."""

_ids = itertools.count(1)


def eid(prefix: str = "e") -> str:
    return f"{prefix}{next(_ids)}"


def t(days: float = 0, hours: float = 0, minutes: float = 0, ms: int = 0) -> Millis:
    """T0 plus an offset."""
    return T0 + round(days * DAY + hours * HOUR + minutes * MINUTE) + ms


def da(
    incident_id: str,
    at: Millis,
    *children: tuple[str, bool, int | None],
    dash: DashRisk | None = None,
    kind: IncidentType = IncidentType.DOMESTIC_ABUSE,
    event_id: str | None = None,
) -> Incident:
    """An incident; children are (child_id, present, age)."""
    kids = tuple(HouseholdChild(c, p, a) for c, p, a in children) or (
        HouseholdChild("C1", True, 9),
    )
    return Incident(event_id or eid(), at, incident_id, kind, dash, kids)


def step(
    status: MissingStatus,
    episode: str,
    child: str,
    at: Millis,
    risk: RiskLevel | None = None,
    lac: bool = False,
) -> MissingReport:
    return MissingReport(eid(), at, episode, child, status, risk, lac, 12)


def reported(
    episode: str, child: str, at: Millis, risk: RiskLevel = RiskLevel.LOW, lac: bool = False
) -> MissingReport:
    return step(MissingStatus.REPORTED, episode, child, at, risk, lac)


def reviewed(
    episode: str, child: str, at: Millis, risk: RiskLevel = RiskLevel.LOW, lac: bool = False
) -> MissingReport:
    return step(MissingStatus.RISK_REVIEWED, episode, child, at, risk, lac)


def returned(episode: str, child: str, at: Millis, lac: bool = False) -> MissingReport:
    return step(MissingStatus.RETURNED, episode, child, at, None, lac)


def interview(episode: str, child: str, at: Millis, lac: bool = False) -> MissingReport:
    return step(MissingStatus.RETURN_INTERVIEW, episode, child, at, None, lac)


def referral(
    child: str,
    at: Millis,
    agency: Agency = Agency.CHILDRENS_SOCIAL_CARE,
    incident: str | None = None,
    episode: str | None = None,
) -> Referral:
    return Referral(eid(), at, eid("R"), child, agency, incident, episode)


def run(
    events: Iterable[Event],
    until: Millis | None = None,
    params: Params | None = None,
    *,
    sort: bool = True,
) -> list[Alert]:
    """Feed events (in event-time order unless ``sort=False``) and finish at ``until``."""
    evs: Sequence[Event] = sorted(events, key=lambda e: e.occurred_at) if sort else list(events)
    d = detector(params, now=lambda: 0)
    d.feed_all(evs)
    d.finish(until)
    return d.alerts()


def outcome(alerts: Iterable[Alert]) -> set[tuple[str, str, str, str, str]]:
    """(rule, child, trigger, severity, status) of each alert, as the held-out suite compares."""
    return {(a.rule_id, a.child_id, a.trigger_id, a.severity, a.status) for a in alerts}


def only(rule: str, alerts: Iterable[Alert]) -> set[tuple[str, str, str, str, str]]:
    return {o for o in outcome(alerts) if o[0] == rule}
