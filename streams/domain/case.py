"""One child's case: the facts the rules can still use, the deadlines still open, the alerts.

The functions here are the whole of the rules of SPEC section 4, as values in and values out:
``apply_event(case, event, clock, ctx)`` and ``advance(case, clock, ctx)`` return the alert
versions they produce. They update ``case`` in place (it is the caller's, and copying it on every
event would cost more than the rules themselves); they read no clock and do no I/O.

Semantics where SPEC leaves a choice are written down in docs/semantics.md.

Rule evaluation is by facts, not by flags: whether a (rule, trigger) is breached is a function of
the child's facts with ``occurred_at`` up to its deadline, evaluated once the clock passes the
deadline. Since every event within the allowed lateness has arrived by then, the same events in
any order within the lateness give the same alerts. A late event (before the clock) triggers a
re-evaluation of everything the child has, so it is still applied.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity, alert_id_for
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
)
from streams.domain.params import Params
from streams.domain.summaries import describe
from streams.domain.time import Millis

_CSC = Agency.CHILDRENS_SOCIAL_CARE
_SCHOOL = Agency.SCHOOL
_REPORTED = MissingStatus.REPORTED
_REVIEWED = MissingStatus.RISK_REVIEWED
_RETURNED = MissingStatus.RETURNED
_INTERVIEW = MissingStatus.RETURN_INTERVIEW
_LOW = frozenset({RiskLevel.LOW, RiskLevel.NO_APPARENT_RISK, RiskLevel.ABSENT})
_UNDERGRADED = frozenset({RiskLevel.ABSENT, RiskLevel.NO_APPARENT_RISK})
_RAISED_GRADE = frozenset({RiskLevel.MEDIUM, RiskLevel.HIGH})
_GRADING = frozenset({_REPORTED, _REVIEWED})
_STATUS_RANK = {_REPORTED: 0, _REVIEWED: 1, _RETURNED: 2, _INTERVIEW: 3}


class DaFact(NamedTuple):
    """A DOMESTIC_ABUSE incident that lists this child."""

    at: Millis
    incident_id: str
    event_id: str
    present: bool
    age: int | None
    dash_high: bool


class Step(NamedTuple):
    """One step of a missing episode."""

    at: Millis
    status: MissingStatus
    risk: RiskLevel | None
    looked_after: bool
    event_id: str


class ReferralFact(NamedTuple):
    at: Millis
    agency: Agency
    incident_id: str | None
    episode_id: str | None
    event_id: str


@dataclass(slots=True)
class Episode:
    episode_id: str
    steps: list[Step] = field(default_factory=list)
    report: Step | None = None
    """The first REPORTED step: the episode's report time."""
    returned: Step | None = None
    """The first RETURNED step."""
    last_at: Millis = -(2**62)

    def add(self, step: Step) -> bool:
        """Add a step; True when it displaced the first report or first return (an anchor
        the deadlines hang on), which calls for a re-evaluation."""
        self.steps.append(step)
        if step.at > self.last_at:
            self.last_at = step.at
        if step.status is _REPORTED:
            first = self.report
            if first is None or (step.at, step.event_id) < (first.at, first.event_id):
                self.report = step
                return first is not None
        elif step.status is _RETURNED:
            first = self.returned
            if first is None or (step.at, step.event_id) < (first.at, first.event_id):
                self.returned = step
                return first is not None
        return False

    def looked_after_by(self, t: Millis) -> bool:
        return any(s.looked_after for s in self.steps if s.at <= t)

    def risk_at(self, t: Millis) -> RiskLevel | None:
        """The grade of the latest REPORTED or RISK_REVIEWED step at or before ``t``."""
        best: Step | None = None
        for s in self.steps:
            if (
                s.status in _GRADING
                and s.at <= t
                and (
                    best is None
                    or (s.at, _STATUS_RANK[s.status], s.event_id)
                    > (best.at, _STATUS_RANK[best.status], best.event_id)
                )
            ):
                best = s
        return best.risk if best is not None else None


@dataclass(slots=True)
class Context:
    """What the engine tells the core besides facts: parameters, mode, horizon, processing time."""

    params: Params
    mode: Mode = Mode.REPLAY
    until: Millis | None = None
    """No alert is raised with ``raised_at`` after this (a replay's ``--until``)."""
    now: Millis = 0
    """Processing time, stamped on alerts as ``detected_at``; the engine keeps it current."""


