"""A few made-up children, events and alerts, for looking at the hub by hand (``--demo``).

Nothing here is real data: child ids are ``DEMO-C###``. :func:`demo_records` is pure (time is a
parameter); :func:`run_demo_feed` drips a new alert in now and then so the live list moves.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator

from streams.domain.alerts import (
    RULE_TITLES,
    Alert,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
    alert_id_for,
)
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
from streams.domain.time import HOUR, MINUTE, Millis
from streams.hub.feed import HubFeed

_ACTIONS: dict[RuleId, str] = {
    RuleId.SG01: "Refer the child to children's social care now.",
    RuleId.SG02: "Notify the child's school under Operation Encompass before the school day.",
    RuleId.SG03: "Ask a supervisor to review the risk grading of this missing episode.",
    RuleId.SG04: "Re-grade the episode as missing and review the risk with a supervisor.",
    RuleId.SG05: "Refer the child to children's social care for repeat missing episodes.",
    RuleId.SG06: "Arrange a return home interview.",
    RuleId.SG07: "Review the risk grading: missing over 24 hours.",
    RuleId.SG08: "Refer the child to children's social care: domestic abuse and missing.",
}


def _alert(
    rule: RuleId,
    child: str,
    trigger: str,
    severity: Severity,
    raised_at: Millis,
    evidence: tuple[str, ...],
    summary: str,
    now: Millis,
    status: AlertStatus = AlertStatus.RAISED,
    resolved_at: Millis | None = None,
) -> Alert:
    return Alert(
        alert_id=alert_id_for(rule, child, trigger),
        rule_id=rule,
        child_id=child,
        trigger_id=trigger,
        severity=severity,
        raised_at=raised_at,
        due_at=raised_at,
        evidence=evidence,
        summary=summary,
        recommended_action=_ACTIONS[rule],
        status=status,
        resolved_at=resolved_at,
        mode=Mode.LIVE,
        detected_at=now,
    )


def demo_records(now: Millis) -> tuple[list[Event], list[Alert]]:
    """Events and alerts for five made-up children, the latest about ``now``."""
    t = now - 40 * HOUR
    events: list[Event] = [
        Incident(
            "ev-1",
            t,
            "INC-1001",
            IncidentType.DOMESTIC_ABUSE,
            DashRisk.HIGH,
            (HouseholdChild("DEMO-C001", False, 7), HouseholdChild("DEMO-C002", True, 12)),
        ),
        MissingReport(
            "ev-2",
            t + 2 * HOUR,
            "EP-2001",
            "DEMO-C003",
            MissingStatus.REPORTED,
            RiskLevel.NO_APPARENT_RISK,
            True,
            15,
        ),
        MissingReport(
            "ev-3",
            t + 3 * HOUR,
            "EP-2002",
            "DEMO-C004",
            MissingStatus.REPORTED,
            RiskLevel.LOW,
            False,
            14,
        ),
        MissingReport(
            "ev-4", t + 9 * HOUR, "EP-2002", "DEMO-C004", MissingStatus.RETURNED, None, False, 14
        ),
        Referral("ev-5", t + 20 * HOUR, "REF-3001", "DEMO-C002", Agency.SCHOOL, "INC-1001", None),
        MissingReport(
            "ev-6",
            t + 30 * HOUR,
            "EP-2003",
            "DEMO-C005",
            MissingStatus.REPORTED,
            RiskLevel.LOW,
            False,
            16,
        ),
        Referral(
            "ev-7",
            t + 36 * HOUR,
            "REF-3002",
            "DEMO-C003",
            Agency.CHILDRENS_SOCIAL_CARE,
            None,
            "EP-2001",
        ),
    ]
    alerts = [
        _alert(
            RuleId.SG01,
            "DEMO-C001",
            "INC-1001",
            Severity.HIGH,
            t + 24 * HOUR,
            ("ev-1",),
            "Domestic abuse incident INC-1001 listed this child (not present); no referral "
            "to children's social care within 24 hours.",
            now,
        ),
        _alert(
            RuleId.SG01,
            "DEMO-C002",
            "INC-1001",
            Severity.HIGH,
            t + 24 * HOUR,
            ("ev-1",),
            "Domestic abuse incident INC-1001 with this child present; no referral to "
            "children's social care within 24 hours.",
            now,
        ),
        _alert(
            RuleId.SG02,
            "DEMO-C001",
            "INC-1001",
            Severity.MEDIUM,
            t + 14 * HOUR,
            ("ev-1",),
            "Domestic abuse incident INC-1001: the school of this child aged 7 was not "
            "notified before 08:30 the next school day.",
            now,
        ),
        _alert(
            RuleId.SG04,
            "DEMO-C003",
            "EP-2001",
            Severity.HIGH,
            t + 2 * HOUR,
            ("ev-2",),
            "Looked-after child reported missing (EP-2001) and graded no apparent risk "
            "despite an episode in the previous 90 days.",
            now,
        ),
        _alert(
            RuleId.SG03,
            "DEMO-C003",
            "EP-2001",
            Severity.HIGH,
            t + 6 * HOUR,
            ("ev-2",),
            "Missing episode EP-2001 graded no apparent risk was not reviewed within 4 hours.",
            now,
            AlertStatus.RESOLVED,
            t + 36 * HOUR,
        ),
        _alert(
            RuleId.SG06,
            "DEMO-C004",
            "EP-2002",
            Severity.MEDIUM,
            now - 10 * MINUTE,
            ("ev-3", "ev-4"),
            "Child returned from missing episode EP-2002; no return home "
            "interview within 72 hours.",
            now,
        ),
        _alert(
            RuleId.SG03,
            "DEMO-C005",
            "EP-2003",
            Severity.MEDIUM,
            t + 34 * HOUR,
            ("ev-6",),
            "Missing episode EP-2003 graded low risk was not reviewed within 4 hours.",
            now,
        ),
    ]
    return events, alerts


def _drip(now: Callable[[], Millis]) -> Iterator[Alert]:
    for n in itertools.count(1):
        t = now()
        child = f"DEMO-C{100 + n:03d}"
        rule = (RuleId.SG01, RuleId.SG07, RuleId.SG03)[n % 3]
        severity = Severity.HIGH if n % 2 else Severity.MEDIUM
        yield _alert(
            rule,
            child,
            f"LIVE-{n}",
            severity,
            t,
            (f"live-ev-{n}",),
            f"{RULE_TITLES[rule]} (demo alert {n}).",
            t,
        )


async def run_demo_feed(feed: HubFeed, now: Callable[[], Millis], every_s: float = 30.0) -> None:
    """Load the demo records, then raise a new alert every ``every_s`` seconds (until cancelled)
    and resolve the one before it."""
    events, alerts = demo_records(now())
    for event in events:
        feed.apply_event(event)
    for alert in alerts:
        feed.apply_alert(alert)
    previous: Alert | None = None
    for alert in _drip(now):
        await asyncio.sleep(every_s)
        feed.apply_alert(alert)
        if previous is not None:
            t = now()
            feed.apply_alert(
                Alert(
                    previous.alert_id,
                    previous.rule_id,
                    previous.child_id,
                    previous.trigger_id,
                    previous.severity,
                    previous.raised_at,
                    previous.due_at,
                    previous.evidence,
                    previous.summary,
                    previous.recommended_action,
                    AlertStatus.RESOLVED,
                    t,
                    previous.mode,
                    t,
                )
            )
        previous = alert
