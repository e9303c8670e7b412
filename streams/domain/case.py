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

Two economies keep the in-order path cheap (the inline backtest runs it for every event):

- A deadline is queued for evaluation only when its rule can apply to the facts (an SG03 only
  for a low-risk report, an SG07 once the episode has a low grade, an SG08 once a fact of the
  other kind is in the window). A later-arriving fact that makes a rule applicable queues it
  then; a late event re-evaluates everything, unfiltered. Where a filtered-out deadline was the
  only one due at its time, a *wake marker* ``(due, "", trigger)`` is queued instead: the times
  at which the engine wakes a child (and may prune it) stay exactly those of every deadline,
  because when pruning runs decides which facts and alerts a very late event still finds.
- An event in order only updates the resolution of the alerts it can resolve (a referral those
  of SG01, SG02, SG05 and SG08; a missing step those of its own episode), by the one new fact:
  the resolution already recorded is the earliest over every fact seen before.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from streams.domain.alerts import (
    Alert,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
    alert_id_for,
    new_alert,
)
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
from streams.domain.time import HOUR, Millis

# Module constants are Final: compiled (mypyc) they are static values rather than look-ups in
# the module's dict, and a member is named once here rather than looked up on its class.
_CSC: Final = Agency.CHILDRENS_SOCIAL_CARE
_SCHOOL: Final = Agency.SCHOOL
_REPORTED: Final = MissingStatus.REPORTED
_REVIEWED: Final = MissingStatus.RISK_REVIEWED
_RETURNED: Final = MissingStatus.RETURNED
_INTERVIEW: Final = MissingStatus.RETURN_INTERVIEW
_LOW: Final = frozenset({RiskLevel.LOW, RiskLevel.NO_APPARENT_RISK, RiskLevel.ABSENT})
_UNDERGRADED: Final = frozenset({RiskLevel.ABSENT, RiskLevel.NO_APPARENT_RISK})
_RAISED_GRADE: Final = frozenset({RiskLevel.MEDIUM, RiskLevel.HIGH})
_GRADING: Final = frozenset({_REPORTED, _REVIEWED})
_STATUS_RANK: Final = {_REPORTED: 0, _REVIEWED: 1, _RETURNED: 2, _INTERVIEW: 3}
_SG01: Final = RuleId.SG01
_SG02: Final = RuleId.SG02
_SG03: Final = RuleId.SG03
_SG04: Final = RuleId.SG04
_SG05: Final = RuleId.SG05
_SG06: Final = RuleId.SG06
_SG07: Final = RuleId.SG07
_SG08: Final = RuleId.SG08
_HIGH: Final = Severity.HIGH
_MEDIUM: Final = Severity.MEDIUM
_RAISED: Final = AlertStatus.RAISED
_RESOLVED: Final = AlertStatus.RESOLVED
_WITHDRAWN: Final = AlertStatus.WITHDRAWN
_DOMESTIC_ABUSE: Final = IncidentType.DOMESTIC_ABUSE
_DASH_HIGH: Final = DashRisk.HIGH
_RULE_IDS: Final[dict[str, RuleId]] = {str(r): r for r in RuleId}
"""Rule id text -> member: ``rule is _SG02`` below needs the member, and this look-up
costs a tenth of ``RuleId(text)``."""
_CSC_RULES: Final = frozenset({_SG01, _SG05, _SG08})
_SCHOOL_RULES: Final = frozenset({_SG02})
_INCIDENT_RULES: Final = frozenset({_SG01, _SG02})


_new_fact = tuple.__new__
"""``_new_fact(Step, (at, ...))`` is ``Step(at, ...)`` without the Python-level ``__new__`` a
NamedTuple has (measured: 0.22 us -> 0.14 us; one or two per event)."""


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
    """The latest step: the episode is pruned once this is older than the retention."""

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
        # A loop, not any() over a generator: the generator's frame costs more than these few
        # steps (the same below).
        for s in self.steps:  # noqa: SIM110
            if s.looked_after and s.at <= t:
                return True
        return False

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