@dataclass(slots=True)
class CaseState:
    """Everything the rules still need about one child."""

    child_id: str
    seen: dict[str, Millis] = field(default_factory=dict)
    """event_id -> occurred_at, to ignore duplicates."""
    incidents: dict[str, DaFact] = field(default_factory=dict)
    """DOMESTIC_ABUSE incidents listing the child, by incident_id."""
    episodes: dict[str, Episode] = field(default_factory=dict)
    referrals: list[ReferralFact] = field(default_factory=list)
    pending: list[tuple[Millis, str, str]] = field(default_factory=list)
    """Heap of (due, rule_id, trigger_id) deadlines not yet evaluated."""
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    """(rule_id, trigger_id) -> latest version of the one alert it raised."""
    sg05: dict[str, bool] = field(default_factory=dict)
    """episode_id -> whether its report opened an SG05 obligation (decided in report order)."""
    latest: Millis = -(2**62)
    """The greatest event time among the facts (a quiet child is pruned after the retention)."""
    pruned_to: Millis = -(2**62)

    @property
    def next_wakeup(self) -> Millis | None:
        """The earliest deadline still to evaluate, if any."""
        return self.pending[0][0] if self.pending else None

    def is_empty(self) -> bool:
        return not self.seen and not self.alerts


# --------------------------------------------------------------------------------------------
# Applying events


def apply_event(case: CaseState, event: Event, clock: Millis, ctx: Context) -> list[Alert]:
    """Add one event's facts to the case; return the alert versions this produces at once.

    ``clock`` is the watermark before this event. Deadlines are not evaluated here, except
    SG04 (immediate) and, when the event is late (``occurred_at < clock``), every deadline the
    clock has already passed.
    """
    if event.event_id in case.seen:
        return []
    at = event.occurred_at
    case.seen[event.event_id] = at
    if at > case.latest:
        case.latest = at
    p = ctx.params
    push = case.pending
    moved_anchor = False
    if type(event) is MissingReport:
        ep = case.episodes.get(event.episode_id)
        if ep is None:
            ep = case.episodes[event.episode_id] = Episode(event.episode_id)
        status = event.status
        if ep.add(Step(at, status, event.risk_level, event.looked_after, event.event_id)):
            moved_anchor = True
        eid = event.episode_id
        if status is _REPORTED:
            heapq.heappush(push, (at + p.review_deadline, RuleId.SG03, eid))
            heapq.heappush(push, (at + p.repeat_referral_deadline, RuleId.SG05, eid))
            heapq.heappush(push, (at + p.long_missing_deadline, RuleId.SG07, eid))
            heapq.heappush(push, (at + p.cumulative_deadline, RuleId.SG08, eid))
        elif status is _RETURNED:
            heapq.heappush(push, (at + p.return_interview_deadline, RuleId.SG06, eid))
    elif type(event) is Referral:
        case.referrals.append(
            ReferralFact(at, event.agency, event.incident_id, event.episode_id, event.event_id)
        )
    elif type(event) is Incident:
        if event.incident_type is not IncidentType.DOMESTIC_ABUSE:
            return []
        child = next(c for c in event.children if c.child_id == case.child_id)
        iid = event.incident_id
        case.incidents[iid] = DaFact(
            at, iid, event.event_id, child.present, child.age, event.dash_risk is DashRisk.HIGH
        )
        heapq.heappush(push, (at + p.da_referral_deadline, RuleId.SG01, iid))
        if child.age is None or 4 <= child.age <= 17:
            heapq.heappush(push, (p.encompass_due(at), RuleId.SG02, iid))
        heapq.heappush(push, (at + p.cumulative_deadline, RuleId.SG08, iid))

    if at < clock or moved_anchor:
        return _reevaluate(case, clock, ctx, since=min(at, clock))
    out = _check_sg04(case, event, ctx)
    if case.alerts:
        out.extend(_refresh(case, ctx, check_breach=False))
    return out


