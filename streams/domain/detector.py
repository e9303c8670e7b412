"""The detection engine: many children's cases, one event-time clock, the deadlines in between.

The same engine runs the inline backtest (all children in one process) and each partition of
the live pipeline (the children of that partition, with their cases in a changelog-backed table
passed in as ``states``: every state the engine changes is written back to it, every child it
prunes away is deleted from it).

The schedule: each child is woken when the clock passes its earliest open deadline, or once it
has been quiet for the retention; a wake-up evaluates its deadlines and, at most once a day of
event time, prunes facts older than the retention. A child's next wake-up is kept in its own
state (``CaseState.wake``), the heap here only indexes them, so an engine built over saved
states with the saved ``clock`` and ``max_seen`` continues exactly where the old one stopped.

>>> from streams.domain.events import Incident, HouseholdChild, IncidentType
>>> from streams.domain.time import HOUR, parse_rfc3339
>>> d = Detector()
>>> t = parse_rfc3339("2024-03-06T10:00:00Z")  # a Wednesday
>>> kids = (HouseholdChild("C1", True, 9),)
>>> d.feed(Incident("e1", t, "I1", IncidentType.DOMESTIC_ABUSE, None, kids))
[]
>>> sorted(str(a.rule_id) for a in d.finish(until=t + 30 * HOUR))
['SG01', 'SG02']
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass

from streams.domain.alerts import Alert, Mode
from streams.domain.case import CaseState, Context, advance, apply_event, prune, quiet_from
from streams.domain.events import Event, Incident
from streams.domain.params import Params
from streams.domain.time import DAY, Millis

_NEVER = -(2**62)


def wall_clock_ms() -> Millis:
    """Processing time now; the one impure default, replaced in tests."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class DetectorStats:
    events: int = 0
    """Events fed, duplicates and late ones included."""
    duplicates: int = 0
    late: int = 0
    """Applied although older than the clock (beyond the allowed lateness)."""
    too_late: int = 0
    """Dropped: older than the clock by more than the retention."""
    alert_versions: int = 0
    """Alert versions produced (a raise, then each status change)."""


