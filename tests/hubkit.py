"""Made-up alerts for the hub's tests (component, integration and browser alike)."""

from __future__ import annotations

from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity, alert_id_for
from streams.domain.time import MINUTE, Millis, parse_rfc3339

T0 = parse_rfc3339("2024-03-01T09:00:00Z")


def make_alert(
    child: str = "C1",
    rule: RuleId = RuleId.SG01,
    trigger: str = "INC-1",
    severity: Severity = Severity.HIGH,
    raised_at: Millis = T0,
    status: AlertStatus = AlertStatus.RAISED,
    resolved_at: Millis | None = None,
    *,
    mode: Mode = Mode.LIVE,
    evidence: tuple[str, ...] = ("ev-1",),
    summary: str = "Domestic abuse incident INC-1 listed this child; no referral within 24 hours.",
    recommended_action: str = "Refer the child to children's social care now.",
) -> Alert:
    """One alert version; its id is the real deterministic one, detected a minute after it was
    raised, due when raised."""
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
        recommended_action=recommended_action,
        status=status,
        resolved_at=resolved_at,
        mode=mode,
        detected_at=raised_at + MINUTE,
    )