def advance(case: CaseState, clock: Millis, ctx: Context) -> list[Alert]:
    """Evaluate every deadline the clock has passed (``due < clock``)."""
    out: list[Alert] = []
    pending = case.pending
    while pending and pending[0][0] < clock:
        due, rule, trigger = heapq.heappop(pending)
        if (rule, trigger) in case.alerts:
            continue
        alert = _evaluate(case, RuleId(rule), trigger, ctx)
        if alert is not None and alert.due_at == due:
            case.alerts[(rule, trigger)] = alert
            out.append(alert)
        # A due that no longer matches the facts (an earlier report arrived later) is stale:
        # the entry pushed for the new due is evaluated in its turn.
    return out


def prune(case: CaseState, horizon: Millis) -> list[Alert]:
    """Drop facts older than ``horizon`` and the alerts whose trigger they were.

    Returns the alerts dropped: they can no longer change, so they are final.
    """
    if horizon <= case.pruned_to:
        return []
    case.pruned_to = horizon
    final: list[Alert] = []
    gone_incidents = [k for k, f in case.incidents.items() if f.at < horizon]
    for k in gone_incidents:
        del case.incidents[k]
    gone_episodes = [k for k, e in case.episodes.items() if e.last_at < horizon]
    for k in gone_episodes:
        del case.episodes[k]
        case.sg05.pop(k, None)
    if gone_incidents or gone_episodes:
        gone = set(gone_incidents) | set(gone_episodes)
        for key in [k for k in case.alerts if k[1] in gone]:
            final.append(case.alerts.pop(key))
    if case.referrals and case.referrals[0].at < horizon:
        case.referrals = [r for r in case.referrals if r.at >= horizon]
    if case.seen:
        case.seen = {k: t for k, t in case.seen.items() if t >= horizon}
    return final


def drain(case: CaseState) -> list[Alert]:
    """Every alert the case holds (for the end of a backtest)."""
    return list(case.alerts.values())


# --------------------------------------------------------------------------------------------
# Re-evaluation after a late event, and status refresh


def _reevaluate(case: CaseState, clock: Millis, ctx: Context, since: Millis) -> list[Alert]:
    """A late event at ``since`` arrived (or one moved an anchor): evaluate every deadline
    already passed, refresh every alert it can touch."""
    out = _refresh(case, ctx, check_breach=True, since=since)
    candidates: list[tuple[Millis, str, str]] = []
    p = ctx.params
    for f in case.incidents.values():
        candidates.append((f.at + p.da_referral_deadline, RuleId.SG01, f.incident_id))
        candidates.append((p.encompass_due(f.at), RuleId.SG02, f.incident_id))
        candidates.append((f.at + p.cumulative_deadline, RuleId.SG08, f.incident_id))
    for ep in case.episodes.values():
        if ep.report is not None:
            r = ep.report.at
            candidates.append((r + p.review_deadline, RuleId.SG03, ep.episode_id))
            candidates.append((r + p.repeat_referral_deadline, RuleId.SG05, ep.episode_id))
            candidates.append((r + p.long_missing_deadline, RuleId.SG07, ep.episode_id))
            candidates.append((r + p.cumulative_deadline, RuleId.SG08, ep.episode_id))
            candidates.append((r, RuleId.SG04, ep.episode_id))
        if ep.returned is not None:
            candidates.append(
                (ep.returned.at + p.return_interview_deadline, RuleId.SG06, ep.episode_id)
            )
    candidates.sort()
    for due, rule, trigger in candidates:
        if (rule, trigger) in case.alerts:
            continue
        if due >= clock and rule != RuleId.SG04:
            heapq.heappush(case.pending, (due, rule, trigger))
            continue
        alert = _evaluate(case, RuleId(rule), trigger, ctx)
        if alert is not None:
            case.alerts[(rule, trigger)] = alert
            out.append(alert)
    return out