_NEVER: Final = -(2**62)
_FOREVER: Final = 2**62
_MARKER: Final = ""
"""The rule of a wake marker: a time the child is woken at, with nothing to evaluate."""


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
    """Heap of (due, rule_id, trigger_id) deadlines not yet evaluated; rule_id ``""`` is a wake
    marker (see the module docstring)."""
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    """(rule_id, trigger_id) -> latest version of the one alert it raised."""
    sg05: dict[str, bool] = field(default_factory=dict)
    """episode_id -> whether its report opened an SG05 obligation (decided in report order)."""
    latest: Millis = _NEVER
    """The greatest event time among the facts (a quiet child is pruned after the retention)."""
    pruned_to: Millis = _NEVER
    """The horizon of the last pruning: the next one waits a day of event time."""
    oldest: Millis = _FOREVER
    """No fact is older than this, so a pruning up to it has nothing to drop."""
    wake: Millis | None = None
    """When the engine is to wake this child next (its own record of the engine's schedule,
    so that an engine rebuilt over these states continues exactly); None when unscheduled."""

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
    event_id = event.event_id
    if event_id in case.seen:
        return []
    at = event.occurred_at
    case.seen[event_id] = at
    if at > case.latest:
        case.latest = at
    if at < case.oldest:
        case.oldest = at
    in_order = at >= clock
    if type(event) is Referral:
        referral = _new_fact(
            ReferralFact, (at, event.agency, event.incident_id, event.episode_id, event_id)
        )
        case.referrals.append(referral)
        if not in_order:
            return _reevaluate(case, clock, ctx, since=at)
        return _resolved_by_referral(case, referral, ctx) if case.alerts else []
    if type(event) is MissingReport:
        ep = case.episodes.get(event.episode_id)
        if ep is None:
            ep = case.episodes[event.episode_id] = Episode(event.episode_id)
        status = event.status
        step = _new_fact(Step, (at, status, event.risk_level, event.looked_after, event_id))
        moved_anchor = ep.add(step)
        _queue_step(case, ep, step, clock, ctx.params)
        if not in_order or moved_anchor:
            return _reevaluate(case, clock, ctx, since=min(at, clock))
        out = _check_sg04(case, event, ctx) if status is _REPORTED or step.looked_after else []
        if case.alerts:
            out += _resolved_by_step(case, ep, step, ctx)
        return out
    if type(event) is Incident:
        if event.incident_type is not _DOMESTIC_ABUSE:
            return []
        child_id = case.child_id
        for child in event.children:
            if child.child_id == child_id:
                break
        else:
            raise ValueError(f"incident {event.incident_id} does not list this case's child")
        incident = _new_fact(
            DaFact,
            (
                at,
                event.incident_id,
                event_id,
                child.present,
                child.age,
                event.dash_risk is _DASH_HIGH,
            ),
        )
        case.incidents[incident.incident_id] = incident
        _queue_incident(case, incident, clock, ctx.params)
        if not in_order:
            return _reevaluate(case, clock, ctx, since=at)
        # An incident is no action of any rule: no alert's resolution can change.
        return _check_sg04(case, event, ctx)
    raise TypeError(f"not an event: {type(event).__name__}")


def _queue_incident(case: CaseState, f: DaFact, clock: Millis, p: Params) -> None:
    """Queue the deadlines of a domestic abuse incident: SG01, SG02 (school age), SG08 (when a
    report is in the 30 days before), and SG08 of the reports in the 30 days after it."""
    push = case.pending
    iid, at = f.incident_id, f.at
    sg01 = at + p.da_referral_deadline
    heapq.heappush(push, (sg01, _SG01, iid))
    sg02: Millis | None = None
    if f.age is None or 4 <= f.age <= 17:
        sg02 = _encompass_due(p, at)
        heapq.heappush(push, (sg02, _SG02, iid))
    episodes = case.episodes.values()
    reports = ((rep.at, ep.episode_id) for ep in episodes if (rep := ep.report) is not None)
    _queue_sg08(push, at, iid, reports, (sg01, sg02), clock, p)


