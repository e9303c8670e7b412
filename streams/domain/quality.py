"""Quality, not quantity (SPEC section 6): the measures of one period, from events and alerts.

A :class:`QualityAccumulator` for the period ``[start, end)`` (start included, end excluded) is
fed every event of the input in event-time order and every alert the detector produced for the
same input (in any order, before or after the events); :meth:`QualityAccumulator.result` then
gives a frozen :class:`QualityReport`. It reads no clock and does no I/O:
:mod:`streams.report` reads the files and runs the detector.

Each measure counts *items* whose anchor time is in the period and looks up the one alert its
rule could raise for the item; an alert RAISED or RESOLVED means the deadline was missed (late
when RESOLVED), a WITHDRAWN one means it was in fact met. An item whose deadline is after the
end of the input cannot be judged yet: it is *pending*, reported apart, not in the denominator.

========================  ==============================================  ===================
measure (rule)            item, anchored in the period at                 counted in numerator
========================  ==============================================  ===================
da_referral_present       (child present, DOMESTIC_ABUSE incident):       no SG01 alert
(SG01)                    the incident time
da_referral_not_present   the same, child listed but not present          no SG01 alert
encompass_on_time (SG02)  (child aged 4-17 or unknown, incident)          no SG02 alert
low_risk_reviewed (SG03)  episode whose first REPORTED step, graded        no SG03 alert
                          LOW / NO_APPARENT_RISK / ABSENT, is in period
lac_graded_absent (SG04)  looked-after episode (a step at or before the   graded ABSENT or
                          report says so): the first REPORTED step         NO_APPARENT_RISK
return_interview (SG06)   episode: its first RETURNED step                no SG06 alert
repeat_missing_referred   SG05 obligation: the report that opened it      no SG05 alert
(SG05)
========================  ==============================================  ===================

SG05 openings are computed here, with the reading of docs/semantics.md, because the core only
shows the obligations that were missed: per child, in (report time, episode_id) order, a first
REPORTED step opens one when the distinct episodes reported in ``[r - lookback, r]`` number
``repeat_episodes`` or more and none opened in ``[r - lookback, r)`` before it. Reports at the
same instant are decided together once a later event shows that all of them have arrived.

Grades (children with any event in the period, an incident counting for every child it lists):
*good* with no alert, *requires improvement* with alerts none of which is an open HIGH,
*inadequate* with a HIGH alert still RAISED at ``end``. The alerts that count are those with
``raised_at`` in the period and status RAISED or RESOLVED; a HIGH alert is still RAISED at
``end`` when its ``resolved_at`` is None or after ``end``.

Memory is proportional to the items and children of the period, plus two rolling windows that
mirror what the core keeps: the episodes seen within ``params.retention`` (so a step of an
episode first reported before the period is not a new report) and, per child, the reports of the
last ``params.lookback`` (for SG05).

>>> from streams.domain.events import HouseholdChild, Incident, IncidentType
>>> from streams.domain.time import DAY, parse_rfc3339
>>> start = parse_rfc3339("2024-03-04T00:00:00Z")
>>> acc = QualityAccumulator(start, start + 7 * DAY)
>>> kids = (HouseholdChild("C1", True, 9),)
>>> acc.add_event(Incident("e1", start + DAY, "I1", IncidentType.DOMESTIC_ABUSE, None, kids))
>>> report = acc.result(input_end=start + 30 * DAY)
>>> m = report.measure("da_referral_present")
>>> (m.numerator, m.denominator, m.pending, m.share)
(1, 1, 0, 1.0)
>>> report.grades
GradeCounts(good=1, requires_improvement=0, inadequate=0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from streams.domain.alerts import Alert, AlertStatus, RuleId, Severity
from streams.domain.events import (
    LOW_RISK,
    Event,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    RiskLevel,
    child_ids,
)
from streams.domain.params import Params
from streams.domain.time import DAY, HOUR, MINUTE, Millis, to_rfc3339

_NEVER = -(2**62)
_UNDERGRADED = frozenset({RiskLevel.ABSENT, RiskLevel.NO_APPARENT_RISK})
_SWEEP_EVERY: Millis = DAY
"""Event time between two sweeps of the rolling windows (pruning is not time-critical)."""


# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, slots=True)
class Measure:
    """One quality measure of the period: numerator out of denominator, and what is pending."""

    key: str
    """Stable name, for JSON and scripts (``da_referral_present``, ...)."""
    rule_id: RuleId
    """The rule whose deadline the measure judges."""
    title: str
    """The measure in plain words, with the deadline from the parameters."""
    numerator: int
    """Items that met the deadline (for ``lac_graded_absent``: graded absent or no apparent
    risk)."""
    denominator: int
    """Items of the period whose deadline is at or before the end of the input."""
    pending: int = 0
    """Items of the period whose deadline is after the end of the input: not yet judged."""
    alerted: int = 0
    """Items with an alert of ``rule_id`` RAISED or RESOLVED (the deadline was missed)."""
    late: int = 0
    """Of ``alerted``, RESOLVED: the action was taken, after the deadline."""
    higher_is_better: bool = True
    """False for ``lac_graded_absent``, where the share counts a poor practice."""

    @property
    def share(self) -> float | None:
        """``numerator / denominator``, or None when there is nothing to judge."""
        return self.numerator / self.denominator if self.denominator else None


class Grade(StrEnum):
    GOOD = "good"
    REQUIRES_IMPROVEMENT = "requires improvement"
    INADEQUATE = "inadequate"


@dataclass(frozen=True, slots=True)
class GradeCounts:
    """Children of the period by grade."""

    good: int = 0
    requires_improvement: int = 0
    inadequate: int = 0

    @property
    def children(self) -> int:
        """Children with events in the period (every one of them has a grade)."""
        return self.good + self.requires_improvement + self.inadequate

    def count(self, grade: Grade) -> int:
        return {
            Grade.GOOD: self.good,
            Grade.REQUIRES_IMPROVEMENT: self.requires_improvement,
            Grade.INADEQUATE: self.inadequate,
        }[grade]

    def share(self, grade: Grade) -> float | None:
        return self.count(grade) / self.children if self.children else None


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The quality measures and grades of the period ``[start, end)``."""

    start: Millis
    """First instant of the period (included)."""
    end: Millis
    """End of the period (excluded)."""
    input_end: Millis | None
    """The end of the input (the detector's ``until``): later deadlines are pending."""
    measures: tuple[Measure, ...]
    """In the order of SPEC section 6."""
    grades: GradeCounts
    inadequate_children: tuple[str, ...]
    """The child_ids graded inadequate, sorted (for practitioners; never for logs)."""

    def measure(self, key: str) -> Measure:
        for m in self.measures:
            if m.key == key:
                return m
        raise KeyError(key)


