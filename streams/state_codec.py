"""One child's :class:`~streams.domain.case.CaseState` as bytes, for the changelog of the live
pipeline's ``cases`` table (a Kafka topic: JSON through orjson, never pickle).

>>> from streams.domain.case import CaseState
>>> state = CaseState("C1", seen={"e1": 1_709_719_200_000}, latest=1_709_719_200_000)
>>> decode_case(encode_case(state)) == state
True
>>> try:
...     decode_case(b'{"v": 1}')
... except InvalidEvent as exc:
...     print(exc.reason)
case state field 'child_id': expected a non-empty string, received nothing (the field is missing)

The encoding is a JSON object with a format version ``v`` and one field per ``CaseState`` field;
facts, steps, deadlines and alerts are arrays in a fixed field order (a state is written once per
event, so it is kept short). Every order the engine iterates in (incidents, episodes, alerts,
steps) is kept, so a decoded state gives the very alerts, in the very order, of the original.

:func:`decode_case` checks the whole shape and raises :class:`~streams.errors.InvalidEvent`,
naming the field, for anything else: a corrupt or foreign record on the changelog is reported,
never half-loaded.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import orjson

from streams.codec import enum_table
from streams.domain.alerts import Alert, AlertStatus, Mode, RuleId, Severity
from streams.domain.case import CaseState, DaFact, Episode, ReferralFact, Step
from streams.domain.events import Agency, MissingStatus, RiskLevel
from streams.errors import InvalidEvent

__all__ = ["FORMAT_VERSION", "decode_case", "encode_case"]

FORMAT_VERSION: Final = 1
"""Written as ``v``; a decoder refuses a version it does not know."""

_E = TypeVar("_E")

# --------------------------------------------------------------------------------------------
# Encoding


def encode_case(state: CaseState) -> bytes:
    """The bytes of ``state`` (the inverse of :func:`decode_case`)."""
    return orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "child_id": state.child_id,
            "seen": state.seen,
            "incidents": [list(f) for f in state.incidents.values()],
            "episodes": [_episode(e) for e in state.episodes.values()],
            "referrals": [list(r) for r in state.referrals],
            "pending": state.pending,
            "alerts": [_alert(a) for a in state.alerts.values()],
            "sg05": state.sg05,
            "latest": state.latest,
            "pruned_to": state.pruned_to,
            "oldest": state.oldest,
            "wake": state.wake,
        }
    )


def _episode(e: Episode) -> list[Any]:
    """[episode_id, last_at, steps, index of the report step, index of the return step]: the
    first report and return are steps of the episode, named by position."""
    steps = e.steps
    return [
        e.episode_id,
        e.last_at,
        [list(s) for s in steps],
        None if e.report is None else _index(steps, e.report),
        None if e.returned is None else _index(steps, e.returned),
    ]


def _index(steps: list[Step], step: Step) -> int:
    for i, s in enumerate(steps):
        if s is step:
            return i
    return steps.index(step)  # an equal step (a state built by hand); ValueError if none


def _alert(a: Alert) -> list[Any]:
    return [
        a.alert_id,
        a.rule_id,
        a.child_id,
        a.trigger_id,
        a.severity,
        a.raised_at,
        a.due_at,
        a.evidence,
        a.summary,
        a.recommended_action,
        a.status,
        a.resolved_at,
        a.mode,
        a.detected_at,
    ]


# --------------------------------------------------------------------------------------------
# Decoding: every value checked, every failure an InvalidEvent naming its field


def decode_case(data: bytes) -> CaseState:
    """The state in ``data`` (from :func:`encode_case`); raises :class:`InvalidEvent`."""
    try:
        obj = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise InvalidEvent(f"case state is not JSON: {exc}") from exc
    if type(obj) is not dict:
        raise _bad("", "an object", obj)
    version = obj.get("v", _MISSING)
    if version != FORMAT_VERSION or type(version) is not int:
        raise _bad("v", f"format version {FORMAT_VERSION}", version)
    state = CaseState(_str(obj.get("child_id", _MISSING), "child_id"))
    state.seen = _seen(obj.get("seen", _MISSING))
    for i, item in enumerate(_list(obj.get("incidents", _MISSING), "incidents")):
        fact = _incident(item, f"incidents[{i}]")
        state.incidents[fact.incident_id] = fact
    for i, item in enumerate(_list(obj.get("episodes", _MISSING), "episodes")):
        episode = _decode_episode(item, f"episodes[{i}]")
        state.episodes[episode.episode_id] = episode
    state.referrals = [
        _referral(item, f"referrals[{i}]")
        for i, item in enumerate(_list(obj.get("referrals", _MISSING), "referrals"))
    ]
    state.pending = [
        _deadline(item, f"pending[{i}]")
        for i, item in enumerate(_list(obj.get("pending", _MISSING), "pending"))
    ]
    for i, item in enumerate(_list(obj.get("alerts", _MISSING), "alerts")):
        alert = _decode_alert(item, f"alerts[{i}]")
        state.alerts[(alert.rule_id, alert.trigger_id)] = alert
    state.sg05 = _sg05(obj.get("sg05", _MISSING))
    state.latest = _int(obj.get("latest", _MISSING), "latest")
    state.pruned_to = _int(obj.get("pruned_to", _MISSING), "pruned_to")
    state.oldest = _int(obj.get("oldest", _MISSING), "oldest")
    wake = obj.get("wake", _MISSING)
    state.wake = None if wake is None else _int(wake, "wake")
    return state


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


def _show(value: object) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= 60 else text[:56] + "..."


def _bad(field: str, expected: str, received: object) -> InvalidEvent:
    where = f" field '{field}'" if field else ""
    return InvalidEvent(
        f"case state{where}: expected {expected}, received {_show(received)}", field=field or None
    )


def _str(value: object, field: str) -> str:
    if type(value) is str and value:
        return value
    raise _bad(field, "a non-empty string", value)


def _opt_str(value: object, field: str) -> str | None:
    return None if value is None else _str(value, field)


def _int(value: object, field: str) -> int:
    if type(value) is int:
        return value
    raise _bad(field, "an integer", value)


def _opt_int(value: object, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _bool(value: object, field: str) -> bool:
    if value is True or value is False:
        return value
    raise _bad(field, "true or false", value)


def _list(value: object, field: str, size: int | None = None) -> list[Any]:
    if type(value) is list and (size is None or len(value) == size):
        return value
    expected = "a list" if size is None else f"a list of {size} items"
    raise _bad(field, expected, value)


_RULES: Final = enum_table(RuleId)
_SEVERITIES: Final = enum_table(Severity)
_STATUSES: Final = enum_table(AlertStatus)
_MODES: Final = enum_table(Mode)
_STEP_STATUSES: Final = enum_table(MissingStatus)
_RISKS: Final = enum_table(RiskLevel)
_AGENCIES: Final = enum_table(Agency)


def _enum(value: object, field: str, table: tuple[dict[str, _E], str]) -> _E:
    member = table[0].get(value) if type(value) is str else None
    if member is None:
        raise _bad(field, f"one of {table[1]}", value)
    return member


def _seen(value: object) -> dict[str, int]:
    if type(value) is not dict:
        raise _bad("seen", "an object of event_id -> time", value)
    for event_id, at in value.items():
        if type(at) is not int or not event_id:
            raise _bad(f"seen.{event_id}", "an integer time", at)
    return value


def _sg05(value: object) -> dict[str, bool]:
    if type(value) is not dict:
        raise _bad("sg05", "an object of episode_id -> true or false", value)
    for episode_id, opened in value.items():
        _bool(opened, f"sg05.{episode_id}")
    return value


def _incident(value: object, field: str) -> DaFact:
    at, incident_id, event_id, present, age, dash_high = _list(value, field, 6)
    return DaFact(
        _int(at, f"{field}[0]"),
        _str(incident_id, f"{field}[1]"),
        _str(event_id, f"{field}[2]"),
        _bool(present, f"{field}[3]"),
        _opt_int(age, f"{field}[4]"),
        _bool(dash_high, f"{field}[5]"),
    )


def _step(value: object, field: str) -> Step:
    at, status, risk, looked_after, event_id = _list(value, field, 5)
    return Step(
        _int(at, f"{field}[0]"),
        _enum(status, f"{field}[1]", _STEP_STATUSES),
        None if risk is None else _enum(risk, f"{field}[2]", _RISKS),
        _bool(looked_after, f"{field}[3]"),
        _str(event_id, f"{field}[4]"),
    )


def _decode_episode(value: object, field: str) -> Episode:
    episode_id, last_at, raw_steps, report, returned = _list(value, field, 5)
    steps = [_step(s, f"{field}[2][{i}]") for i, s in enumerate(_list(raw_steps, f"{field}[2]"))]
    episode = Episode(_str(episode_id, f"{field}[0]"), steps)
    episode.last_at = _int(last_at, f"{field}[1]")
    episode.report = _anchor(steps, report, MissingStatus.REPORTED, f"{field}[3]")
    episode.returned = _anchor(steps, returned, MissingStatus.RETURNED, f"{field}[4]")
    return episode


def _anchor(steps: list[Step], index: object, status: MissingStatus, field: str) -> Step | None:
    """The step at ``index``, which must have ``status`` (the first report or return)."""
    if index is None:
        return None
    if type(index) is int and 0 <= index < len(steps) and steps[index].status is status:
        return steps[index]
    raise _bad(field, f"the index of a {status} step, or null", index)


def _referral(value: object, field: str) -> ReferralFact:
    at, agency, incident_id, episode_id, event_id = _list(value, field, 5)
    return ReferralFact(
        _int(at, f"{field}[0]"),
        _enum(agency, f"{field}[1]", _AGENCIES),
        _opt_str(incident_id, f"{field}[2]"),
        _opt_str(episode_id, f"{field}[3]"),
        _str(event_id, f"{field}[4]"),
    )


def _deadline(value: object, field: str) -> tuple[int, str, str]:
    due, rule, trigger = _list(value, field, 3)
    # A wake marker has no rule (see streams.domain.case).
    return (
        _int(due, f"{field}[0]"),
        "" if rule == "" else _enum(rule, f"{field}[1]", _RULES),
        _str(trigger, f"{field}[2]"),
    )


def _decode_alert(value: object, field: str) -> Alert:
    (
        alert_id,
        rule_id,
        child_id,
        trigger_id,
        severity,
        raised_at,
        due_at,
        evidence,
        summary,
        recommended_action,
        status,
        resolved_at,
        mode,
        detected_at,
    ) = _list(value, field, 14)
    return Alert(
        _str(alert_id, f"{field}[0]"),
        _enum(rule_id, f"{field}[1]", _RULES),
        _str(child_id, f"{field}[2]"),
        _str(trigger_id, f"{field}[3]"),
        _enum(severity, f"{field}[4]", _SEVERITIES),
        _int(raised_at, f"{field}[5]"),
        _int(due_at, f"{field}[6]"),
        tuple(_str(e, f"{field}[7][{i}]") for i, e in enumerate(_list(evidence, f"{field}[7]"))),
        _str(summary, f"{field}[8]"),
        _str(recommended_action, f"{field}[9]"),
        _enum(status, f"{field}[10]", _STATUSES),
        _opt_int(resolved_at, f"{field}[11]"),
        _enum(mode, f"{field}[12]", _MODES),
        _int(detected_at, f"{field}[13]"),
    )
