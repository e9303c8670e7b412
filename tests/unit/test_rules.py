"""The rule edges of SPEC section 4: one case just inside and one just outside each deadline and
threshold, plus the readings of docs/semantics.md. Each row runs the pure core in microseconds."""

from __future__ import annotations

import pytest

from streams.domain.alerts import AlertStatus, Severity
from streams.domain.detector import Detector
from streams.domain.events import Agency, DashRisk, Event, IncidentType, RiskLevel
from streams.domain.params import Params
from streams.domain.time import DAY, HOUR, MINUTE, Millis, parse_rfc3339
from tests.unit.rulekit import (
    da,
    detector,
    interview,
    only,
    referral,
    reported,
    returned,
    reviewed,
    run,
    t,
)

pytestmark = pytest.mark.usefixtures("engine")
"""Every rule edge on both detection cores: the Python reference and the compiled one."""

H, M, D = HOUR, MINUTE, DAY
RAISED, RESOLVED = AlertStatus.RAISED, AlertStatus.RESOLVED
HIGH, MEDIUM = Severity.HIGH, Severity.MEDIUM
CSC, SCHOOL = Agency.CHILDRENS_SOCIAL_CARE, Agency.SCHOOL
LOW, NAR, ABSENT = RiskLevel.LOW, RiskLevel.NO_APPARENT_RISK, RiskLevel.ABSENT

_utc = parse_rfc3339

Case = tuple[list[Event], Millis | None, str, set[tuple[str, str, str, str, str]]]


def a(rule: str, child: str, trigger: str, severity: str, status: str = RAISED) -> tuple:
    return (rule, child, trigger, severity, status)