def _refresh(
    case: CaseState, ctx: Context, *, check_breach: bool, since: Millis | None = None
) -> list[Alert]:
    """Recompute alerts from the facts; return the versions that changed.

    Without ``check_breach`` (an event in order) only the resolution can change. With it (a
    late event at ``since``, or one that moved an episode's first report or return) each alert
    whose deadline is not before ``since`` is evaluated again: one whose rule turns out to have
    been met in time becomes WITHDRAWN. Earlier deadlines cannot depend on the event.

    A resolution never goes away: facts only disappear by pruning, and an action that was
    taken stays taken, so ``resolved_at`` only ever moves earlier.
    """
    out: list[Alert] = []
    for key, alert in case.alerts.items():
        rule, trigger = key
        if check_breach and (since is None or alert.due_at >= since):
            fresh = _evaluate(case, RuleId(rule), trigger, ctx)
            if fresh is None:
                if alert.status is AlertStatus.WITHDRAWN:
                    continue
                new = _replace_status(alert, AlertStatus.WITHDRAWN, _met_at(case, alert), ctx)
            else:
                if alert.status is not AlertStatus.WITHDRAWN:
                    resolved_at = _earliest(fresh.resolved_at, alert.resolved_at)
                    if resolved_at != fresh.resolved_at:
                        fresh = _replace_status(fresh, AlertStatus.RESOLVED, resolved_at, ctx)
                if _content(fresh) == _content(alert):
                    continue
                new = fresh
        else:
            if alert.status is AlertStatus.WITHDRAWN:
                continue
            found = _resolution(case, RuleId(rule), trigger, alert.due_at)
            resolved_at = _earliest(found, alert.resolved_at)
            if resolved_at == alert.resolved_at:
                continue
            new = _replace_status(alert, AlertStatus.RESOLVED, resolved_at, ctx)
        case.alerts[key] = new
        out.append(new)
    return out


def _earliest(a: Millis | None, b: Millis | None) -> Millis | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def _content(a: Alert) -> tuple[object, ...]:
    return (a.severity, a.raised_at, a.evidence, a.summary, a.status, a.resolved_at)


def _replace_status(
    alert: Alert, status: AlertStatus, resolved_at: Millis | None, ctx: Context
) -> Alert:
    return Alert(
        alert.alert_id,
        alert.rule_id,
        alert.child_id,
        alert.trigger_id,
        alert.severity,
        alert.raised_at,
        alert.due_at,
        alert.evidence,
        alert.summary,
        alert.recommended_action,
        status,
        resolved_at,
        ctx.mode,
        ctx.now,
    )


def _met_at(case: CaseState, alert: Alert) -> Millis | None:
    """When a withdrawn alert's action was in fact taken (best effort, for the record)."""
    rule, trigger, due = alert.rule_id, alert.trigger_id, alert.due_at
    times: list[Millis] = []
    if rule in (RuleId.SG01, RuleId.SG02, RuleId.SG05, RuleId.SG08):
        agency = _SCHOOL if rule is RuleId.SG02 else _CSC
        times = [r.at for r in case.referrals if r.agency is agency and r.at <= due]
    else:
        ep = case.episodes.get(trigger)
        if ep is not None:
            times = [s.at for s in ep.steps if s.at <= due and s.status is not _REPORTED]
    return max(times) if times else None


# --------------------------------------------------------------------------------------------
# SG04: immediate


def _check_sg04(case: CaseState, event: Event, ctx: Context) -> list[Alert]:
    """SG04 fires at the report; a later-arriving earlier event can complete its condition."""
    if type(event) is MissingReport:
        if event.status is not _REPORTED:
            return []
        lo, hi = event.occurred_at, event.occurred_at + ctx.params.lookback
    elif type(event) is Incident and event.incident_type is IncidentType.DOMESTIC_ABUSE:
        lo, hi = event.occurred_at, event.occurred_at + ctx.params.lookback
    else:
        return []
    out: list[Alert] = []
    for ep in case.episodes.values():
        rep = ep.report
        if rep is None or not lo <= rep.at <= hi or rep.risk not in _UNDERGRADED:
            continue
        key = (RuleId.SG04, ep.episode_id)
        alert = _evaluate(case, RuleId.SG04, ep.episode_id, ctx)
        if alert is None:
            continue
        known = case.alerts.get(key)
        if known is None or _content(known) != _content(alert):
            # New, or an earlier event arrived within the lateness and adds to its evidence.
            case.alerts[key] = alert
            out.append(alert)
    return out


# --------------------------------------------------------------------------------------------
# The rules: each returns the alert if the (rule, trigger) is breached, else None.


