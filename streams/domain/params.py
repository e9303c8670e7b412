"""The rules' parameters: every duration of SPEC section 4, with its default and its source.

Configuration enters once: the CLI builds a :class:`Params` from settings and hands it to the core.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from streams.domain.time import DAY, HOUR, MINUTE, Millis, from_datetime, to_datetime


@dataclass(frozen=True, slots=True)
class Params:
    """Durations in milliseconds; thresholds in counts."""

    lateness: Millis = 2 * MINUTE
    """Allowed lateness: the watermark trails the greatest event time by this much."""
    retention: Millis = 180 * DAY
    """How long a child's facts are kept behind the clock. Covers the 90-day look-backs of
    SG04-SG06 for events up to 90 days late; events older than this are dropped and counted."""

    da_referral_deadline: Millis = 24 * HOUR
    """SG01. No national police deadline [S8]; councils decide on a referral in one working
    day [S9] and child PPNs are reviewed daily [S11], so 24 hours."""
    encompass_time: clock_time = clock_time(8, 30)
    """SG02. Operation Encompass: the school is told before the next school day starts [S12]."""
    encompass_zone: str = "Europe/London"
    review_deadline: Millis = 4 * HOUR
    """SG03. The APP says "regularly review and confirm" with no interval [S1]: local default."""
    lookback: Millis = 90 * DAY
    """SG04, SG05 and SG06's look-back. No national repeat-missing window [S6]: local default."""
    repeat_episodes: int = 3
    """SG05: distinct episodes in the look-back that make a child a repeat missing child."""
    repeat_referral_deadline: Millis = 24 * HOUR
    """SG05: time to refer a repeat missing child to children's social care."""
    return_interview_deadline: Millis = 72 * HOUR
    """SG06. DfE statutory guidance (2014): a return interview within 72 hours [S5]."""
    return_repeat_episodes: int = 2
    """SG06: other episodes in the look-back that make the alert HIGH."""
    long_missing_deadline: Millis = 24 * HOUR
    """SG07. Local procedures: a review when missing over 24 hours [S7]."""
    cumulative_window: Millis = 30 * DAY
    """SG08: domestic abuse and a missing episode this close together are a cumulative risk."""
    cumulative_deadline: Millis = 24 * HOUR

    def encompass_due(self, incident_at: Millis) -> Millis:
        """08:30 local time on the first Monday-Friday after the incident's local date."""
        local_date = to_datetime(incident_at).astimezone(_zone(self.encompass_zone)).date()
        return _next_weekday_at(local_date, self.encompass_time, self.encompass_zone)


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.lru_cache(maxsize=8192)
def _next_weekday_at(local_date: date, at: clock_time, zone: str) -> Millis:
    day = local_date + timedelta(days=1)
    while day.weekday() >= 5:  # Saturday, Sunday
        day += timedelta(days=1)
    return from_datetime(datetime.combine(day, at, tzinfo=_zone(zone)))
