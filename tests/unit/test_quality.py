"""SPEC section 6, quality not quantity: the measures and grades of a period.

Measures run the real detector over hand-made events (:func:`streams.report.report_events`);
grades and WITHDRAWN alerts feed the pure accumulator hand-made alerts. The period is
``[T0, T0 + 7 days)`` unless a row says otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity, alert_id_for
from streams.domain.detector import Detector
from streams.domain.events import Agency, Event, IncidentType, RiskLevel, child_ids
from streams.domain.quality import GradeCounts, QualityAccumulator, QualityReport
from streams.domain.time import Millis, parse_rfc3339
from streams.errors import ConfigurationError
from streams.generate import run_generate
from streams.history import ordered_events
from streams.report import parse_date, render_text, report_events, report_to_dict, run_report
from tests.unit.rulekit import da, interview, referral, reported, returned, reviewed, t

START, END = t(), t(days=7)
CSC, SCHOOL = Agency.CHILDRENS_SOCIAL_CARE, Agency.SCHOOL
LOW, MEDIUM_RISK, NAR, ABSENT = (
    RiskLevel.LOW,
    RiskLevel.MEDIUM,
    RiskLevel.NO_APPARENT_RISK,
    RiskLevel.ABSENT,
)
RAISED, RESOLVED, WITHDRAWN = AlertStatus.RAISED, AlertStatus.RESOLVED, AlertStatus.WITHDRAWN
HIGH, MEDIUM = Severity.HIGH, Severity.MEDIUM


def tail() -> Event:
    """A late event of another child, outside the period: every deadline of the period has
    passed by the end of the input."""
    return da("IZ", t(days=30), ("Z", True, 9), kind=IncidentType.OTHER)


def quality(events: Sequence[Event], start: Millis = START, end: Millis = END) -> QualityReport:
    ordered = sorted(events, key=lambda e: e.occurred_at)
    return report_events(ordered, start, end, now=lambda: 0)


# (numerator, denominator, pending, alerted, late)
Row = tuple[list[Event], str, tuple[int, int, int, int, int]]

MEASURES: dict[str, Row] = {
    # ---- SG01: domestic-abuse children referred within 24 h, present / not present ----
    "da present, referred within 24h": (
        [da("I1", t(1), ("C1", True, 9)), referral("C1", t(1, hours=24)), tail()],
        "da_referral_present",
        (1, 1, 0, 0, 0),
    ),
    "da present, referred late: missed, late": (
        [da("I1", t(1), ("C1", True, 9)), referral("C1", t(1, hours=25)), tail()],
        "da_referral_present",
        (0, 1, 0, 1, 1),
    ),
    "da present, never referred": (
        [da("I1", t(1), ("C1", True, 9)), tail()],
        "da_referral_present",
        (0, 1, 0, 1, 0),
    ),
    "da not present is not in the present measure": (
        [da("I1", t(1), ("C1", False, 9)), tail()],
        "da_referral_present",
        (0, 0, 0, 0, 0),
    ),
    "da not present, never referred": (
        [da("I1", t(1), ("C1", False, 9)), tail()],
        "da_referral_not_present",
        (0, 1, 0, 1, 0),
    ),
    "split: present child missed": (
        [da("I1", t(1), ("C1", True, 9), ("C2", False, 9)), referral("C2", t(1, 1)), tail()],
        "da_referral_present",
        (0, 1, 0, 1, 0),
    ),
    "split: not present child referred": (
        [da("I1", t(1), ("C1", True, 9), ("C2", False, 9)), referral("C2", t(1, 1)), tail()],
        "da_referral_not_present",
        (1, 1, 0, 0, 0),
    ),
    "da deadline after the end of the input is pending": (
        [da("I1", t(6), ("C1", True, 9))],
        "da_referral_present",
        (0, 0, 1, 0, 0),
    ),
    "da deadline exactly at the end of the input is judged": (
        [da("I1", t(6), ("C1", True, 9)), da("IZ", t(7), ("Z", True, 9), kind=IncidentType.OTHER)],
        "da_referral_present",
        (0, 1, 0, 1, 0),
    ),
    "da at the start of the period counts": (
        [da("I1", START, ("C1", True, 9)), tail()],
        "da_referral_present",
        (0, 1, 0, 1, 0),
    ),
    "da 1 ms before the start does not count": (
        [da("I1", START - 1, ("C1", True, 9)), tail()],
        "da_referral_present",
        (0, 0, 0, 0, 0),
    ),
    "da 1 ms before the end counts": (
        [da("I1", END - 1, ("C1", True, 9)), tail()],
        "da_referral_present",
        (0, 1, 0, 1, 0),
    ),
    "da at the end does not count": (
        [da("I1", END, ("C1", True, 9)), tail()],
        "da_referral_present",
        (0, 0, 0, 0, 0),
    ),
    "an incident of another type is not domestic abuse": (
        [da("I1", t(1), ("C1", True, 9), kind=IncidentType.VIOLENCE), tail()],
        "da_referral_present",
        (0, 0, 0, 0, 0),
    ),
    # ---- SG02: Operation Encompass ------------------------------------------------------
    "encompass: school told on time": (
        [da("I1", t(1), ("C1", True, 9)), referral("C1", t(1, 3), SCHOOL), tail()],
        "encompass_on_time",
        (1, 1, 0, 0, 0),
    ),
    "encompass: school not told": (
        [da("I1", t(1), ("C1", True, 9)), tail()],
        "encompass_on_time",
        (0, 1, 0, 1, 0),
    ),
    "encompass: age unknown is eligible": (
        [da("I1", t(1), ("C1", True, None)), tail()],
        "encompass_on_time",
        (0, 1, 0, 1, 0),
    ),
    "encompass: ages 4 and 17 eligible, 3 and 18 not": (
        [
            da("I1", t(1), ("C1", True, 3), ("C2", True, 4), ("C3", True, 17), ("C4", True, 18)),
            tail(),
        ],
        "encompass_on_time",
        (0, 2, 0, 2, 0),
    ),
    "encompass: Friday incident due Monday 08:30, input ends Saturday: pending": (
        [da("I1", t(2), ("C1", True, 9)), da("IZ", t(3), ("Z", True, 9), kind=IncidentType.OTHER)],
        "encompass_on_time",
        (0, 0, 1, 0, 0),
    ),
    # ---- SG03: low-risk episodes reviewed in 4 h ----------------------------------------
    "low risk reviewed within 4h": (
        [reported("E1", "C1", t(1), LOW), reviewed("E1", "C1", t(1, 3)), tail()],
        "low_risk_reviewed",
        (1, 1, 0, 0, 0),
    ),
    "low risk reviewed after 4h: late": (
        [reported("E1", "C1", t(1), NAR), reviewed("E1", "C1", t(1, 5)), tail()],
        "low_risk_reviewed",
        (0, 1, 0, 1, 1),
    ),
    "absent is low risk, never reviewed": (
        [reported("E1", "C1", t(1), ABSENT), tail()],
        "low_risk_reviewed",
        (0, 1, 0, 1, 0),
    ),
    "medium risk is not in the measure": (
        [reported("E1", "C1", t(1), MEDIUM_RISK), tail()],
        "low_risk_reviewed",
        (0, 0, 0, 0, 0),
    ),
    "reported before the period, re-reported in it: not a report of the period": (
        [reported("E1", "C1", t(-1), LOW), reported("E1", "C1", t(1), LOW), tail()],
        "low_risk_reviewed",
        (0, 0, 0, 0, 0),
    ),
    "review deadline after the end of the input: pending": (
        [reported("E1", "C1", t(1), LOW), reported("E2", "C2", t(1, 2), MEDIUM_RISK)],
        "low_risk_reviewed",
        (0, 0, 1, 0, 0),
    ),
    # ---- SG04: looked-after episodes graded absent or no apparent risk -----------------
    "lac graded no apparent risk, no warning signs: no SG04": (
        [reported("E1", "C1", t(1), NAR, lac=True), tail()],
        "lac_graded_absent",
        (1, 1, 0, 0, 0),
    ),
    "lac graded absent after another episode: SG04": (
        [
            reported("E0", "C1", t(0.5), MEDIUM_RISK, lac=True),
            reported("E1", "C1", t(1), ABSENT, lac=True),
            tail(),
        ],
        "lac_graded_absent",
        (1, 2, 0, 1, 0),
    ),
    "lac SG04 re-graded later: late": (
        [
            reported("E0", "C1", t(0.5), MEDIUM_RISK, lac=True),
            reported("E1", "C1", t(1), ABSENT, lac=True),
            reviewed("E1", "C1", t(1, 1), MEDIUM_RISK, lac=True),
            tail(),
        ],
        "lac_graded_absent",
        (1, 2, 0, 1, 1),
    ),
    "lac graded low is in the denominator only": (
        [reported("E1", "C1", t(1), LOW, lac=True), tail()],
        "lac_graded_absent",
        (0, 1, 0, 0, 0),
    ),
    "not looked after: not in the measure": (
        [reported("E1", "C1", t(1), NAR), tail()],
        "lac_graded_absent",
        (0, 0, 0, 0, 0),
    ),
    "looked after only after the report: not in the measure": (
        [reported("E1", "C1", t(1), NAR), returned("E1", "C1", t(1, 2), lac=True), tail()],
        "lac_graded_absent",
        (0, 0, 0, 0, 0),
    ),
    # ---- SG06: return interviews within 72 h -------------------------------------------
    "return interview within 72h": (
        [
            reported("E1", "C1", t(1), MEDIUM_RISK),
            returned("E1", "C1", t(1, 5)),
            interview("E1", "C1", t(3)),
            tail(),
        ],
        "return_interview",
        (1, 1, 0, 0, 0),
    ),
    "no return interview": (
        [reported("E1", "C1", t(1), MEDIUM_RISK), returned("E1", "C1", t(1, 5)), tail()],
        "return_interview",
        (0, 1, 0, 1, 0),
    ),
    "reported before the period, returned in it: counts": (
        [reported("E1", "C1", t(-2), MEDIUM_RISK), returned("E1", "C1", t(0, 1)), tail()],
        "return_interview",
        (0, 1, 0, 1, 0),
    ),
    "returned before the period: does not count": (
        [reported("E1", "C1", t(-2), MEDIUM_RISK), returned("E1", "C1", t(-1)), tail()],
        "return_interview",
        (0, 0, 0, 0, 0),
    ),
    "interview deadline after the end of the input: pending": (
        [reported("E1", "C1", t(5), MEDIUM_RISK), returned("E1", "C1", t(6))],
        "return_interview",
        (0, 0, 1, 0, 0),
    ),
    # ---- SG05: repeat missing children referred ----------------------------------------
    "three episodes, no referral": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", 1), ("E2", 2), ("E3", 3))]
        + [tail()],
        "repeat_missing_referred",
        (0, 1, 0, 1, 0),
    ),
    "three episodes, referred within 24h": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", 1), ("E2", 2), ("E3", 3))]
        + [referral("C1", t(3, 20)), tail()],
        "repeat_missing_referred",
        (1, 1, 0, 0, 0),
    ),
    "three episodes, referred late": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", 1), ("E2", 2), ("E3", 3))]
        + [referral("C1", t(5)), tail()],
        "repeat_missing_referred",
        (0, 1, 0, 1, 1),
    ),
    "two episodes: no obligation": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", 1), ("E2", 2))] + [tail()],
        "repeat_missing_referred",
        (0, 0, 0, 0, 0),
    ),
    "two before the period, the third in it: opened in the period": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", -60), ("E2", -2), ("E3", 1))]
        + [tail()],
        "repeat_missing_referred",
        (0, 1, 0, 1, 0),
    ),
    "first report more than 90 days back is out of the window": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", -95), ("E2", -2), ("E3", 1))]
        + [tail()],
        "repeat_missing_referred",
        (0, 0, 0, 0, 0),
    ),
    "obligation opened before the period: a fourth report opens none": (
        [
            reported(e, "C1", t(d), MEDIUM_RISK)
            for e, d in (("E1", -5), ("E2", -4), ("E3", -3), ("E4", 1))
        ]
        + [tail()],
        "repeat_missing_referred",
        (0, 0, 0, 0, 0),
    ),
    "obligation 90 days before and a day: a new one opens": (
        [
            reported(e, "C1", t(d), MEDIUM_RISK)
            for e, d in (("E1", -93), ("E2", -92), ("E3", -91), ("E4", -3), ("E5", -2), ("E6", 1))
        ]
        + [tail()],
        "repeat_missing_referred",
        (0, 1, 0, 1, 0),
    ),
    "three reports at the same instant open one obligation": (
        [reported(e, "C1", t(1), MEDIUM_RISK) for e in ("E3", "E1", "E2")] + [tail()],
        "repeat_missing_referred",
        (0, 1, 0, 1, 0),
    ),
    "repeat referral deadline after the end of the input: pending": (
        [reported(e, "C1", t(d), MEDIUM_RISK) for e, d in (("E1", 1), ("E2", 2), ("E3", 3))],
        "repeat_missing_referred",
        (0, 0, 1, 0, 0),
    ),
}


@pytest.mark.parametrize(("events", "key", "expected"), MEASURES.values(), ids=MEASURES.keys())
def test_measure(events: list[Event], key: str, expected: tuple[int, int, int, int, int]) -> None:
    m = quality(events).measure(key)
    assert (m.numerator, m.denominator, m.pending, m.alerted, m.late) == expected


def test_share_is_none_without_a_denominator() -> None:
    report = quality([tail()])
    assert all(m.share is None for m in report.measures)
    assert report.grades == GradeCounts()


def test_share() -> None:
    events: list[Event] = [
        da("I1", t(1), ("C1", True, 9), ("C2", True, 9), ("C3", True, 9), ("C4", True, 9)),
        referral("C1", t(1, 1)),
        tail(),
    ]
    assert quality(events).measure("da_referral_present").share == 0.25


# ---- Grades and WITHDRAWN, with hand-made alerts -------------------------------------------


def alert(
    child: str,
    raised_at: Millis,
    severity: Severity = HIGH,
    status: AlertStatus = RAISED,
    resolved_at: Millis | None = None,
    rule: RuleId = RuleId.SG01,
    trigger: str = "I1",
) -> Alert:
    return Alert(
        alert_id_for(rule, child, trigger),
        rule,
        child,
        trigger,
        severity,
        raised_at,
        raised_at,
        (),
        "",
        "",
        status,
        resolved_at,
        Mode.REPLAY,
        0,
    )


def accumulate(events: list[Event], alerts: list[Alert], input_end: Millis) -> QualityReport:
    acc = QualityAccumulator(START, END)
    for event in sorted(events, key=lambda e: e.occurred_at):
        acc.add_event(event)
    for a in alerts:
        acc.add_alert(a)
    return acc.result(input_end)


def with_event(child: str = "C1", at: Millis | None = None) -> Event:
    """An event of ``child`` (by default on the first day of the period) that raises nothing."""
    return referral(child, t(1) if at is None else at, Agency.HEALTH)


# (events, alerts) -> (good, requires improvement, inadequate), inadequate children
GradeRow = tuple[list[Event], list[Alert], tuple[int, int, int], tuple[str, ...]]

GRADES: dict[str, GradeRow] = {
    "no alert: good": ([with_event()], [], (1, 0, 0), ()),
    "MEDIUM alert RAISED: requires improvement": (
        [with_event()],
        [alert("C1", t(2), MEDIUM)],
        (0, 1, 0),
        (),
    ),
    "HIGH alert RAISED at the end: inadequate": (
        [with_event()],
        [alert("C1", t(2))],
        (0, 0, 1),
        ("C1",),
    ),
    "HIGH alert resolved before the end: requires improvement": (
        [with_event()],
        [alert("C1", t(2), status=RESOLVED, resolved_at=t(3))],
        (0, 1, 0),
        (),
    ),
    "HIGH alert resolved exactly at the end: requires improvement": (
        [with_event()],
        [alert("C1", t(2), status=RESOLVED, resolved_at=END)],
        (0, 1, 0),
        (),
    ),
    "HIGH alert resolved after the end: inadequate": (
        [with_event()],
        [alert("C1", t(2), status=RESOLVED, resolved_at=END + 1)],
        (0, 0, 1),
        ("C1",),
    ),
    "HIGH alert WITHDRAWN: good": (
        [with_event()],
        [alert("C1", t(2), status=WITHDRAWN, resolved_at=t(1, 1))],
        (1, 0, 0),
        (),
    ),
    "latest version wins: RAISED then WITHDRAWN is good": (
        [with_event()],
        [alert("C1", t(2)), alert("C1", t(2), status=WITHDRAWN, resolved_at=t(1, 1))],
        (1, 0, 0),
        (),
    ),
    "alert raised before the period does not count": (
        [with_event()],
        [alert("C1", START - 1)],
        (1, 0, 0),
        (),
    ),
    "alert raised at the start counts": (
        [with_event()],
        [alert("C1", START)],
        (0, 0, 1),
        ("C1",),
    ),
    "alert raised at the end does not count": (
        [with_event()],
        [alert("C1", END)],
        (1, 0, 0),
        (),
    ),
    "a child without events in the period is not graded": (
        [with_event(), with_event("C2", t(-1)), with_event("C2", END)],
        [alert("C2", t(2))],
        (1, 0, 0),
        (),
    ),
    "an incident grades every child it lists": (
        [da("I1", t(1), ("C1", True, 9), ("C2", False, 9), kind=IncidentType.OTHER)],
        [alert("C2", t(2)), alert("C1", t(2), MEDIUM, rule=RuleId.SG08)],
        (0, 1, 1),
        ("C2",),
    ),
    "one open HIGH among others: inadequate": (
        [with_event()],
        [
            alert("C1", t(2), MEDIUM, rule=RuleId.SG02),
            alert("C1", t(2), status=RESOLVED, resolved_at=t(3), rule=RuleId.SG08),
            alert("C1", t(4), rule=RuleId.SG05, trigger="E1"),
        ],
        (0, 0, 1),
        ("C1",),
    ),
}


@pytest.mark.parametrize(
    ("events", "alerts", "counts", "inadequate"), GRADES.values(), ids=GRADES.keys()
)
def test_grades(
    events: list[Event],
    alerts: list[Alert],
    counts: tuple[int, int, int],
    inadequate: tuple[str, ...],
) -> None:
    report = accumulate(events, alerts, input_end=t(30))
    g = report.grades
    assert (g.good, g.requires_improvement, g.inadequate) == counts
    assert report.inadequate_children == inadequate


WITHDRAWN_ROWS: dict[str, tuple[AlertStatus, tuple[int, int, int, int, int]]] = {
    "RAISED: missed": (RAISED, (0, 1, 0, 1, 0)),
    "RESOLVED: missed, late": (RESOLVED, (0, 1, 0, 1, 1)),
    "WITHDRAWN: met in fact": (WITHDRAWN, (1, 1, 0, 0, 0)),
}


@pytest.mark.parametrize(("status", "expected"), WITHDRAWN_ROWS.values(), ids=WITHDRAWN_ROWS.keys())
def test_alert_status_decides_the_measure(
    status: AlertStatus, expected: tuple[int, int, int, int, int]
) -> None:
    incident = da("I1", t(1), ("C1", False, 9))
    resolved_at = None if status is RAISED else t(3)
    sg01 = alert("C1", t(2), MEDIUM, status, resolved_at)
    m = accumulate([incident], [sg01], input_end=t(30)).measure("da_referral_not_present")
    assert (m.numerator, m.denominator, m.pending, m.alerted, m.late) == expected


def test_alerts_before_their_events_count_too() -> None:
    acc = QualityAccumulator(START, END)
    acc.add_alert(alert("C1", t(2)))
    acc.add_event(da("I1", t(1), ("C1", True, 9)))
    report = acc.result(t(30))
    assert report.measure("da_referral_present").alerted == 1
    assert report.inadequate_children == ("C1",)


def test_events_out_of_order_are_refused() -> None:
    acc = QualityAccumulator(START, END)
    acc.add_event(with_event(at=t(2)))
    with pytest.raises(ValueError, match="event-time order"):
        acc.add_event(with_event(at=t(1)))


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        QualityAccumulator(END, START)


def test_result_does_not_decide_waiting_reports_for_good() -> None:
    """result() mid-stream decides same-instant reports on a copy: more may follow."""
    acc = QualityAccumulator(START, END)
    for e in ("E1", "E2"):
        acc.add_event(reported(e, "C1", t(1), MEDIUM_RISK))
    assert acc.result(t(30)).measure("repeat_missing_referred").denominator == 0
    acc.add_event(reported("E3", "C1", t(1), MEDIUM_RISK))
    assert acc.result(t(30)).measure("repeat_missing_referred").denominator == 1


def test_the_retention_window_forgets_quiet_episodes() -> None:
    acc = QualityAccumulator(START, END)
    acc.add_event(reported("E0", "C0", t(-400), MEDIUM_RISK))
    acc.add_event(reported("E1", "C1", t(1), MEDIUM_RISK))
    acc.add_event(with_event(at=t(2)))
    assert len(acc._episodes) == 1
    assert "C0" not in acc._repeat


# ---- Dates, rendering, JSON -------------------------------------------------------------------

DATES: dict[str, tuple[str, str]] = {
    "winter date: midnight GMT": ("2024-02-01", "2024-02-01T00:00:00Z"),
    "summer date: midnight BST": ("2024-06-01", "2024-05-31T23:00:00Z"),
    "RFC 3339 UTC": ("2024-06-01T00:00:00Z", "2024-06-01T00:00:00Z"),
    "RFC 3339 offset": ("2024-06-01T09:30:00+01:00", "2024-06-01T08:30:00Z"),
}


@pytest.mark.parametrize(("text", "expected"), DATES.values(), ids=DATES.keys())
def test_parse_date(text: str, expected: str) -> None:
    assert parse_date(text) == parse_rfc3339(expected)


@pytest.mark.parametrize("text", ["2024-02-30", "yesterday", "2024-06-01T00:00:00", ""])
def test_parse_date_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a date"):
        parse_date(text)


def test_render_text_and_json() -> None:
    events: list[Event] = [
        da("I1", t(1), ("C1", True, 9), ("C2", False, 9)),
        referral("C2", t(1, 1)),
        reported("E1", "C3", t(6), LOW),
    ]
    report = quality(events)
    console = Console(record=True, width=200)
    render_text(report, console)
    text = console.export_text()
    assert "child present" in text
    assert "requires improvement" in text
    assert "Children graded inadequate" in text
    assert "C1" in text
    doc = orjson.loads(orjson.dumps(report_to_dict(report)))
    assert doc["from"] == "2024-03-06T10:00:00Z"
    assert [m["key"] for m in doc["measures"]] == [m.key for m in report.measures]
    assert doc["grades"]["children"] == 3
    assert doc["grades"]["inadequate"] == {"children": 1, "share": 1 / 3}
    assert doc["inadequate_children"] == ["C1"]
    present = doc["measures"][0]
    assert (present["numerator"], present["denominator"], present["share"]) == (0, 1, 0.0)
    low = next(m for m in doc["measures"] if m["key"] == "low_risk_reviewed")
    assert (low["denominator"], low["pending"], low["share"]) == (0, 1, None)


# ---- A generated world ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "w.jsonl"
    run_generate(children=50, days=60, seed=1, out=path)
    return path


PERIOD = (parse_date("2024-01-15"), parse_date("2024-02-15"))


def test_world_measures_are_consistent(world: Path) -> None:
    report = run_report([world], *PERIOD)
    for m in report.measures:
        assert 0 <= m.numerator <= m.denominator, m.key
        assert m.late <= m.alerted <= m.denominator, m.key
        if m.higher_is_better:
            assert m.numerator + m.alerted == m.denominator, m.key
    g = report.grades
    assert g.children > 0
    assert g.good + g.requires_improvement + g.inadequate == g.children
    assert len(report.inadequate_children) == g.inadequate
    assert sum(m.denominator for m in report.measures) > 0

    # The children graded are exactly those with events in the period.
    start, end = PERIOD
    events = list(ordered_events([world], lambda r: None))
    children = {c for e in events if start <= e.occurred_at < end for c in child_ids(e)}
    assert g.children == len(children)


def test_world_alert_counts_match_the_detector(world: Path) -> None:
    """Each measure's missed items are the detector's alerts on the items of the period; SG05
    openings computed here are the core's own decisions."""
    start, end = PERIOD
    events = list(ordered_events([world], lambda r: None))
    detector = Detector(now=lambda: 0)
    detector.feed_all(events)
    detector.finish()
    alerts = [a for a in detector.alerts() if a.status is not WITHDRAWN]
    report = report_events(events, start, end, now=lambda: 0)
    p = detector.params

    def anchored(rule: RuleId, offset: Millis) -> int:
        return sum(1 for a in alerts if a.rule_id == rule and start <= a.raised_at - offset < end)

    # SG03, SG05, SG06 deadlines are a fixed offset from the anchor.
    assert report.measure("low_risk_reviewed").alerted == anchored(RuleId.SG03, p.review_deadline)
    assert report.measure("return_interview").alerted == anchored(
        RuleId.SG06, p.return_interview_deadline
    )
    repeat = report.measure("repeat_missing_referred")
    assert repeat.alerted == anchored(RuleId.SG05, p.repeat_referral_deadline)
    sg01 = anchored(RuleId.SG01, p.da_referral_deadline)
    assert sg01 == (
        report.measure("da_referral_present").alerted
        + report.measure("da_referral_not_present").alerted
    )

    opened = sum(
        1
        for state in detector.states.values()
        for episode_id, opens in state.sg05.items()
        if opens
        and (rep := state.episodes[episode_id].report) is not None
        and start <= rep.at < end
    )
    assert repeat.denominator == opened
    assert repeat.denominator > 0


def test_world_unsorted_input_gives_the_same_report(world: Path, tmp_path: Path) -> None:
    lines = world.read_bytes().splitlines(keepends=True)
    shuffled = tmp_path / "reversed.jsonl"
    shuffled.write_bytes(b"not json\n" + b"".join(reversed(lines)))
    restarts: list[str] = []
    invalid: list[int] = []
    sorted_report = run_report([world], *PERIOD)
    unsorted_report = run_report(
        [shuffled],
        *PERIOD,
        on_restart=restarts.append,
        on_invalid=lambda r: invalid.append(r.line),
    )
    assert restarts
    assert invalid == [1]  # reported once, though the file is read twice
    assert dataclasses.astuple(unsorted_report) == dataclasses.astuple(sorted_report)


def test_run_report_refuses_an_empty_period(world: Path) -> None:
    with pytest.raises(ConfigurationError):
        run_report([world], PERIOD[1], PERIOD[0])


def test_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    report = run_report([empty], *PERIOD)
    assert report.input_end is None
    assert report.grades.children == 0
    assert all(m.denominator == m.pending == 0 for m in report.measures)
    render_text(report, Console(record=True, width=120))