def _queue_step(case: CaseState, ep: Episode, step: Step, clock: Millis, p: Params) -> None:
    """Queue the deadlines of a missing step.

    A REPORTED step wakes the child at +review and +24 h deadlines (as each REPORTED step
    always has); what is evaluated then depends on the episode's first report. A RETURNED step
    queues SG06. A low grade makes the episode's SG07 applicable.
    """
    push = case.pending
    eid = ep.episode_id
    status = step.status
    if status is _RETURNED:
        due = step.at + p.return_interview_deadline
        heapq.heappush(push, (due, _SG06 if ep.returned is step else _MARKER, eid))
        return
    if status is _INTERVIEW:
        return
    rep = ep.report
    if step.risk in _LOW and rep is not None and not _graded_low(ep, step):
        # The episode's first low grade: SG07 can apply (if its due is still ahead).
        due = rep.at + p.long_missing_deadline
        if due >= clock and rep is not step:
            heapq.heappush(push, (due, _SG07, eid))
    if status is not _REPORTED:
        return
    at = step.at
    sg03, sg05 = at + p.review_deadline, at + p.repeat_referral_deadline
    sg07, sg08 = at + p.long_missing_deadline, at + p.cumulative_deadline
    if rep is not step:  # a re-grade: its times only wake the child
        for due in {sg03, sg05, sg07, sg08}:
            heapq.heappush(push, (due, _MARKER, eid))
        return
    heapq.heappush(push, (sg03, _SG03 if step.risk in _LOW else _MARKER, eid))
    heapq.heappush(push, (sg05, _SG05, eid))
    if _graded_low(ep, None):
        heapq.heappush(push, (sg07, _SG07, eid))
    elif sg07 != sg05:
        heapq.heappush(push, (sg07, _MARKER, eid))
    incidents = ((f.at, f.incident_id) for f in case.incidents.values())
    _queue_sg08(push, at, eid, incidents, (sg05, sg07), clock, p)


def _queue_sg08(
    push: list[tuple[Millis, str, str]],
    at: Millis,
    trigger: str,
    others: Iterable[tuple[Millis, str]],
    queued: tuple[Millis, Millis | None],
    clock: Millis,
    p: Params,
) -> None:
    """SG08 of an incident or an episode's first report at ``at`` (``trigger``), given the
    (time, trigger) of the other kind (``others``: reports for an incident, incidents for a
    report), and the dues already queued for ``trigger`` (``queued``).

    SG08 applies to ``trigger`` when one of the others is in the window at or before it;
    otherwise its due is only a wake-up marker (unless one of ``queued`` already wakes the
    child then). One of the others in the window at or after it arrived first (within the
    lateness): its own SG08 can apply now. That due is still ahead of the clock, and already
    a wake-up time (an entry or a marker came with it)."""
    lo, hi = at - p.cumulative_window, at + p.cumulative_window
    before = False
    for other_at, other in others:
        if not lo <= other_at <= hi:
            continue
        if other_at <= at:
            before = True
        if other_at >= at:
            due = other_at + p.cumulative_deadline
            if due >= clock:
                heapq.heappush(push, (due, _SG08, other))
    sg08 = at + p.cumulative_deadline
    if before:
        heapq.heappush(push, (sg08, _SG08, trigger))
    elif sg08 not in queued:
        heapq.heappush(push, (sg08, _MARKER, trigger))


def _graded_low(ep: Episode, but: Step | None) -> bool:
    """Whether a REPORTED or RISK_REVIEWED step of ``ep`` other than ``but`` is graded low."""
    for s in ep.steps:  # noqa: SIM110
        if s.risk in _LOW and s is not but and s.status in _GRADING:
            return True
    return False


def advance(case: CaseState, clock: Millis, ctx: Context) -> list[Alert]:
    """Evaluate every deadline the clock has passed (``due < clock``)."""
    out: list[Alert] = []
    pending = case.pending
    alerts = case.alerts
    while pending and pending[0][0] < clock:
        due, rule, trigger = heapq.heappop(pending)
        if not rule or (rule, trigger) in alerts:  # a wake marker, or raised already
            continue
        alert = _evaluate(case, _RULE_IDS[rule], trigger, ctx)
        if alert is not None and alert.due_at == due:
            alerts[(rule, trigger)] = alert
            out.append(alert)
        # A due that no longer matches the facts (an earlier report arrived later) is stale:
        # the entry pushed for the new due is evaluated in its turn.
    return out


