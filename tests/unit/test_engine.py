"""The engine around the rules: recovery from saved states, the states mapping, the schedule."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codec
from streams.domain.alerts import (
    _ALERT_NAMESPACE,
    Alert,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
    alert_id_for,
    new_alert,
)
from streams.domain.case import CaseState
from streams.domain.detector import Detector
from streams.domain.events import (
    Event,
    HouseholdChild,
    Incident,
    MissingReport,
    Referral,
    RiskLevel,
)
from streams.domain.fastinit import constructor
from streams.domain.params import Params
from streams.domain.summaries import local
from streams.domain.time import DAY, HOUR, MINUTE, parse_rfc3339, to_rfc3339
from streams.errors import InvalidEvent
from streams.state_codec import decode_case, encode_case
from tests.unit.rulekit import T0, da, referral, reported, t
from tests.unit.test_properties import final, worlds

UNTIL = T0 + 100 * DAY
PARAMS = {"default": Params(), "short retention": Params(retention=6 * DAY)}


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Event], Params]:
    """A world in arrival order: most events within the lateness, some hours or days late."""
    events = draw(worlds())
    delays = draw(
        st.lists(
            st.one_of(st.integers(0, 2 * MINUTE), st.integers(0, 3 * DAY)),
            min_size=len(events),
            max_size=len(events),
        )
    )
    arriving = zip(events, delays, strict=True)
    keyed = sorted((e.occurred_at + d, i, e) for i, (e, d) in enumerate(arriving))
    return [e for _, _, e in keyed], PARAMS[draw(st.sampled_from(sorted(PARAMS)))]


@settings(max_examples=200, deadline=None)
@given(arrivals(), st.data())
def test_a_detector_rebuilt_from_saved_states_continues_exactly(
    world: tuple[list[Event], Params], data: st.DataObject
) -> None:
    """A worker that restarts from its changelog: the states through the codec, the clock and
    the greatest event time saved. Every alert version after the restart is the one the
    uninterrupted detector produces."""
    events, params = world
    k = data.draw(st.integers(0, len(events)))
    whole = Detector(params, now=lambda: 0)
    before = whole.feed_all(events[:k])
    after = whole.feed_all(events[k:]) + whole.finish(UNTIL)

    first = Detector(params, now=lambda: 0)
    assert first.feed_all(events[:k]) == before
    saved = {child: encode_case(state) for child, state in first.states.items()}
    pruned = first.drain_final()  # already published when they were pruned
    second = Detector(
        params,
        now=lambda: 0,
        states={child: decode_case(data) for child, data in saved.items()},
        clock=first.clock,
        max_seen=first.max_seen,
    )
    assert second.feed_all(events[k:]) + second.finish(UNTIL) == after
    assert final(pruned + second.alerts()) == final(whole.alerts())


class CopyingStates(MutableMapping[str, CaseState]):
    """A table that keeps bytes and hands out a fresh copy on every read (as a store that
    deserialises does): a change the engine does not write back is lost."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes = 0

    def __getitem__(self, child_id: str) -> CaseState:
        return decode_case(self.data[child_id])

    def __setitem__(self, child_id: str, state: CaseState) -> None:
        self.writes += 1
        self.data[child_id] = encode_case(state)

    def __delitem__(self, child_id: str) -> None:
        del self.data[child_id]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)


@settings(max_examples=100, deadline=None)
@given(arrivals())
def test_every_change_is_written_back_to_the_states_mapping(
    world: tuple[list[Event], Params],
) -> None:
    events, params = world
    plain = Detector(params, now=lambda: 0)
    expected = plain.feed_all(events) + plain.finish(UNTIL)
    table = CopyingStates()
    copied = Detector(params, now=lambda: 0, states=table)
    assert copied.feed_all(events) + copied.finish(UNTIL) == expected
    assert final(copied.alerts()) == final(plain.alerts())
    assert set(table.data) == set(plain.states)  # pruned children are deleted from it too


def test_a_quiet_child_is_deleted_from_the_states_after_the_retention() -> None:
    table = CopyingStates()
    d = Detector(Params(retention=10 * DAY), now=lambda: 0, states=table)
    d.feed(da("I1", t(), ("C1", True, 9)))
    assert "C1" in table.data
    # Its alerts (due a day later) can be resolved until the retention after their deadline,
    # so the child is quiet only from then on.
    d.feed(referral("C2", t(days=11)))
    assert "C1" in table.data
    d.feed(referral("C2", t(days=12)))
    assert "C1" not in table.data
    assert {a.rule_id for a in d.drain_final()} == {"SG01", "SG02"}


