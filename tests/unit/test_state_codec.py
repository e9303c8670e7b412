"""The case state codec: every state round-trips exactly; anything else is an InvalidEvent."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.case import CaseState
from streams.domain.detector import Detector
from streams.domain.events import Event
from streams.domain.params import Params
from streams.domain.time import DAY
from streams.errors import InvalidEvent
from streams.state_codec import decode_case, encode_case
from tests.unit.rulekit import da, referral, reported, returned, reviewed, t
from tests.unit.test_properties import worlds


def _round_trips(state: CaseState) -> None:
    data = encode_case(state)
    back = decode_case(data)
    assert back == state
    assert encode_case(back) == data
    # The first report and return are the very steps of the episode, not copies.
    for ep in back.episodes.values():
        assert ep.report is None or any(s is ep.report for s in ep.steps)
        assert ep.returned is None or any(s is ep.returned for s in ep.steps)


@settings(max_examples=100, deadline=None)
@given(worlds(), st.sampled_from([None, 5 * DAY]))
def test_every_state_of_a_run_round_trips(events: list[Event], retention: int | None) -> None:
    d = Detector(Params() if retention is None else Params(retention=retention), now=lambda: 0)
    for event in events:
        d.feed(event)
        for state in d.states.values():
            _round_trips(state)
    d.finish(t(days=100))
    for state in d.states.values():
        _round_trips(state)


def _a_state() -> CaseState:
    """A state with every kind of fact, a deadline, a wake marker, an alert and a decision."""
    d = Detector(now=lambda: 0)
    d.feed_all(
        [
            reported("E0", "C1", t(days=-20), lac=True),
            da("I1", t(days=-3), ("C1", True, 9)),
            reported("E1", "C1", t(days=-2)),
            reviewed("E1", "C1", t(days=-2, hours=1)),
            returned("E1", "C1", t(days=-1)),
            referral("C1", t(hours=-1), incident="I1"),
            reported("E2", "C1", t()),
        ]
    )
    state = d.states["C1"]
    assert state.alerts
    assert state.pending
    assert state.episodes
    assert state.referrals
    return state


def test_a_full_state_round_trips() -> None:
    _round_trips(_a_state())


def _encoded() -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(encode_case(_a_state()))
    return obj


def _with(path: tuple[Any, ...], value: Any) -> bytes:
    """The encoded full state with the value at ``path`` replaced (or deleted, for ``...``)."""
    obj = _encoded()
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(obj)


GARBAGE: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"\x00\x01garbage", "not JSON"),
    "empty": (b"", "not JSON"),
    "a list": (b"[1, 2]", "expected an object"),
    "no version": (_with(("v",), ...), "field 'v'"),
    "a future version": (_with(("v",), 2), "format version 1"),
    "version true": (_with(("v",), True), "field 'v'"),
    "no child_id": (_with(("child_id",), ...), "field 'child_id'"),
    "empty child_id": (_with(("child_id",), ""), "field 'child_id'"),
    "seen not an object": (_with(("seen",), [1]), "field 'seen'"),
    "seen time a string": (_with(("seen", "x"), "1"), "field 'seen.x'"),
    "incidents not a list": (_with(("incidents",), {}), "field 'incidents'"),
    "incident too short": (_with(("incidents", 0), [1, "I1"]), "field 'incidents[0]'"),
    "incident present not a bool": (_with(("incidents", 0, 3), 1), "incidents[0][3]"),
    "step status unknown": (_with(("episodes", 0, 2, 0, 1), "LOST"), "episodes[0][2][0][1]"),
    "step risk unknown": (_with(("episodes", 0, 2, 0, 2), "GREEN"), "episodes[0][2][0][2]"),
    "report index out of range": (_with(("episodes", 0, 3), 99), "episodes[0][3]"),
    "report index not a report": (_with(("episodes", 1, 3), 1), "episodes[1][3]"),
    "referral agency unknown": (_with(("referrals", 0, 1), "POLICE"), "referrals[0][1]"),
    "deadline rule unknown": (_with(("pending", 0, 1), "SG99"), "pending[0][1]"),
    "deadline due a float": (_with(("pending", 0, 0), 1.5), "pending[0][0]"),
    "alert too short": (_with(("alerts", 0), ["a"]), "field 'alerts[0]'"),
    "alert status unknown": (_with(("alerts", 0, 10), "OPEN"), "alerts[0][10]"),
    "alert evidence not a list": (_with(("alerts", 0, 7), "e1"), "alerts[0][7]"),
    "sg05 not a bool": (_with(("sg05",), {"E1": 1}), "sg05.E1"),
    "latest missing": (_with(("latest",), ...), "field 'latest'"),
    "wake a string": (_with(("wake",), "soon"), "field 'wake'"),
}


@pytest.mark.parametrize(("data", "fragment"), GARBAGE.values(), ids=GARBAGE)
def test_garbage_is_an_invalid_event_naming_its_field(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_case(data)
    assert fragment in info.value.reason
    assert len(info.value.reason) < 300  # a reason, not a dump of the record


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_state_or_an_invalid_event(data: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        decode_case(data)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=3),
    st.just([]),
    st.just({}),
    st.just(["SG01", 1]),
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_state_gives_a_state_or_an_invalid_event(data: st.DataObject) -> None:
    """Replace one value anywhere in a valid encoding: never a crash of another kind."""
    obj = _encoded()
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            paths.append((*path, key))
            if isinstance(child, dict | list):
                walk(child, (*path, key))

    walk(obj, ())
    path = data.draw(st.sampled_from(paths))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_values)
    try:
        state = decode_case(orjson.dumps(obj))
    except InvalidEvent:
        return
    assert isinstance(state, CaseState)