def prune(case: CaseState, horizon: Millis) -> list[Alert]:
    """Drop facts older than ``horizon``, and the alerts whose deadline is older than it.

    Returns the alerts dropped: they can no longer change, so they are final. An alert goes by
    its deadline, not with its trigger: an action resolves it up to the retention after its
    deadline (see :func:`_resolution`), and until then it must still be there, however the
    clock was cut into ticks.
    """
    if horizon <= case.pruned_to:
        return []
    case.pruned_to = horizon
    # Plain loops over these few items, not comprehensions: a comprehension's own frame costs
    # about what its items do (measured: 7.5 us -> 6.3 us a pruning that drops facts).
    final: list[Alert] = []
    alerts = case.alerts
    if alerts:
        for alert in alerts.values():
            if alert.due_at < horizon:
                final.append(alert)
        for alert in final:
            del alerts[(alert.rule_id, alert.trigger_id)]
    if horizon <= case.oldest:
        # No fact is that old: most prunings of an active child end here (measured: the
        # rebuilt ``seen`` dict alone cost 3.4 us per pruning, one per deadline wake-up).
        return final
    old: list[str] = []
    incidents = case.incidents
    for k, f in incidents.items():
        if f.at < horizon:
            old.append(k)
    for k in old:
        del incidents[k]
    old.clear()
    episodes = case.episodes
    for k, e in episodes.items():
        if e.last_at < horizon:
            old.append(k)
    for k in old:
        del episodes[k]
        case.sg05.pop(k, None)
    referrals = case.referrals
    if referrals and referrals[0].at < horizon:
        case.referrals = [r for r in referrals if r.at >= horizon]
    # ``seen`` in place (what stays keeps its order): most of it stays, and deleting the few
    # that go costs less than copying the many that stay.
    old.clear()
    seen = case.seen
    oldest = _FOREVER
    for k, t in seen.items():
        if t < horizon:
            old.append(k)
        elif t < oldest:
            oldest = t
    for k in old:
        del seen[k]
    case.oldest = oldest
    return final


def quiet_from(case: CaseState) -> Millis:
    """After this event time plus the retention, nothing about the child can change: its
    latest fact, or the latest deadline of its alerts (an action may resolve one until the
    retention after it)."""
    latest = case.latest
    for alert in case.alerts.values():
        if alert.due_at > latest:
            latest = alert.due_at
    return latest


def drain(case: CaseState) -> list[Alert]:
    """Every alert the case holds (for the end of a backtest)."""
    return list(case.alerts.values())


# --------------------------------------------------------------------------------------------
# Resolution by an event in order


def _resolved_by_referral(case: CaseState, r: ReferralFact, ctx: Context) -> list[Alert]:
    """The alerts a referral in order resolves: it is the only new fact, and every alert's
    ``resolved_at`` is already the earliest action among the facts seen before it."""
    if r.agency is _CSC:
        rules = _CSC_RULES
    elif r.agency is _SCHOOL:
        rules = _SCHOOL_RULES
    else:
        return []
    at = r.at
    out: list[Alert] = []
    alerts = case.alerts
    for key, alert in alerts.items():
        rule = key[0]
        if (
            rule not in rules
            or at <= alert.due_at
            or at > alert.due_at + ctx.params.retention
            or alert.status is _WITHDRAWN
            or (alert.resolved_at is not None and alert.resolved_at <= at)
        ):
            continue
        if rule in _INCIDENT_RULES and r.incident_id is not None and r.incident_id != key[1]:
            continue  # a referral about another incident
        new = _replace_status(alert, _RESOLVED, at, ctx)
        alerts[key] = new
        out.append(new)
    return out


def _resolved_by_step(case: CaseState, ep: Episode, s: Step, ctx: Context) -> list[Alert]:
    """The alerts of its own episode that a missing step in order resolves (as above)."""
    at, status = s.at, s.status
    regrade = status in _GRADING and s.risk in _RAISED_GRADE
    out: list[Alert] = []
    alerts = case.alerts
    for key, alert in alerts.items():
        if key[1] != ep.episode_id or alert.status is _WITHDRAWN:
            continue
        rule, due = key[0], alert.due_at
        if rule == _SG03:
            resolves = status is _REVIEWED and at > due
        elif rule == _SG06:
            resolves = status is _INTERVIEW and at > due
        elif rule == _SG07:
            resolves = at > due and (status is _RETURNED or regrade)
        elif rule == _SG04:
            resolves = regrade and at >= due and s != ep.report
        else:
            continue
        if not resolves or (alert.resolved_at is not None and alert.resolved_at <= at):
            continue
        if at > due + ctx.params.retention:
            continue  # beyond the resolution window (see _resolution)
        new = _replace_status(alert, _RESOLVED, at, ctx)
        alerts[key] = new
        out.append(new)
    return out