def test_a_state_with_an_alert_but_no_facts_is_finished_not_woken_forever() -> None:
    """Only a state from elsewhere looks like this; the engine must still terminate."""
    alert = Alert(
        alert_id_for("SG01", "C1", "I9"),
        RuleId.SG01,
        "C1",
        "I9",
        Severity.HIGH,
        t(),
        t(),
        ("e1",),
        "summary",
        "action",
        AlertStatus.RAISED,
        None,
        Mode.REPLAY,
        0,
    )
    state = CaseState("C1", seen={"e1": t(days=5)}, latest=t(), oldest=t(days=5))
    state.alerts[("SG01", "I9")] = alert
    d = Detector(Params(retention=DAY), now=lambda: 0, states={"C1": state})
    d.feed(referral("C2", t(days=9)))
    assert d.drain_final() == [alert]
    assert "C1" not in d.states


def test_an_in_order_report_wakes_the_child_at_every_deadline_time() -> None:
    """A rule that cannot apply is not evaluated, but the child is still woken at its time
    (a marker): the times at which a child may be pruned are those of every deadline."""
    d = Detector(now=lambda: 0)
    d.feed(reported("E1", "C1", t(), risk=RiskLevel.HIGH))
    state = d.states["C1"]
    assert sorted({due for due, _, _ in state.pending}) == [t(hours=4), t(hours=24)]
    assert state.wake == t(hours=4)
    assert ("", "E1") in {(rule, trigger) for _, rule, trigger in state.pending}


def test_the_clock_given_to_a_new_detector_drops_what_is_too_late_for_it() -> None:
    d = Detector(Params(retention=10 * DAY), now=lambda: 0, clock=t(days=30), max_seen=t(days=30))
    assert d.feed(da("I1", t(days=5), ("C1", True, 9))) == []
    assert d.stats.too_late == 1
    assert d.feed(da("I2", t(days=25), ("C1", True, 9))) != []  # late, fires at once
    assert d.clock == t(days=30)
    d.feed(referral("C9", t(days=30, hours=1)))
    assert d.clock == t(days=30, hours=1) - Params().lateness


# ---- the shortcuts of the hot path agree with the library functions they replace ------------

_texts = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates


@settings(max_examples=300, deadline=None)
@given(_texts, _texts, _texts)
def test_alert_ids_are_uuid5_of_rule_child_and_trigger(rule: str, child: str, trigger: str) -> None:
    name = f"{rule}\x1f{child}\x1f{trigger}"
    assert alert_id_for(rule, child, trigger) == str(uuid.uuid5(_ALERT_NAMESPACE, name))


_LONDON = ZoneInfo("Europe/London")
_any_time = st.integers(codec.MIN_MILLIS, codec.MAX_MILLIS)


def _last_sunday_0100_utc(year: int, month: int) -> int:
    """When the UK clocks change (since 1996: the last Sunday of March and October, 01:00 UTC)."""
    day = datetime(year, month, 31, 1, tzinfo=UTC)
    while day.weekday() != 6:
        day = day.replace(day=day.day - 1)
    return parse_rfc3339(day.isoformat())


_near_clock_changes = st.sampled_from(
    [_last_sunday_0100_utc(y, m) for y in range(1996, 2040) for m in (3, 10)]
).flatmap(lambda at: st.integers(at - 2 * HOUR, at + 2 * HOUR))


@settings(max_examples=500, deadline=None)
@given(st.one_of(_any_time, _near_clock_changes))
def test_cached_time_texts_are_the_strftime_texts(at: int) -> None:
    dt = datetime.fromtimestamp(at / 1000, UTC).replace(microsecond=at % 1000 * 1000)
    fraction = f".{at % 1000:03d}" if at % 1000 else ""
    assert to_rfc3339(at) == dt.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    assert local(at) == dt.astimezone(_LONDON).strftime("%a %d %b %Y %H:%M")