# --------------------------------------------------------------------------------------------
# The accumulator


@dataclass(slots=True)
class _DaPair:
    at: Millis
    present: bool
    encompass: bool
    """Eligible for SG02: aged 4 to 17 or age unknown."""


@dataclass(slots=True)
class _Episode:
    """What the measures need of one episode (all times are of its earliest such step)."""

    last_at: Millis
    report_at: Millis | None = None
    report_event: str = ""
    report_risk: RiskLevel | None = None
    returned_at: Millis | None = None
    looked_after_at: Millis | None = None
    """The first step that says looked_after."""


@dataclass(slots=True)
class _RepeatWindow:
    """One child's reports for SG05: decided ones in the look-back, and those of the latest
    instant, which wait until every report of that instant has arrived."""

    reports: deque[Millis] = field(default_factory=deque)
    pending: list[str] = field(default_factory=list)
    """episode_ids first reported at ``pending_at``, not yet decided."""
    pending_at: Millis = _NEVER
    opened_at: Millis | None = None
    """Report time of the latest obligation opened."""

    def copy(self) -> _RepeatWindow:
        return _RepeatWindow(
            deque(self.reports), list(self.pending), self.pending_at, self.opened_at
        )


class QualityAccumulator:
    """Streams events and alerts into the measures of one period; see the module docstring.

    ``add_event`` needs events in event-time order (as :func:`streams.history.ordered_events`
    yields them), because SG05 openings are decided as the reports go by; it raises
    ``ValueError`` otherwise. ``add_alert`` takes alert versions in any order relative to the
    events; a later version of the same ``alert_id`` replaces an earlier one.
    """

    def __init__(self, start: Millis, end: Millis, params: Params | None = None) -> None:
        if end <= start:
            raise ValueError(
                f"the period must end after it starts, received [{to_rfc3339(start)}, "
                f"{to_rfc3339(end)})"
            )
        self.start = start
        self.end = end
        self.params = p = params or Params()
        self._alert_horizon = max(
            end
            + max(
                p.da_referral_deadline,
                p.review_deadline,
                p.repeat_referral_deadline,
                p.return_interview_deadline,
            ),
            p.encompass_due(end),  # non-decreasing in the incident time
        )
        """The latest ``raised_at`` of an alert on an item of the period."""
        self._latest: Millis = _NEVER
        self._next_sweep: Millis = _NEVER
        self._children: set[str] = set()
        self._da: dict[tuple[str, str], _DaPair] = {}
        """(child_id, incident_id) -> the pair, for DOMESTIC_ABUSE incidents in the period."""
        self._episodes: dict[tuple[str, str], _Episode] = {}
        """(child_id, episode_id) -> episode, for those seen within the retention."""
        self._repeat: dict[str, _RepeatWindow] = {}
        self._obligations: dict[tuple[str, str], Millis] = {}
        """(child_id, episode_id) -> report time, for SG05 obligations opened in the period."""
        self._alerts: dict[str, Alert] = {}
        """alert_id -> latest version, for alerts raised in [start, alert horizon]."""

    # -- input -----------------------------------------------------------------------------

    def add_event(self, event: Event) -> None:
        """One input event (a duplicate ``event_id`` changes nothing)."""
        at = event.occurred_at
        if at < self._latest:
            raise ValueError(
                f"quality measures need events in event-time order: event {event.event_id!r} "
                f"at {to_rfc3339(at)} came after {to_rfc3339(self._latest)}"
            )
        if at > self._latest:
            self._latest = at
            if at >= self._next_sweep:
                self._sweep(at)
                self._next_sweep = at + _SWEEP_EVERY
        if self.start <= at < self.end:
            self._children.update(child_ids(event))
        if type(event) is Incident:
            self._incident(event)
        elif type(event) is MissingReport and at < self.end:
            # A step at or after the end cannot anchor an item of the period: every anchor is
            # the earliest step of its kind, and looked-after counts up to the report.
            self._step(event)

    def add_alert(self, alert: Alert) -> None:
        """One alert version; only those that can bear on the period are kept."""
        if self.start <= alert.raised_at <= self._alert_horizon:
            self._alerts[alert.alert_id] = alert

    def _incident(self, event: Incident) -> None:
        if event.incident_type is not IncidentType.DOMESTIC_ABUSE:
            return
        at = event.occurred_at
        in_period = self.start <= at < self.end
        seen: set[str] = set()
        for child in event.children:
            if child.child_id in seen:
                continue  # as the core: the first listing of a child counts
            seen.add(child.child_id)
            key = (child.child_id, event.incident_id)
            if in_period:
                eligible = child.age is None or 4 <= child.age <= 17
                self._da[key] = _DaPair(at, child.present, eligible)
            else:
                # The same incident_id again, outside the period: the core keeps the last.
                self._da.pop(key, None)

    def _step(self, event: MissingReport) -> None:
        at = event.occurred_at
        key = (event.child_id, event.episode_id)
        ep = self._episodes.get(key)
        if ep is None:
            ep = self._episodes[key] = _Episode(at)
        ep.last_at = at
        if event.looked_after and ep.looked_after_at is None:
            ep.looked_after_at = at
        status = event.status
        if status is MissingStatus.REPORTED:
            if ep.report_at is None:
                ep.report_at, ep.report_event, ep.report_risk = at, event.event_id, event.risk_level
                self._repeat_report(event.child_id, event.episode_id, at)
            elif at == ep.report_at and event.event_id < ep.report_event:
                # Two REPORTED steps at the same instant: the core's report is the lesser id.
                ep.report_event, ep.report_risk = event.event_id, event.risk_level
        elif status is MissingStatus.RETURNED and ep.returned_at is None:
            ep.returned_at = at

    def _repeat_report(self, child_id: str, episode_id: str, at: Millis) -> None:
        w = self._repeat.get(child_id)
        if w is None:
            w = self._repeat[child_id] = _RepeatWindow()
        if w.pending and at > w.pending_at:
            self._record(child_id, _decide(w, self.params))
        w.pending.append(episode_id)
        w.pending_at = at

    def _record(self, child_id: str, opened: list[tuple[str, Millis]]) -> None:
        for episode_id, r in opened:
            if self.start <= r < self.end:
                self._obligations[(child_id, episode_id)] = r

    def _sweep(self, now: Millis) -> None:
        """Decide the SG05 reports every later event has completed; forget what no longer
        matters: episodes quiet for the retention (the core forgets them too) unless they
        anchor an item of the period, and look-back windows with nothing left in them."""
        p = self.params
        horizon = now - p.retention
        gone = [
            k for k, ep in self._episodes.items() if ep.last_at < horizon and not self._anchors(ep)
        ]
        for k in gone:
            del self._episodes[k]
        lo = now - p.lookback
        quiet: list[str] = []
        for child_id, w in self._repeat.items():
            if w.pending and w.pending_at < now:
                self._record(child_id, _decide(w, p))
            while w.reports and w.reports[0] < lo:
                w.reports.popleft()
            if not w.reports and not w.pending and (w.opened_at is None or w.opened_at < lo):
                quiet.append(child_id)
        for child_id in quiet:
            del self._repeat[child_id]

    def _in_period(self, at: Millis | None) -> bool:
        return at is not None and self.start <= at < self.end

    def _anchors(self, ep: _Episode) -> bool:
        return self._in_period(ep.report_at) or self._in_period(ep.returned_at)

    # -- output ----------------------------------------------------------------------------

    def result(self, input_end: Millis | None = None) -> QualityReport:
        """The report, judging deadlines up to ``input_end`` (default: the latest event time
        seen). It does not change the accumulator: more input may follow."""
        p = self.params
        if input_end is None and self._latest != _NEVER:
            input_end = self._latest
        obligations = dict(self._obligations)
        for child_id, w in self._repeat.items():
            if w.pending:
                for episode_id, r in _decide(w.copy(), p):
                    if self.start <= r < self.end:
                        obligations[(child_id, episode_id)] = r
        found: dict[tuple[str, str, str], Alert] = {
            (a.rule_id, a.child_id, a.trigger_id): a
            for a in self._alerts.values()
            if a.status is not AlertStatus.WITHDRAWN
        }

        def tally(
            key: str, rule: RuleId, title: str, items: Iterable[tuple[str, str, Millis]]
        ) -> Measure:
            decided = pending = alerted = late = 0
            for child_id, trigger, due in items:
                if input_end is None or due > input_end:
                    pending += 1
                    continue
                decided += 1
                alert = found.get((rule, child_id, trigger))
                if alert is not None:
                    alerted += 1
                    late += alert.status is AlertStatus.RESOLVED
            return Measure(key, rule, title, decided - alerted, decided, pending, alerted, late)

        da = self._da
        episodes = self._episodes
        reported = [(k, ep) for k, ep in episodes.items() if self._in_period(ep.report_at)]
        sg01 = p.da_referral_deadline
        measures = [
            tally(
                "da_referral_present",
                RuleId.SG01,
                "Domestic abuse, child present: referred to children's social care "
                f"within {_hours(sg01)}",
                ((c, i, f.at + sg01) for (c, i), f in da.items() if f.present),
            ),
            tally(
                "da_referral_not_present",
                RuleId.SG01,
                "Domestic abuse, child not present: referred to children's social care "
                f"within {_hours(sg01)}",
                ((c, i, f.at + sg01) for (c, i), f in da.items() if not f.present),
            ),
            tally(
                "encompass_on_time",
                RuleId.SG02,
                "Operation Encompass: school told by "
                f"{p.encompass_time.strftime('%H:%M')} the next school day",
                ((c, i, p.encompass_due(f.at)) for (c, i), f in da.items() if f.encompass),
            ),
            tally(
                "low_risk_reviewed",
                RuleId.SG03,
                f"Low-risk missing episodes: risk reviewed within {_hours(p.review_deadline)}",
                (
                    (c, e, ep.report_at + p.review_deadline)
                    for (c, e), ep in reported
                    if ep.report_at is not None and ep.report_risk in LOW_RISK
                ),
            ),
            self._lac_measure(reported, found),
            tally(
                "return_interview",
                RuleId.SG06,
                "Return home interviews within " + _hours(p.return_interview_deadline),
                (
                    (c, e, ep.returned_at + p.return_interview_deadline)
                    for (c, e), ep in episodes.items()
                    if ep.returned_at is not None and self._in_period(ep.returned_at)
                ),
            ),
            tally(
                "repeat_missing_referred",
                RuleId.SG05,
                f"Repeat missing ({p.repeat_episodes}+ episodes in {p.lookback // DAY} days): "
                f"referred to children's social care within {_hours(p.repeat_referral_deadline)}",
                ((c, e, r + p.repeat_referral_deadline) for (c, e), r in obligations.items()),
            ),
        ]
        grades, inadequate = self._grades()
        return QualityReport(self.start, self.end, input_end, tuple(measures), grades, inadequate)

    def _lac_measure(
        self,
        reported: list[tuple[tuple[str, str], _Episode]],
        found: dict[tuple[str, str, str], Alert],
    ) -> Measure:
        """Looked-after episodes reported in the period, graded ABSENT or NO_APPARENT_RISK;
        ``alerted`` counts those that raised SG04. No deadline: nothing is pending."""
        graded = total = alerted = late = 0
        for (child_id, episode_id), ep in reported:
            lac = ep.looked_after_at
            if ep.report_at is None or lac is None or lac > ep.report_at:
                continue
            total += 1
            if ep.report_risk in _UNDERGRADED:
                graded += 1
            alert = found.get((RuleId.SG04, child_id, episode_id))
            if alert is not None:
                alerted += 1
                late += alert.status is AlertStatus.RESOLVED
        return Measure(
            "lac_graded_absent",
            RuleId.SG04,
            "Looked-after children's episodes graded absent or no apparent risk",
            graded,
            total,
            0,
            alerted,
            late,
            higher_is_better=False,
        )

    def _grades(self) -> tuple[GradeCounts, tuple[str, ...]]:
        alerted: set[str] = set()
        inadequate: set[str] = set()
        for a in self._alerts.values():
            if (
                a.status is AlertStatus.WITHDRAWN
                or not self.start <= a.raised_at < self.end
                or a.child_id not in self._children
            ):
                continue
            alerted.add(a.child_id)
            if a.severity is Severity.HIGH and (a.resolved_at is None or a.resolved_at > self.end):
                inadequate.add(a.child_id)
        counts = GradeCounts(
            good=len(self._children) - len(alerted),
            requires_improvement=len(alerted) - len(inadequate),
            inadequate=len(inadequate),
        )
        return counts, tuple(sorted(inadequate))


def _decide(w: _RepeatWindow, p: Params) -> list[tuple[str, Millis]]:
    """Decide the reports waiting at ``w.pending_at``, in episode_id order; return the
    (episode_id, report time) of those that open an SG05 obligation. Updates ``w``."""
    r = w.pending_at
    lo = r - p.lookback
    reports = w.reports
    while reports and reports[0] < lo:
        reports.popleft()
    count = len(reports) + len(w.pending)  # distinct episodes reported in [r - lookback, r]
    opened: list[tuple[str, Millis]] = []
    for episode_id in sorted(w.pending):
        if count >= p.repeat_episodes and (w.opened_at is None or w.opened_at < lo):
            w.opened_at = r
            opened.append((episode_id, r))
    reports.extend([r] * len(w.pending))
    w.pending.clear()
    return opened


def _hours(ms: Millis) -> str:
    """``24 h``, ``4 h``, ``72 h``; minutes when the duration is not whole hours."""
    if ms % HOUR == 0:
        return f"{ms // HOUR} h"
    return f"{ms // MINUTE} min"