CASES: dict[str, Case] = {
    # ---- SG01: 24 h to refer a domestic-abuse child to children's social care -----------
    "sg01 referral at exactly 24h meets": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=24))],
        t(days=5),
        "SG01",
        set(),
    ),
    "sg01 referral 1 ms after 24h resolves": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=24, ms=1))],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH, RESOLVED)},
    ),
    "sg01 no referral raises, present is HIGH": (
        [da("I1", t(), ("C1", True, 9))],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 not present, no DASH grade, is MEDIUM": (
        [da("I1", t(), ("C1", False, 9))],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", MEDIUM)},
    ),
    "sg01 not present, DASH high, is HIGH": (
        [da("I1", t(), ("C1", False, 9), dash=DashRisk.HIGH)],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 not present, DASH medium, is MEDIUM": (
        [da("I1", t(), ("C1", False, 9), dash=DashRisk.MEDIUM)],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", MEDIUM)},
    ),
    "sg01 referral to the wrong agency does not meet": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=1), SCHOOL, incident="I1")],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 referral for another child does not meet": (
        [da("I1", t(), ("C1", True, 9)), referral("C2", t(hours=1), incident="I1")],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 linked referral made before the incident time meets": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=-1), incident="I1")],
        t(days=5),
        "SG01",
        set(),
    ),
    "sg01 unlinked referral before the incident does not meet": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=-1))],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 referral linked to another incident but in the window meets": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=2), incident="I0")],
        t(days=5),
        "SG01",
        set(),
    ),
    "sg01 late unlinked referral resolves": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=30))],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH, RESOLVED)},
    ),
    "sg01 late referral linked to another incident does not resolve": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=30), incident="I9")],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 multi-child household: each child has its own alert": (
        [
            da("I1", t(), ("C1", True, 3), ("C2", False, 7), ("C3", False, 15)),
            referral("C2", t(hours=3), incident="I1"),
        ],
        t(days=5),
        "SG01",
        {a("SG01", "C1", "I1", HIGH), a("SG01", "C3", "I1", MEDIUM)},
    ),
    "sg01 non-domestic-abuse incident raises nothing": (
        [da("I1", t(), ("C1", True, 9), kind=IncidentType.VIOLENCE)],
        t(days=5),
        "SG01",
        set(),
    ),
    "sg01 deadline exactly at --until fires": (
        [da("I1", t(), ("C1", True, 9))],
        t(hours=24),
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    "sg01 deadline 1 ms after --until does not fire": (
        [da("I1", t(), ("C1", True, 9))],
        t(hours=24, ms=-1),
        "SG01",
        set(),
    ),
    "sg01 default --until is the last event time": (
        [da("I1", t(), ("C1", True, 9)), referral("C9", t(hours=23))],
        None,
        "SG01",
        set(),
    ),
    "sg01 default --until reaches a deadline when history goes past it": (
        [da("I1", t(), ("C1", True, 9)), referral("C9", t(hours=24))],
        None,
        "SG01",
        {a("SG01", "C1", "I1", HIGH)},
    ),
    # ---- SG02: Operation Encompass by 08:30 on the next weekday -------------------------
    "sg02 Wednesday incident: school told Thursday 08:30 meets": (
        [da("I1", t(), ("C1", False, 9)), referral("C1", _utc("2024-03-07T08:30:00Z"), SCHOOL)],
        t(days=5),
        "SG02",
        set(),
    ),
    "sg02 Wednesday incident: school told Thursday 08:31 resolves": (
        [da("I1", t(), ("C1", False, 9)), referral("C1", _utc("2024-03-07T08:31:00Z"), SCHOOL)],
        t(days=5),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM, RESOLVED)},
    ),
    "sg02 Friday night incident is due Monday 08:30: Monday 08:30 meets": (
        [
            da("I1", _utc("2024-03-08T23:00:00Z"), ("C1", True, 9)),
            referral("C1", _utc("2024-03-11T08:30:00Z"), SCHOOL),
        ],
        t(days=10),
        "SG02",
        set(),
    ),
    "sg02 Friday night incident: Monday 08:31 is late": (
        [
            da("I1", _utc("2024-03-08T23:00:00Z"), ("C1", True, 9)),
            referral("C1", _utc("2024-03-11T08:31:00Z"), SCHOOL),
        ],
        t(days=10),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM, RESOLVED)},
    ),
    "sg02 Saturday incident with no school referral raises at Monday 08:30": (
        [da("I1", _utc("2024-03-09T12:00:00Z"), ("C1", True, 9))],
        _utc("2024-03-11T08:30:00Z"),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM)},
    ),
    "sg02 Saturday incident: not yet due at Monday 08:29:59.999": (
        [da("I1", _utc("2024-03-09T12:00:00Z"), ("C1", True, 9))],
        _utc("2024-03-11T08:30:00Z") - 1,
        "SG02",
        set(),
    ),
    "sg02 BST: Sunday 23:30 UTC is Monday local, due Tuesday 08:30 BST (07:30 UTC)": (
        [
            da("I1", _utc("2024-06-30T23:30:00Z"), ("C1", True, 9)),
            referral("C1", _utc("2024-07-02T07:30:00Z"), SCHOOL),
        ],
        _utc("2024-07-10T00:00:00Z"),
        "SG02",
        set(),
    ),
    "sg02 BST: 07:30:00.001 UTC on Tuesday is late": (
        [
            da("I1", _utc("2024-06-30T23:30:00Z"), ("C1", True, 9)),
            referral("C1", _utc("2024-07-02T07:30:00.001Z"), SCHOOL),
        ],
        _utc("2024-07-10T00:00:00Z"),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM, RESOLVED)},
    ),
    "sg02 Monday 07:00 incident is due Tuesday, not the same morning": (
        [
            da("I1", _utc("2024-03-11T07:00:00Z"), ("C1", True, 9)),
            referral("C1", _utc("2024-03-12T08:00:00Z"), SCHOOL),
        ],
        t(days=10),
        "SG02",
        set(),
    ),
    "sg02 age 3 is below school age": (
        [da("I1", t(), ("C1", True, 3))],
        t(days=5),
        "SG02",
        set(),
    ),
    "sg02 age 4 counts": (
        [da("I1", t(), ("C1", True, 4))],
        t(days=5),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM)},
    ),
    "sg02 age 17 counts": (
        [da("I1", t(), ("C1", True, 17))],
        t(days=5),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM)},
    ),
    "sg02 age 18 does not": (
        [da("I1", t(), ("C1", True, 18))],
        t(days=5),
        "SG02",
        set(),
    ),
    "sg02 unknown age counts": (
        [da("I1", t(), ("C1", True, None))],
        t(days=5),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM)},
    ),
    "sg02 a CSC referral does not notify the school": (
        [da("I1", t(), ("C1", True, 9)), referral("C1", t(hours=1), CSC, incident="I1")],
        t(days=5),
        "SG02",
        {a("SG02", "C1", "I1", MEDIUM)},
    ),
    # ---- SG03: low-risk missing child reviewed within 4 h --------------------------------
    "sg03 review at exactly 4h meets": (
        [reported("E1", "C1", t(), LOW), reviewed("E1", "C1", t(hours=4), LOW)],
        t(days=1),
        "SG03",
        set(),
    ),
    "sg03 review 1 ms after 4h resolves": (
        [reported("E1", "C1", t(), LOW), reviewed("E1", "C1", t(hours=4, ms=1), LOW)],
        t(days=1),
        "SG03",
        {a("SG03", "C1", "E1", MEDIUM, RESOLVED)},
    ),
    "sg03 looked-after child is HIGH": (
        [reported("E1", "C1", t(), NAR, lac=True)],
        t(days=1),
        "SG03",
        {a("SG03", "C1", "E1", HIGH)},
    ),
    "sg03 ABSENT counts as low risk": (
        [reported("E1", "C1", t(), ABSENT)],
        t(days=1),
        "SG03",
        {a("SG03", "C1", "E1", MEDIUM)},
    ),
    "sg03 MEDIUM report is not low risk": (
        [reported("E1", "C1", t(), RiskLevel.MEDIUM)],
        t(days=1),
        "SG03",
        set(),
    ),
    "sg03 return just before 4h prevents it": (
        [reported("E1", "C1", t(), LOW), returned("E1", "C1", t(hours=4, ms=-1))],
        t(days=1),
        "SG03",
        set(),
    ),
    "sg03 return at exactly 4h is not before due": (
        [reported("E1", "C1", t(), LOW), returned("E1", "C1", t(hours=4))],
        t(days=1),
        "SG03",
        {a("SG03", "C1", "E1", MEDIUM)},
    ),
    "sg03 a late return does not resolve it": (
        [reported("E1", "C1", t(), LOW), returned("E1", "C1", t(hours=6))],
        t(days=1),
        "SG03",
        {a("SG03", "C1", "E1", MEDIUM)},
    ),
    # ---- SG04: looked-after child graded absent / no apparent risk -----------------------
    "sg04 prior episode exactly 90 days before fires": (
        [
            reported("E0", "C1", t(days=-90), LOW, lac=True),
            reported("E1", "C1", t(), ABSENT, lac=True),
        ],
        None,
        "SG04",
        {a("SG04", "C1", "E1", HIGH)},
    ),
    "sg04 prior episode 90 days and 1 ms before does not": (
        [
            reported("E0", "C1", t(days=-90, ms=-1), LOW, lac=True),
            reported("E1", "C1", t(), ABSENT, lac=True),
        ],
        None,
        "SG04",
        set(),
    ),
    "sg04 domestic abuse incident in the 90 days fires": (
        [da("I1", t(days=-10), ("C1", False, 12)), reported("E1", "C1", t(), NAR, lac=True)],
        None,
        "SG04",
        {a("SG04", "C1", "E1", HIGH)},
    ),
    "sg04 a non-domestic-abuse incident does not count": (
        [
            da("I1", t(days=-10), ("C1", False, 12), kind=IncidentType.VIOLENCE),
            reported("E1", "C1", t(), NAR, lac=True),
        ],
        None,
        "SG04",
        set(),
    ),
    "sg04 not looked after does not fire": (
        [reported("E0", "C1", t(days=-5), LOW), reported("E1", "C1", t(), ABSENT)],
        None,
        "SG04",
        set(),
    ),
    "sg04 LOW is not under-graded": (
        [
            reported("E0", "C1", t(days=-5), LOW, lac=True),
            reported("E1", "C1", t(), LOW, lac=True),
        ],
        None,
        "SG04",
        set(),
    ),
    "sg04 re-grade to MEDIUM resolves": (
        [
            reported("E0", "C1", t(days=-5), LOW, lac=True),
            reported("E1", "C1", t(), ABSENT, lac=True),
            reviewed("E1", "C1", t(hours=1), RiskLevel.MEDIUM, lac=True),
        ],
        None,
        "SG04",
        {a("SG04", "C1", "E1", HIGH, RESOLVED)},
    ),
    "sg04 the first episode alone does not fire": (
        [reported("E1", "C1", t(), ABSENT, lac=True)],
        None,
        "SG04",
        set(),
    ),
    # ---- SG05: 3 episodes in 90 days, referral within 24 h ------------------------------
    "sg05 third episode in 90 days (inclusive) opens an obligation": (
        [
            reported("E1", "C1", t(days=-90), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG05",
        {a("SG05", "C1", "E3", HIGH)},
    ),
    "sg05 three episodes over 90 days and 1 ms do not": (
        [
            reported("E1", "C1", t(days=-90, ms=-1), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG05",
        set(),
    ),
    "sg05 CSC referral within the 90 days before meets": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            referral("C1", t(days=-50)),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG05",
        set(),
    ),
    "sg05 CSC referral at exactly report + 24h meets": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
            referral("C1", t(hours=24)),
        ],
        t(days=3),
        "SG05",
        set(),
    ),
    "sg05 CSC referral 1 ms after report + 24h resolves": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
            referral("C1", t(hours=24, ms=1)),
        ],
        t(days=3),
        "SG05",
        {a("SG05", "C1", "E3", HIGH, RESOLVED)},
    ),
    "sg05 an episode exactly 90 days after the obligation opens no new one": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
            reported("E4", "C1", t(days=60), RiskLevel.HIGH),
            reported("E5", "C1", t(days=90), RiskLevel.HIGH),
        ],
        t(days=95),
        "SG05",
        {a("SG05", "C1", "E3", HIGH)},
    ),
    "sg05 an episode 90 days and 1 ms after the obligation opens a new one": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
            reported("E4", "C1", t(days=60), RiskLevel.HIGH),
            reported("E4b", "C1", t(days=70), RiskLevel.HIGH),
            reported("E5", "C1", t(days=90, ms=1), RiskLevel.HIGH),
        ],
        t(days=95),
        "SG05",
        {a("SG05", "C1", "E3", HIGH), a("SG05", "C1", "E5", HIGH)},
    ),
    "sg05 a school referral does not meet": (
        [
            reported("E1", "C1", t(days=-60), RiskLevel.HIGH),
            reported("E2", "C1", t(days=-30), RiskLevel.HIGH),
            reported("E3", "C1", t(), RiskLevel.HIGH),
            referral("C1", t(hours=1), SCHOOL),
        ],
        t(days=3),
        "SG05",
        {a("SG05", "C1", "E3", HIGH)},
    ),
    # ---- SG06: return interview within 72 h ---------------------------------------------
    "sg06 interview at exactly 72h meets": (
        [
            reported("E1", "C1", t(), RiskLevel.HIGH),
            returned("E1", "C1", t(hours=5)),
            interview("E1", "C1", t(hours=77)),
        ],
        t(days=10),
        "SG06",
        set(),
    ),
    "sg06 interview 1 ms after 72h resolves, MEDIUM": (
        [
            reported("E1", "C1", t(), RiskLevel.HIGH),
            returned("E1", "C1", t(hours=5)),
            interview("E1", "C1", t(hours=77, ms=1)),
        ],
        t(days=10),
        "SG06",
        {a("SG06", "C1", "E1", MEDIUM, RESOLVED)},
    ),
    "sg06 looked-after child is HIGH": (
        [
            reported("E1", "C1", t(), RiskLevel.HIGH, lac=True),
            returned("E1", "C1", t(hours=5), lac=True),
        ],
        t(days=10),
        "SG06",
        {a("SG06", "C1", "E1", HIGH)},
    ),
    "sg06 two other episodes in the 90 days up to the return is HIGH": (
        [
            reported("E0", "C1", t(days=-90, hours=5), RiskLevel.HIGH),
            reported("E9", "C1", t(days=-10), RiskLevel.HIGH),
            reported("E1", "C1", t(), RiskLevel.HIGH),
            returned("E1", "C1", t(hours=5)),
        ],
        t(days=10),
        "SG06",
        {a("SG06", "C1", "E1", HIGH)},
    ),
    "sg06 one other episode in the 90 days is MEDIUM": (
        [
            reported("E0", "C1", t(days=-90, hours=5, ms=-1), RiskLevel.HIGH),
            reported("E9", "C1", t(days=-10), RiskLevel.HIGH),
            reported("E1", "C1", t(), RiskLevel.HIGH),
            returned("E1", "C1", t(hours=5)),
        ],
        t(days=10),
        "SG06",
        {a("SG06", "C1", "E1", MEDIUM)},
    ),
    "sg06 a return with no report still needs an interview": (
        [returned("E1", "C1", t())],
        t(days=10),
        "SG06",
        {a("SG06", "C1", "E1", MEDIUM)},
    ),
    # ---- SG07: still missing at 24 h and still low risk ---------------------------------
    "sg07 return at exactly 24h prevents it": (
        [reported("E1", "C1", t(), LOW), returned("E1", "C1", t(hours=24))],
        t(days=5),
        "SG07",
        set(),
    ),
    "sg07 return 1 ms after 24h resolves": (
        [reported("E1", "C1", t(), LOW), returned("E1", "C1", t(hours=24, ms=1))],
        t(days=5),
        "SG07",
        {a("SG07", "C1", "E1", HIGH, RESOLVED)},
    ),
    "sg07 re-graded MEDIUM before 24h does not fire": (
        [reported("E1", "C1", t(), LOW), reviewed("E1", "C1", t(hours=23), RiskLevel.MEDIUM)],
        t(days=5),
        "SG07",
        set(),
    ),
    "sg07 graded HIGH then reviewed down to LOW fires": (
        [reported("E1", "C1", t(), RiskLevel.HIGH), reviewed("E1", "C1", t(hours=6), LOW)],
        t(days=5),
        "SG07",
        {a("SG07", "C1", "E1", HIGH)},
    ),
    "sg07 re-grade to HIGH after 24h resolves": (
        [reported("E1", "C1", t(), NAR), reviewed("E1", "C1", t(hours=30), RiskLevel.HIGH)],
        t(days=5),
        "SG07",
        {a("SG07", "C1", "E1", HIGH, RESOLVED)},
    ),
    "sg07 a LOW review after 24h does not resolve": (
        [reported("E1", "C1", t(), NAR), reviewed("E1", "C1", t(hours=30), LOW)],
        t(days=5),
        "SG07",
        {a("SG07", "C1", "E1", HIGH)},
    ),
    # ---- SG08: domestic abuse and missing within 30 days --------------------------------
    "sg08 incident then report exactly 30 days later fires on the report": (
        [da("I1", t(days=-30), ("C1", False, 12)), reported("E1", "C1", t(), RiskLevel.HIGH)],
        t(days=3),
        "SG08",
        {a("SG08", "C1", "E1", HIGH)},
    ),
    "sg08 incident 30 days and 1 ms before does not": (
        [
            da("I1", t(days=-30, ms=-1), ("C1", False, 12)),
            reported("E1", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG08",
        set(),
    ),
    "sg08 report then incident fires on the incident": (
        [reported("E1", "C1", t(days=-3), RiskLevel.HIGH), da("I1", t(), ("C1", False, 12))],
        t(days=3),
        "SG08",
        {a("SG08", "C1", "I1", HIGH)},
    ),
    "sg08 CSC referral between the earlier event and the due time meets": (
        [
            da("I1", t(days=-20), ("C1", False, 12)),
            referral("C1", t(days=-19)),
            reported("E1", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG08",
        set(),
    ),
    "sg08 CSC referral before the earlier event does not meet": (
        [
            referral("C1", t(days=-21)),
            da("I1", t(days=-20), ("C1", False, 12)),
            reported("E1", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG08",
        {a("SG08", "C1", "E1", HIGH)},
    ),
    "sg08 the earlier event is the first in the window": (
        [
            da("I1", t(days=-25), ("C1", False, 12)),
            referral("C1", t(days=-22)),
            da("I2", t(days=-20), ("C1", False, 12)),
            reported("E1", "C1", t(), RiskLevel.HIGH),
        ],
        t(days=3),
        "SG08",
        set(),
    ),
}


@pytest.mark.parametrize(("events", "until", "rule", "expected"), CASES.values(), ids=CASES)
def test_rule_edge(events: list[Event], until: Millis | None, rule: str, expected: set) -> None:
    assert only(rule, run(events, until)) == expected


# ---- lifecycle and time ----------------------------------------------------------------


def test_duplicate_event_is_ignored() -> None:
    incident = da("I1", t(), ("C1", True, 9))
    d = detector(now=lambda: 0)
    d.feed(incident)
    d.feed(incident)
    d.finish(t(days=2))
    assert d.stats.duplicates == 1
    assert only("SG01", d.alerts()) == {a("SG01", "C1", "I1", HIGH)}


def test_sg04_fires_at_the_report_without_waiting() -> None:
    d = detector(now=lambda: 0)
    d.feed(reported("E0", "C1", t(days=-5), LOW, lac=True))
    out = d.feed(reported("E1", "C1", t(), ABSENT, lac=True))
    assert [(x.rule_id, x.raised_at, x.status) for x in out if x.rule_id == "SG04"] == [
        ("SG04", t(), RAISED)
    ]
    assert d.clock < t()  # no deadline of E1 has been evaluated yet


def test_sg04_completed_by_an_earlier_event_arriving_later_keeps_raised_at() -> None:
    d = detector(now=lambda: 0)
    assert d.feed(reported("E1", "C1", t(), ABSENT, lac=True)) == []
    out = d.feed(da("I1", t(minutes=-1), ("C1", False, 12)))  # within the 2 min lateness
    assert [(x.rule_id, x.raised_at) for x in out] == [("SG04", t())]


def test_deadline_fires_when_the_watermark_passes_it() -> None:
    d = detector(now=lambda: 0)
    d.feed(da("I1", t(), ("C1", True, 2)))
    # watermark = 24h + 2min - 2min = due: not yet passed
    assert d.feed(referral("C9", t(hours=24, minutes=2))) == []
    out = d.feed(referral("C9", t(hours=24, minutes=2, ms=1)))
    assert [x.rule_id for x in out] == ["SG01"]


def test_late_referral_showing_action_in_time_withdraws_the_alert() -> None:
    d = detector(now=lambda: 0)
    d.feed(da("I1", t(), ("C1", True, 2)))
    raised = d.feed(referral("C9", t(hours=30)))
    assert [(x.rule_id, x.status) for x in raised] == [("SG01", RAISED)]
    withdrawn = d.feed(referral("C1", t(hours=20), incident="I1"))  # 10 h late
    assert [(x.rule_id, x.status, x.resolved_at) for x in withdrawn] == [
        ("SG01", AlertStatus.WITHDRAWN, t(hours=20))
    ]
    assert d.stats.late == 1
    assert withdrawn[0].alert_id == raised[0].alert_id


def test_late_incident_is_still_applied_and_fires_at_once() -> None:
    d = detector(now=lambda: 0)
    d.feed(referral("C9", t(days=3)))
    out = d.feed(da("I1", t(), ("C1", True, 9)))  # three days late
    assert {x.rule_id for x in out} == {"SG01", "SG02"}
    assert all(x.raised_at < t(days=3) for x in out)


def test_late_action_after_the_deadline_resolves() -> None:
    d = detector(now=lambda: 0)
    d.feed(da("I1", t(), ("C1", True, 2)))
    d.feed(referral("C9", t(hours=40)))
    out = d.feed(referral("C1", t(hours=30)))  # late, but after the deadline
    assert [(x.rule_id, x.status, x.resolved_at) for x in out] == [("SG01", RESOLVED, t(hours=30))]


def test_each_rule_child_trigger_raises_at_most_one_alert() -> None:
    events = [da("I1", t(), ("C1", True, 9))]
    d = detector(now=lambda: 0)
    d.feed_all(events)
    first = d.finish(t(days=2))
    again = d.finish(t(days=3))
    assert len(first) == 2
    assert again == []


def test_alert_ids_are_deterministic_across_runs() -> None:
    def ids() -> list[str]:
        return [x.alert_id for x in run([da("I1", t(), ("C1", True, 9))], t(days=2))]

    assert ids() == ids()


def test_events_older_than_the_retention_are_dropped_and_counted() -> None:
    d = detector(Params(retention=10 * DAY), now=lambda: 0)
    d.feed(referral("C9", t(days=30)))
    d.feed(da("I1", t(), ("C1", True, 9)))
    assert d.stats.too_late == 1
    assert d.alerts() == []


def test_state_is_pruned_as_the_clock_advances() -> None:
    d = Detector(Params(retention=20 * DAY), now=lambda: 0)  # the reference's states mapping
    d.feed(da("I1", t(), ("C1", True, 9)))
    d.feed(referral("C2", t(days=10)))
    assert set(d.states) == {"C1", "C2"}
    d.feed(referral("C3", t(days=25)))
    assert set(d.states) == {"C2", "C3"}
    final = d.drain_final()
    assert only("SG01", final) == {a("SG01", "C1", "I1", HIGH)}


def test_alert_carries_the_fields_of_spec_section_5() -> None:
    (alert,) = [x for x in run([da("I1", t(), ("C1", False, 9))], t(days=2)) if x.rule_id == "SG01"]
    assert alert.raised_at == alert.due_at == t(hours=24)
    assert len(alert.evidence) == 1
    assert alert.evidence[0]
    assert "domestic abuse" in alert.summary
    assert "C1" not in alert.summary
    assert alert.recommended_action
    assert alert.mode == "replay"
    assert alert.resolved_at is None


def test_a_resolution_survives_the_pruning_of_its_action() -> None:
    """Found by the generator's ground truth: a late referral resolved SG05; 180 days later the
    referral aged out of the retention and a new event of the child made the alert RAISED
    again. An action taken stays taken."""
    events = [
        reported("E1", "C1", t(days=-27), LOW),
        reported("E2", "C1", t(days=-15), LOW),
        reported("E3", "C1", t(), LOW),
        referral("C1", t(hours=60), episode="E3"),
        interview("E3", "C1", t(days=7)),
        returned("E8", "C1", t(days=182)),
        returned("E9", "C1", t(days=190)),
    ]
    events += [referral("Z", t(hours=6 * i), Agency.HEALTH) for i in range(-120, 800)]
    assert only("SG05", run(events)) == {a("SG05", "C1", "E3", HIGH, RESOLVED)}