_field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 30),
    st.sampled_from(["", " ", "x", "LOW", "REPORTED", "SCHOOL", "DOMESTIC_ABUSE", "HIGH"]),
    st.sampled_from(["2024-05-01T14:30:00Z", "2024-02-30T14:30:00Z", "2024-05-01T24:00:00Z",
                     "2024-05-01T14:60:00Z", "2024-05-01T14:30:00+01:00", "1899-12-31T23:59:59Z",
                     "2024-05-01T14:30:00.5Z", "2024-05-01t14:30:00Z", "2024-05-01T1٤:30:00Z"]),
    st.just([]),
    st.just([{"child_id": "C1", "present": True, "age": 3}] * 2),
)  # fmt: skip
_valid = [
    {"type": "incident", "event_id": "E1", "occurred_at": "2024-05-01T14:30:00Z",
     "incident_id": "I1", "incident_type": "DOMESTIC_ABUSE", "dash_risk": None,
     "children": [{"child_id": "C1", "present": True, "age": 9}]},
    {"type": "missing_report", "event_id": "E2", "occurred_at": "2024-05-01T14:30:00Z",
     "episode_id": "M1", "child_id": "C1", "status": "REPORTED", "risk_level": "LOW",
     "looked_after": False, "age": 12},
    {"type": "referral", "event_id": "E3", "occurred_at": "2024-05-01T14:30:00Z",
     "referral_id": "R1", "child_id": "C1", "agency": "SCHOOL", "incident_id": None,
     "episode_id": None},
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_valid), st.data())
def test_the_fast_json_path_decodes_as_the_full_validator(
    base: dict[str, object], data: st.DataObject
) -> None:
    """A line, valid or with fields replaced or removed: the same event or the same reason."""
    obj = dict(base)
    for key in data.draw(st.lists(st.sampled_from(sorted(base)), max_size=3)):
        if key != "type":
            obj[key] = data.draw(_field_values)
    for key in data.draw(st.lists(st.sampled_from(sorted(base)), max_size=1)):
        obj.pop(key, None)

    def outcome(decode: Callable[[], object]) -> object:
        try:
            return decode()
        except InvalidEvent as exc:
            return exc.reason

    line = orjson.dumps(obj)
    assert outcome(lambda: codec.decode_json_line(line)) == outcome(
        lambda: codec.event_from_dict(orjson.loads(line))
    )


# -- the hot path's shortcuts give exactly what the plain code gives ------------------------------


def test_children_due_at_the_same_time_are_woken_in_child_id_order() -> None:
    """Wake-ups are kept in buckets per time: within one, children go in child_id order (as
    the heap of (time, child_id) did), whatever the order they were scheduled in."""
    d = Detector(now=lambda: 0)
    for child in ("C3", "C1", "C2"):
        d.feed(da(f"I-{child}", t(), (child, True, 18)))  # 18: no SG02
    fired = d.advance_to(t(hours=25))
    assert [(a.rule_id, a.child_id) for a in fired] == [
        ("SG01", "C1"),
        ("SG01", "C2"),
        ("SG01", "C3"),
    ]


@settings(max_examples=300, deadline=None)
@given(_any_time.map(lambda at: at // 1000 * 1000), st.data())
def test_the_fast_time_reader_agrees_with_the_parser(at: int, data: st.DataObject) -> None:
    """Whole seconds in the fast shape are read as the full parser reads them, up to the last
    event time (after it: None, and the full validator rejects the event); any change to a
    character gives the same time or None (then the full parser decides)."""
    text = to_rfc3339(at)
    if at <= codec.MAX_EVENT_MILLIS:
        assert codec._fast_time(text) == parse_rfc3339(text) == at
    else:
        assert codec._fast_time(text) is None
    i = data.draw(st.integers(0, len(text) - 1))
    changed = text[:i] + data.draw(st.sampled_from("09-T:Z+.x ٣")) + text[i + 1 :]
    fast = codec._fast_time(changed)
    if fast is not None:
        assert fast == parse_rfc3339(changed)


_alerts = st.builds(
    Alert,
    alert_id=st.uuids().map(str),
    rule_id=st.sampled_from(RuleId),
    child_id=_texts,
    trigger_id=_texts,
    severity=st.sampled_from(Severity),
    raised_at=_any_time,
    due_at=_any_time,
    evidence=st.lists(_texts, max_size=3).map(tuple),
    summary=_texts,
    recommended_action=_texts,
    status=st.sampled_from(AlertStatus),
    resolved_at=st.none() | _any_time,
    mode=st.sampled_from(Mode),
    detected_at=st.sampled_from([0, T0, T0 + 1]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_alerts, min_size=1, max_size=4))
def test_an_alert_json_line_is_the_json_of_its_dict(alerts: list[Alert]) -> None:
    for alert in alerts:  # several in a row: the cached detected_at text must follow
        expected = orjson.dumps(codec.alert_to_dict(alert), option=orjson.OPT_APPEND_NEWLINE)
        assert codec.alert_json_line(alert) == expected


@settings(max_examples=100, deadline=None)
@given(_alerts)
def test_the_fast_alert_constructor_builds_the_same_frozen_alert(alert: Alert) -> None:
    fields = [getattr(alert, f.name) for f in dataclasses.fields(Alert)]
    built = new_alert(*fields)
    assert type(built) is Alert
    assert built == alert
    assert hash(built) == hash(alert)
    assert repr(built) == repr(alert)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.status = AlertStatus.RESOLVED  # type: ignore[misc]


def test_the_fast_constructor_falls_back_to_the_class_where_it_cannot_apply() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    assert constructor(NoSlots) is NoSlots
    assert constructor(Checked) is Checked
    for cls in (Incident, MissingReport, Referral, HouseholdChild):
        assert constructor(cls) is not cls