def _evaluate(case: CaseState, rule: RuleId, trigger: str, ctx: Context) -> Alert | None:
    found = _RULES[rule](case, trigger, ctx.params)
    if found is None:
        return None
    severity, due, evidence, facts = found
    if ctx.until is not None and due > ctx.until:
        return None
    resolved_at = _resolution(case, rule, trigger, due)
    summary, action = describe(rule, due, facts)
    return Alert(
        alert_id_for(rule, case.child_id, trigger),
        rule,
        case.child_id,
        trigger,
        severity,
        due,
        due,
        evidence,
        summary,
        action,
        AlertStatus.RESOLVED if resolved_at is not None else AlertStatus.RAISED,
        resolved_at,
        ctx.mode,
        ctx.now,
    )


_Found = tuple[Severity, Millis, tuple[str, ...], dict[str, object]]


def _referral_met(
    case: CaseState, agency: Agency, incident_id: str | None, start: Millis, due: Millis
) -> bool:
    """A referral to ``agency`` carrying ``incident_id`` by ``due``, or any in [start, due]."""
    for r in case.referrals:
        if (
            r.agency is agency
            and r.at <= due
            and (r.at >= start or (incident_id is not None and r.incident_id == incident_id))
        ):
            return True
    return False


def _sg01(case: CaseState, trigger: str, p: Params) -> _Found | None:
    f = case.incidents.get(trigger)
    if f is None:
        return None
    due = f.at + p.da_referral_deadline
    if _referral_met(case, _CSC, f.incident_id, f.at, due):
        return None
    severity = Severity.HIGH if f.present or f.dash_high else Severity.MEDIUM
    return severity, due, (f.event_id,), {"incident": f}


def _sg02(case: CaseState, trigger: str, p: Params) -> _Found | None:
    f = case.incidents.get(trigger)
    if f is None or (f.age is not None and not 4 <= f.age <= 17):
        return None
    due = p.encompass_due(f.at)
    if _referral_met(case, _SCHOOL, f.incident_id, f.at, due):
        return None
    return Severity.MEDIUM, due, (f.event_id,), {"incident": f}


