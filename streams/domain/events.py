"""The three input events of SPEC section 3, as frozen typed values.

Times are :data:`~streams.domain.time.Millis` (UTC epoch milliseconds). The codec builds these
from Avro or JSON and is the only place that validates raw input; the core trusts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.domain.fastinit import constructor
from streams.domain.time import Millis


class IncidentType(StrEnum):
    DOMESTIC_ABUSE = "DOMESTIC_ABUSE"
    CHILD_NEGLECT = "CHILD_NEGLECT"
    VIOLENCE = "VIOLENCE"
    SEXUAL_OFFENCE = "SEXUAL_OFFENCE"
    CONCERN_FOR_WELFARE = "CONCERN_FOR_WELFARE"
    OTHER = "OTHER"


class DashRisk(StrEnum):
    """Domestic abuse risk grade (DASH: 1-9 standard, 10-13 medium, 14+ high)."""

    STANDARD = "STANDARD"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class MissingStatus(StrEnum):
    """One step of a missing episode."""

    REPORTED = "REPORTED"
    RISK_REVIEWED = "RISK_REVIEWED"
    RETURNED = "RETURNED"
    RETURN_INTERVIEW = "RETURN_INTERVIEW"


class RiskLevel(StrEnum):
    """College of Policing APP risk grades; ABSENT is the pre-2017 category in historic data."""

    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"
    NO_APPARENT_RISK = "NO_APPARENT_RISK"
    ABSENT = "ABSENT"


LOW_RISK: frozenset[RiskLevel] = frozenset(
    {RiskLevel.LOW, RiskLevel.NO_APPARENT_RISK, RiskLevel.ABSENT}
)
"""SPEC section 4: "low risk" means LOW, NO_APPARENT_RISK or ABSENT."""


class Agency(StrEnum):
    CHILDRENS_SOCIAL_CARE = "CHILDRENS_SOCIAL_CARE"
    SCHOOL = "SCHOOL"
    MARAC = "MARAC"
    HEALTH = "HEALTH"
    EARLY_HELP = "EARLY_HELP"


@dataclass(frozen=True, slots=True)
class HouseholdChild:
    """A child listed in an incident's household."""

    child_id: str
    present: bool
    """True when the child was at the scene."""
    age: int | None
    """Age in years when known."""


@dataclass(frozen=True, slots=True)
class Incident:
    """A police incident with the children of the household (1 to 20)."""

    event_id: str
    occurred_at: Millis
    incident_id: str
    incident_type: IncidentType
    dash_risk: DashRisk | None
    children: tuple[HouseholdChild, ...]

    @property
    def type(self) -> str:
        return "incident"


@dataclass(frozen=True, slots=True)
class MissingReport:
    """One step of a missing episode."""

    event_id: str
    occurred_at: Millis
    episode_id: str
    child_id: str
    status: MissingStatus
    risk_level: RiskLevel | None
    """Required for REPORTED and RISK_REVIEWED, None for the other steps."""
    looked_after: bool
    """The child is in local-authority care."""
    age: int | None

    @property
    def type(self) -> str:
        return "missing_report"


@dataclass(frozen=True, slots=True)
class Referral:
    """Information shared with another agency about a child."""

    event_id: str
    occurred_at: Millis
    referral_id: str
    child_id: str
    agency: Agency
    incident_id: str | None
    """The incident it is about, when known."""
    episode_id: str | None
    """The missing episode it is about, when known."""

    @property
    def type(self) -> str:
        return "referral"


Event = Incident | MissingReport | Referral
"""Any input event."""

new_household_child = constructor(HouseholdChild)
new_incident = constructor(Incident)
new_missing_report = constructor(MissingReport)
new_referral = constructor(Referral)
"""The events' constructors with every field positional, built faster (the codec's hot path)."""

EVENT_TYPES: dict[str, type[Incident] | type[MissingReport] | type[Referral]] = {
    "incident": Incident,
    "missing_report": MissingReport,
    "referral": Referral,
}
"""The JSON ``type`` field of each event."""


def child_ids(event: Event) -> tuple[str, ...]:
    """The children an event is about: an incident fans out to each child of its household."""
    if isinstance(event, Incident):
        return tuple(c.child_id for c in event.children)
    return (event.child_id,)