class Detector:
    """Feed events in any number of calls; read alert versions as they are produced.

    ``feed`` applies one event and advances the clock to the new watermark; ``tick`` advances
    the clock by processing time (live mode) without an event; ``finish`` advances it to the end
    of a replay. Each returns the alert versions produced, in order. ``alerts`` gives the latest
    version of every alert.
    """

    def __init__(
        self,
        params: Params | None = None,
        *,
        mode: Mode = Mode.REPLAY,
        until: Millis | None = None,
        now: Callable[[], Millis] = wall_clock_ms,
        states: MutableMapping[str, CaseState] | None = None,
        clock: Millis | None = None,
        max_seen: Millis | None = None,
        clock_from_events: bool = True,
    ) -> None:
        """``states``, ``clock`` and ``max_seen`` taken from a detector that stopped (a worker
        that recovers its table from the changelog) make this one continue exactly as that
        one would have: each state records when it is to be woken next.

        With ``clock_from_events=False`` events do not move the clock; the caller moves it with
        :meth:`advance_to` (the Kafka pipeline's replay ticks: "everything up to t has been
        sent"), and with :meth:`tick` and :meth:`finish` as usual."""
        self.params = params or Params()
        self._retention = self.params.retention
        self._lateness = self.params.lateness
        self.ctx = Context(self.params, mode, until, 0)
        self._now = now
        self.states: MutableMapping[str, CaseState] = {} if states is None else states
        self.clock: Millis = _NEVER if clock is None else clock
        """The watermark: deadlines before it have been evaluated."""
        self.max_seen: Millis = _NEVER if max_seen is None else max_seen
        self.stats = DetectorStats()
        self._clock_from_events = clock_from_events
        self._wakeups: list[Millis] = []
        """Heap of the distinct wake-up times in :attr:`_waking`."""
        self._waking: dict[Millis, list[str]] = {}
        """Wake-up time -> the children to wake then. An entry whose child has since been
        rescheduled (its ``CaseState.wake`` differs) is stale and skipped. Children are woken
        in (time, child_id) order, as a heap of (time, child_id) would give; but a heap of plain
        integers compares them in C without tuples (measured on 60,000 children: a pop and a
        push cost 2.2 us with tuples, 0.8 us with integers)."""
        self._final: list[Alert] = []
        for child_id, state in self.states.items():
            if state.wake is None:
                self._schedule(child_id, state)
            else:
                self._wake_at(state.wake, child_id)

    # -- input -----------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Alert]:
        """Apply one event, then move the clock to its watermark."""
        stats = self.stats
        stats.events += 1
        at = event.occurred_at
        clock = self.clock
        retention = self._retention
        if at < clock - retention:
            stats.too_late += 1
            return []
        ctx = self.ctx
        ctx.now = self._now()
        states = self.states
        out: list[Alert] = []
        children: Iterable[str]
        if isinstance(event, Incident):
            kids = event.children
            children = (
                (kids[0].child_id,) if len(kids) == 1 else dict.fromkeys(c.child_id for c in kids)
            )
        else:
            children = (event.child_id,)
        duplicate = False
        for child_id in children:
            state = states.get(child_id)
            if state is None:
                state = CaseState(child_id)
            elif event.event_id in state.seen:
                duplicate = True
                continue
            found = apply_event(state, event, clock, ctx)
            if found:
                out += found
            # Wake the child at its next deadline, unless it is already to be woken earlier
            # (self._schedule, inline: this runs for every event).
            pending = state.pending
            if pending and pending[0][0] < state.latest + retention:
                wake = pending[0][0]
            else:
                wake = _next_wake(state, retention)
            current = state.wake
            if current is None or wake < current:
                state.wake = wake
                self._wake_at(wake, child_id)
            states[child_id] = state  # after every change: a table's changelog sees it
        if duplicate:
            stats.duplicates += 1
        elif at < clock:
            stats.late += 1
        if at > self.max_seen:
            self.max_seen = at
            if self._clock_from_events:
                # self._advance(at - lateness), with its cheap half inline: nothing is due
                # after about half the events.
                target = at - self._lateness
                until = ctx.until
                if until is not None and target > until + 1:
                    target = until + 1  # deadlines after --until never fire
                if target > self.clock:
                    heap = self._wakeups
                    if heap and heap[0] < target:
                        out += self._advance(target)
                    else:
                        self.clock = target
        if out:
            stats.alert_versions += len(out)
        return out

    def feed_all(self, events: Iterable[Event]) -> list[Alert]:
        out: list[Alert] = []
        for event in events:
            out += self.feed(event)
        return out

    def observe(self, event_time: Millis) -> list[Alert]:
        """A clock tick carrying an event time (a replay's ticks): as an event without facts."""
        if event_time > self.max_seen:
            self.max_seen = event_time
            if self._clock_from_events:
                self.ctx.now = self._now()
                return self._counted(self._advance(event_time - self.params.lateness))
        return []

    def advance_to(self, clock: Millis) -> list[Alert]:
        """Move the clock to ``clock`` (no lateness is taken off: the caller knows every event
        before it has been fed) and fire the deadlines it passes; an earlier clock is ignored."""
        self.ctx.now = self._now()
        return self._counted(self._advance(clock))

    def tick(self, wall_time: Millis | None = None) -> list[Alert]:
        """Live mode: processing time also advances the clock (minus the same lateness)."""
        now = self._now() if wall_time is None else wall_time
        self.ctx.now = now
        return self._counted(self._advance(now - self.params.lateness))

    def finish(self, until: Millis | None = None) -> list[Alert]:
        """End of a replay: advance the clock to ``until`` (default: the greatest event time
        seen, or the ``until`` given at construction) and fire every deadline up to it."""
        if until is None:
            until = self.ctx.until if self.ctx.until is not None else self.max_seen
        if until == _NEVER:
            return []
        self.ctx.until = until if self.ctx.until is None else min(until, self.ctx.until)
        self.ctx.now = self._now()
        return self._counted(self._advance(until + 1))  # deadlines due <= until fire

    # -- output ----------------------------------------------------------------------------

    @property
    def until(self) -> Millis | None:
        """No alert is raised after this: the ``until`` given, or the end :meth:`finish` chose."""
        return self.ctx.until

    def drain_final(self) -> list[Alert]:
        """Alerts that can no longer change (their facts aged out of the retention)."""
        final, self._final = self._final, []
        return final

    def alerts(self) -> list[Alert]:
        """The latest version of every alert not yet drained, by (raised_at, rule, child)."""
        return sorted(self._iter_alerts(), key=_alert_order)

    def _iter_alerts(self) -> Iterator[Alert]:
        yield from self._final
        for state in self.states.values():
            yield from state.alerts.values()

    # -- the clock -------------------------------------------------------------------------

    def _counted(self, out: list[Alert]) -> list[Alert]:
        self.stats.alert_versions += len(out)
        return out

    def _advance(self, target: Millis) -> list[Alert]:
        until = self.ctx.until
        if until is not None and target > until + 1:
            target = until + 1  # deadlines after --until never fire
        if target <= self.clock:
            return []
        self.clock = target
        heap = self._wakeups
        if not heap or heap[0] >= target:
            return []  # nothing due: about half the events
        out: list[Alert] = []
        states = self.states
        ctx = self.ctx
        retention = self.params.retention
        horizon = target - retention
        waking = self._waking
        final = self._final
        pop = heapq.heappop
        heappush = heapq.heappush
        while heap and heap[0] < target:
            wake = pop(heap)
            children = waking.pop(wake)
            if len(children) > 1:
                children.sort()  # children due at the same time are woken in child_id order
            for child_id in children:
                state = states.get(child_id)
                if state is None or state.wake != wake:
                    continue  # superseded by an earlier wakeup for the same child
                pending = state.pending
                if pending and pending[0][0] < target:
                    found = advance(state, target, ctx)
                    if found:
                        out += found
                # Pruning at most once a day of event time, at these wake-ups (those of every
                # deadline, wake markers included): what a very late event still finds depends
                # on when it ran, so the times are kept as they were.
                if state.latest < horizon or horizon >= state.pruned_to + DAY:
                    dropped = prune(state, horizon)
                    if dropped:
                        final += dropped
                    if not state.seen and not state.alerts:  # state.is_empty()
                        del states[child_id]
                        continue
                # Every due before the clock has been evaluated, and a child quiet for the
                # retention has been dropped: the next wake-up is never a time already
                # passed...
                pending = state.pending
                if pending and pending[0][0] < state.latest + retention:
                    next_wake = pending[0][0]  # _next_wake's quick answer, inline
                else:
                    next_wake = _next_wake(state, retention)
                if next_wake < target:
                    # ...unless the state was not built by this engine (alerts with no facts,
                    # say): nothing can change it any more, and waking it again would never end.
                    final += state.alerts.values()
                    del states[child_id]
                    continue
                state.wake = next_wake
                bucket = waking.get(next_wake)  # self._wake_at, inline
                if bucket is None:
                    waking[next_wake] = [child_id]
                    heappush(heap, next_wake)
                else:
                    bucket.append(child_id)
                states[child_id] = state
        return out

    def _wake_at(self, wake: Millis, child_id: str) -> None:
        """Add a wake-up for the child (see :attr:`_waking`)."""
        children = self._waking.get(wake)
        if children is None:
            self._waking[wake] = [child_id]
            heapq.heappush(self._wakeups, wake)
        else:
            children.append(child_id)

    def _schedule(self, child_id: str, state: CaseState) -> None:
        """Wake the child at its next deadline, or when it has been quiet for the retention,
        unless it is already to be woken earlier."""
        wake = _next_wake(state, self.params.retention)
        current = state.wake
        if current is None or wake < current:
            state.wake = wake
            self._wake_at(wake, child_id)


def _next_wake(state: CaseState, retention: Millis) -> Millis:
    """The child's earliest open deadline, or when it has been quiet for the retention
    (:func:`~streams.domain.case.quiet_from`), whichever comes first."""
    pending = state.pending
    if pending:
        due = pending[0][0]
        if due < state.latest + retention:
            # Quiet from no earlier than its latest fact: no need to look at its alerts (a
            # loop, and this runs for every event).
            return due
        return min(due, quiet_from(state) + retention)
    return quiet_from(state) + retention


def _alert_order(a: Alert) -> tuple[Millis, str, str, str]:
    return (a.raised_at, a.rule_id, a.child_id, a.trigger_id)
