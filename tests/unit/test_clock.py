"""The Kafka pipeline's clock in replay mode follows the replayer's ticks, not each event. Any
tick schedule must give the alerts of the inline engine's event-driven watermark."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.detector import Detector
from streams.domain.events import Event
from streams.domain.params import Params
from streams.domain.time import DAY
from tests.unit.rulekit import T0, referral, run
from tests.unit.test_properties import final, worlds


def ticked(events: list[Event], every: list[int], until: int, params: Params | None = None) -> dict:
    """Feed with the clock moved only by ticks after some events (as the worker does)."""
    d = Detector(params, now=lambda: 0, clock_from_events=False)
    for i, event in enumerate(events):
        d.feed(event)
        last_at_this_time = i + 1 == len(events) or events[i + 1].occurred_at > event.occurred_at
        if every[i % len(every)] == 0 and last_at_this_time:
            d.advance_to(event.occurred_at + 1)  # everything up to this event time has been sent
    d.finish(until)
    return final(d.alerts())


@settings(max_examples=200, deadline=None)
@given(worlds(), st.lists(st.integers(0, 5), min_size=1, max_size=10))
def test_any_tick_schedule_gives_the_alerts_of_the_event_watermark(
    events: list[Event], every: list[int]
) -> None:
    until = T0 + 100 * DAY
    d = Detector(now=lambda: 0)
    d.feed_all(events)
    d.finish(until)
    assert ticked(events, every, until) == final(d.alerts())


def test_a_late_action_beyond_the_retention_never_resolves_whatever_the_clock() -> None:
    """Found on a 10k-event world: whether an action 188 days after a deadline resolved the
    alert depended on when pruning ran. The window is now a rule: up to the retention."""
    params = Params(retention=30 * DAY)
    from tests.unit.rulekit import da

    events = [da("I1", T0, ("C1", True, 9))]
    events += [referral("Z", T0 + i * DAY) for i in range(1, 40)]
    events.append(referral("C1", T0 + DAY + 31 * DAY))  # after due + retention
    events.sort(key=lambda e: e.occurred_at)
    fine = run(events, params=params)
    coarse = ticked(events, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1], events[-1].occurred_at, params)
    statuses = {(a.rule_id, a.status) for a in fine if a.child_id == "C1"}
    assert ("SG01", "RAISED") in statuses
    assert final(fine) == coarse