def _sg03(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.report is None or ep.report.risk not in _LOW:
        return None
    r = ep.report.at
    due = r + p.review_deadline
    for s in ep.steps:
        if (s.status is _REVIEWED and r <= s.at <= due) or (s.status is _RETURNED and s.at < due):
            return None
    severity = Severity.HIGH if ep.looked_after_by(due) else Severity.MEDIUM
    return severity, due, (ep.report.event_id,), {"report": ep.report}


def _sg04(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.report is None:
        return None
    rep = ep.report
    if rep.risk not in _UNDERGRADED or not ep.looked_after_by(rep.at):
        return None
    lo = rep.at - p.lookback
    prior: list[tuple[Millis, str]] = []
    for other in case.episodes.values():
        o = other.report
        if other is not ep and o is not None and lo <= o.at <= rep.at:
            prior.append((o.at, o.event_id))
    for f in case.incidents.values():
        if lo <= f.at <= rep.at:
            prior.append((f.at, f.event_id))
    if not prior:
        return None
    prior.sort()
    evidence = (rep.event_id, *(e for _, e in prior))
    return Severity.HIGH, rep.at, evidence, {"report": rep, "prior": len(prior)}


def _reports_between(case: CaseState, lo: Millis, hi: Millis) -> list[Step]:
    return [
        e.report for e in case.episodes.values() if e.report is not None and lo <= e.report.at <= hi
    ]


def _sg05_opens(case: CaseState, ep: Episode, p: Params) -> bool:
    """Decide, once and in report order, whether this episode's report opens an obligation."""
    decided = case.sg05.get(ep.episode_id)
    if decided is not None:
        return decided
    assert ep.report is not None
    r = ep.report.at
    lo = r - p.lookback
    opens = len(_reports_between(case, lo, r)) >= p.repeat_episodes and not any(
        opened
        and other_id != ep.episode_id
        and (other := case.episodes.get(other_id)) is not None
        and other.report is not None
        and lo <= other.report.at
        and (other.report.at, other_id) < (r, ep.episode_id)
        for other_id, opened in case.sg05.items()
    )
    case.sg05[ep.episode_id] = opens
    return opens


def _sg05(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.report is None or not _sg05_opens(case, ep, p):
        return None
    r = ep.report.at
    due = r + p.repeat_referral_deadline
    if _referral_met(case, _CSC, None, r - p.lookback, due):
        return None
    reports = sorted(_reports_between(case, r - p.lookback, r))
    evidence = tuple(s.event_id for s in reports)
    return Severity.HIGH, due, evidence, {"report": ep.report, "episodes": len(reports)}


def _sg06(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.returned is None:
        return None
    ret = ep.returned.at
    due = ret + p.return_interview_deadline
    for s in ep.steps:
        if s.status is _INTERVIEW and ret <= s.at <= due:
            return None
    others = sum(1 for s in _reports_between(case, ret - p.lookback, ret) if s is not ep.report)
    high = ep.looked_after_by(due) or others >= p.return_repeat_episodes
    severity = Severity.HIGH if high else Severity.MEDIUM
    return severity, due, (ep.returned.event_id,), {"returned": ep.returned, "others": others}


def _sg07(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.report is None:
        return None
    due = ep.report.at + p.long_missing_deadline
    if ep.returned is not None and ep.returned.at <= due:
        return None
    risk = ep.risk_at(due)
    if risk not in _LOW:
        return None
    return Severity.HIGH, due, (ep.report.event_id,), {"report": ep.report, "risk": risk}


def _sg08(case: CaseState, trigger: str, p: Params) -> _Found | None:
    f = case.incidents.get(trigger)
    if f is not None:
        later_at, later_event = f.at, f.event_id
        others = [
            (s.at, s.event_id) for s in _reports_between(case, f.at - p.cumulative_window, f.at)
        ]
        kind = "incident"
    else:
        ep = case.episodes.get(trigger)
        if ep is None or ep.report is None:
            return None
        later_at, later_event = ep.report.at, ep.report.event_id
        lo = later_at - p.cumulative_window
        others = [(i.at, i.event_id) for i in case.incidents.values() if lo <= i.at <= later_at]
        kind = "report"
    if not others:
        return None
    earlier_at, earlier_event = min(others)
    due = later_at + p.cumulative_deadline
    if _referral_met(case, _CSC, None, earlier_at, due):
        return None
    return (
        Severity.HIGH,
        due,
        (later_event, earlier_event),
        {"later": kind, "later_at": later_at, "earlier_at": earlier_at},
    )


_RULES = {
    RuleId.SG01: _sg01,
    RuleId.SG02: _sg02,
    RuleId.SG03: _sg03,
    RuleId.SG04: _sg04,
    RuleId.SG05: _sg05,
    RuleId.SG06: _sg06,
    RuleId.SG07: _sg07,
    RuleId.SG08: _sg08,
}


# --------------------------------------------------------------------------------------------
# Resolution: the action that would have met the rule, taken after its deadline.


def _resolution(case: CaseState, rule: RuleId, trigger: str, due: Millis) -> Millis | None:
    """Event time of the first action after ``due`` that resolves the alert, if any."""
    if rule in (RuleId.SG01, RuleId.SG02):
        agency = _SCHOOL if rule is RuleId.SG02 else _CSC
        times = [
            r.at
            for r in case.referrals
            if r.agency is agency and r.at > due and r.incident_id in (None, trigger)
        ]
        return min(times, default=None)
    if rule in (RuleId.SG05, RuleId.SG08):
        return min((r.at for r in case.referrals if r.agency is _CSC and r.at > due), default=None)
    ep = case.episodes.get(trigger)
    if ep is None:
        return None
    if rule is RuleId.SG03:
        times = [s.at for s in ep.steps if s.status is _REVIEWED and s.at > due]
    elif rule is RuleId.SG06:
        times = [s.at for s in ep.steps if s.status is _INTERVIEW and s.at > due]
    elif rule is RuleId.SG07:
        times = [
            s.at
            for s in ep.steps
            if s.at > due
            and (s.status is _RETURNED or (s.status in _GRADING and s.risk in _RAISED_GRADE))
        ]
    else:  # SG04: a re-grade at or after the report
        times = [
            s.at
            for s in ep.steps
            if s.status in _GRADING and s.risk in _RAISED_GRADE and s.at >= due and s != ep.report
        ]
    return min(times, default=None)