# --------------------------------------------------------------------------------------------
# Re-evaluation after a late event, and status refresh


def _reevaluate(case: CaseState, clock: Millis, ctx: Context, since: Millis) -> list[Alert]:
    """A late event at ``since`` arrived (or one moved an anchor): evaluate every deadline
    already passed, refresh every alert it can touch. Every rule is a candidate here."""
    out = _refresh(case, ctx, check_breach=True, since=since)
    candidates: list[tuple[Millis, str, str]] = []
    p = ctx.params
    for f in case.incidents.values():
        candidates.append((f.at + p.da_referral_deadline, _SG01, f.incident_id))
        candidates.append((_encompass_due(p, f.at), _SG02, f.incident_id))
        candidates.append((f.at + p.cumulative_deadline, _SG08, f.incident_id))
    for ep in case.episodes.values():
        if ep.report is not None:
            r = ep.report.at
            candidates.append((r + p.review_deadline, _SG03, ep.episode_id))
            candidates.append((r + p.repeat_referral_deadline, _SG05, ep.episode_id))
            candidates.append((r + p.long_missing_deadline, _SG07, ep.episode_id))
            candidates.append((r + p.cumulative_deadline, _SG08, ep.episode_id))
            candidates.append((r, _SG04, ep.episode_id))
        if ep.returned is not None:
            candidates.append((ep.returned.at + p.return_interview_deadline, _SG06, ep.episode_id))
    candidates.sort()
    for due, rule, trigger in candidates:
        if (rule, trigger) in case.alerts:
            continue
        if due >= clock and rule != _SG04:
            heapq.heappush(case.pending, (due, rule, trigger))
            continue
        alert = _evaluate(case, _RULE_IDS[rule], trigger, ctx)
        if alert is not None:
            case.alerts[(rule, trigger)] = alert
            out.append(alert)
    return out


def _refresh(
    case: CaseState, ctx: Context, *, check_breach: bool, since: Millis | None = None
) -> list[Alert]:
    """Recompute alerts from the facts; return the versions that changed.

    Without ``check_breach`` only the resolution can change. With it (a late event at
    ``since``, or one that moved an episode's first report or return) each alert whose deadline
    is not before ``since`` is evaluated again: one whose rule turns out to have been met in
    time becomes WITHDRAWN. Earlier deadlines cannot depend on the event.

    A resolution never goes away: facts only disappear by pruning, and an action that was
    taken stays taken, so ``resolved_at`` only ever moves earlier.
    """
    out: list[Alert] = []
    for key, alert in case.alerts.items():
        rule, trigger = key
        rule_id = _RULE_IDS[rule]
        if check_breach and (since is None or alert.due_at >= since):
            fresh = _evaluate(case, rule_id, trigger, ctx)
            if fresh is None:
                if alert.status is _WITHDRAWN:
                    continue
                if trigger not in case.incidents and trigger not in case.episodes:
                    continue  # its facts aged out: nothing shows it was met, keep it
                new = _replace_status(alert, _WITHDRAWN, _met_at(case, alert), ctx)
            else:
                if alert.status is not _WITHDRAWN:
                    resolved_at = _earliest(fresh.resolved_at, alert.resolved_at)
                    if resolved_at != fresh.resolved_at:
                        fresh = _replace_status(fresh, _RESOLVED, resolved_at, ctx)
                if _content(fresh) == _content(alert):
                    continue
                new = fresh
        else:
            if alert.status is _WITHDRAWN:
                continue
            found = _resolution(case, rule_id, trigger, alert.due_at, ctx.params.retention)
            resolved_at = _earliest(found, alert.resolved_at)
            if resolved_at == alert.resolved_at:
                continue
            new = _replace_status(alert, _RESOLVED, resolved_at, ctx)
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
    return new_alert(
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
    if rule in (_SG01, _SG02, _SG05, _SG08):
        agency = _SCHOOL if rule is _SG02 else _CSC
        times = [r.at for r in case.referrals if r.agency is agency and r.at <= due]
    else:
        ep = case.episodes.get(trigger)
        if ep is not None:
            times = [s.at for s in ep.steps if s.at <= due and s.status is not _REPORTED]
    return max(times) if times else None


# --------------------------------------------------------------------------------------------
# SG04: immediate


def _check_sg04(case: CaseState, event: Event, ctx: Context) -> list[Alert]:
    """SG04 fires at the report; a later-arriving earlier event can complete its condition:
    another report or a domestic abuse incident in the 90 days before, or a step of the same
    episode at or before the report that says the child is looked after."""
    episodes: Iterable[Episode] = case.episodes.values()
    if type(event) is MissingReport:
        if event.status is _REPORTED:
            lo, hi = event.occurred_at, event.occurred_at + ctx.params.lookback
        elif event.looked_after:
            own = case.episodes.get(event.episode_id)
            if own is None or own.report is None:
                return []
            lo = hi = own.report.at
            if event.occurred_at > lo:
                return []  # after the report: it says nothing of the report
            episodes = (own,)
        else:
            return []
    elif type(event) is Incident and event.incident_type is _DOMESTIC_ABUSE:
        lo, hi = event.occurred_at, event.occurred_at + ctx.params.lookback
    else:
        return []
    out: list[Alert] = []
    for ep in episodes:
        rep = ep.report
        if rep is None or not lo <= rep.at <= hi or rep.risk not in _UNDERGRADED:
            continue
        key = (_SG04, ep.episode_id)
        alert = _evaluate(case, _SG04, ep.episode_id, ctx)
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
    resolved_at = _resolution(case, rule, trigger, due, ctx.params.retention)
    summary, action = describe(rule, due, facts)
    return new_alert(
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
        _RESOLVED if resolved_at is not None else _RAISED,
        resolved_at,
        ctx.mode,
        ctx.now,
    )


_Found = tuple[Severity, Millis, tuple[str, ...], dict[str, object]]

_ENCOMPASS_DUE: dict[tuple[str, object], dict[int, Millis | None]] = {}
_CACHE_HOURS: Final = 2_000
"""About twelve weeks of hours: events come in time order and an SG02 is evaluated a day or
three after its incident, so the cache is emptied when full and memory stays flat."""


def _encompass_due(p: Params, at: Millis) -> Millis:
    """``p.encompass_due(at)``, cached per UTC hour whose first and last instants have the same
    due (it depends only on the local date: in Europe/London that is every hour; an hour in
    which the local date changes, in a zone half an hour off UTC, is computed each time).
    Measured: 2.0 us -> 0.2 us, twice per domestic abuse incident."""
    by_hour = _ENCOMPASS_DUE.get((p.encompass_zone, p.encompass_time))
    if by_hour is None:
        by_hour = _ENCOMPASS_DUE[(p.encompass_zone, p.encompass_time)] = {}
    hour = at // HOUR
    if hour in by_hour:
        due = by_hour[hour]
        if due is not None:
            return due
    else:
        first = p.encompass_due(hour * HOUR)
        due = first if first == p.encompass_due(hour * HOUR + HOUR - 1) else None
        if len(by_hour) >= _CACHE_HOURS:
            by_hour.clear()
        by_hour[hour] = due
        if due is not None:
            return due
    return p.encompass_due(at)


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
    severity = _HIGH if f.present or f.dash_high else _MEDIUM
    return severity, due, (f.event_id,), {"incident": f}


def _sg02(case: CaseState, trigger: str, p: Params) -> _Found | None:
    f = case.incidents.get(trigger)
    if f is None or (f.age is not None and not 4 <= f.age <= 17):
        return None
    due = _encompass_due(p, f.at)
    if _referral_met(case, _SCHOOL, f.incident_id, f.at, due):
        return None
    return _MEDIUM, due, (f.event_id,), {"incident": f}


def _sg03(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.report is None or ep.report.risk not in _LOW:
        return None
    r = ep.report.at
    due = r + p.review_deadline
    for s in ep.steps:
        if (s.status is _REVIEWED and r <= s.at <= due) or (s.status is _RETURNED and s.at < due):
            return None
    severity = _HIGH if ep.looked_after_by(due) else _MEDIUM
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
    return _HIGH, rep.at, evidence, {"report": rep, "prior": len(prior)}


def _reports_between(case: CaseState, lo: Millis, hi: Millis) -> list[Step]:
    found: list[Step] = []
    for e in case.episodes.values():
        rep = e.report
        if rep is not None and lo <= rep.at <= hi:
            found.append(rep)
    return found


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
    return _HIGH, due, evidence, {"report": ep.report, "episodes": len(reports)}


def _sg06(case: CaseState, trigger: str, p: Params) -> _Found | None:
    ep = case.episodes.get(trigger)
    if ep is None or ep.returned is None:
        return None
    ret = ep.returned.at
    due = ret + p.return_interview_deadline
    for s in ep.steps:
        if s.status is _INTERVIEW and ret <= s.at <= due:
            return None
    others = 0
    lo, own = ret - p.lookback, ep.report
    for other in case.episodes.values():
        rep = other.report
        if rep is not None and lo <= rep.at <= ret and rep is not own:
            others += 1
    high = ep.looked_after_by(due) or others >= p.return_repeat_episodes
    severity = _HIGH if high else _MEDIUM
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
    return _HIGH, due, (ep.report.event_id,), {"report": ep.report, "risk": risk}


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
        _HIGH,
        due,
        (later_event, earlier_event),
        {"later": kind, "later_at": later_at, "earlier_at": earlier_at},
    )


_RULES = {
    _SG01: _sg01,
    _SG02: _sg02,
    _SG03: _sg03,
    _SG04: _sg04,
    _SG05: _sg05,
    _SG06: _sg06,
    _SG07: _sg07,
    _SG08: _sg08,
}


# --------------------------------------------------------------------------------------------
# Resolution: the action that would have met the rule, taken after its deadline.


def _resolution(
    case: CaseState, rule: RuleId, trigger: str, due: Millis, window: Millis
) -> Millis | None:
    """Event time of the first action after ``due`` that resolves the alert, if any, up to
    ``window`` (the retention) after ``due``.

    The window makes "taken after its deadline" a rule rather than an accident of pruning:
    found on a 10,000-event world, an action 188 days late resolved an alert in the Kafka
    engine (its clock moves in ticks, so it pruned later) but not inline.
    """
    found = _first_action(case, rule, trigger, due)
    return found if found is not None and found <= due + window else None


def _first_action(case: CaseState, rule: RuleId, trigger: str, due: Millis) -> Millis | None:
    # Plain loops keeping the minimum: no list is built (this runs for every alert raised).
    first: Millis | None = None
    if rule is _SG01 or rule is _SG02:
        agency = _SCHOOL if rule is _SG02 else _CSC
        for r in case.referrals:
            at = r.at
            if (
                at > due
                and r.agency is agency
                and (r.incident_id is None or r.incident_id == trigger)
                and (first is None or at < first)
            ):
                first = at
        return first
    if rule is _SG05 or rule is _SG08:
        for r in case.referrals:
            at = r.at
            if at > due and r.agency is _CSC and (first is None or at < first):
                first = at
        return first
    ep = case.episodes.get(trigger)
    if ep is None:
        return None
    if rule is _SG03:
        for s in ep.steps:
            if s.status is _REVIEWED and s.at > due and (first is None or s.at < first):
                first = s.at
    elif rule is _SG06:
        for s in ep.steps:
            if s.status is _INTERVIEW and s.at > due and (first is None or s.at < first):
                first = s.at
    elif rule is _SG07:
        for s in ep.steps:
            if (
                s.at > due
                and (s.status is _RETURNED or (s.status in _GRADING and s.risk in _RAISED_GRADE))
                and (first is None or s.at < first)
            ):
                first = s.at
    else:  # SG04: a re-grade at or after the report
        report = ep.report
        for s in ep.steps:
            if (
                s.status in _GRADING
                and s.risk in _RAISED_GRADE
                and s.at >= due
                and s != report
                and (first is None or s.at < first)
            ):
                first = s.at
    return first
