"""The codec: every value round-trips through JSON and Avro; every invalid input is an
InvalidEvent that names its field; garbage bytes never raise anything else."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import codec
from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    DeadLetter,
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
from streams.domain.params import Params
from streams.domain.time import HOUR, from_datetime
from streams.errors import InvalidEvent

T0 = from_datetime(datetime(2024, 5, 1, 14, 30, tzinfo=UTC))  # 2024-05-01T14:30:00Z

INCIDENT = Incident(
    event_id="E1",
    occurred_at=T0,
    incident_id="I1",
    incident_type=IncidentType.DOMESTIC_ABUSE,
    dash_risk=DashRisk.HIGH,
    children=(HouseholdChild("C1", True, 7), HouseholdChild("C2", False, None)),
)
INCIDENT_BARE = Incident(
    event_id="E2",
    occurred_at=T0 + 123,
    incident_id="I2",
    incident_type=IncidentType.OTHER,
    dash_risk=None,
    children=(HouseholdChild("C3", False, 0),),
)
INCIDENT_FULL_HOUSE = Incident(
    event_id="E3",
    occurred_at=T0,
    incident_id="I3",
    incident_type=IncidentType.CHILD_NEGLECT,
    dash_risk=DashRisk.STANDARD,
    children=tuple(HouseholdChild(f"C{i}", i % 2 == 0, i) for i in range(codec.MAX_CHILDREN)),
)
REPORTED = MissingReport(
    event_id="E4",
    occurred_at=T0,
    episode_id="P1",
    child_id="C1",
    status=MissingStatus.REPORTED,
    risk_level=RiskLevel.NO_APPARENT_RISK,
    looked_after=True,
    age=14,
)
REVIEWED = MissingReport(
    "E5", T0 + HOUR, "P1", "C1", MissingStatus.RISK_REVIEWED, RiskLevel.ABSENT, False, 25
)
RETURNED = MissingReport("E6", T0 + 2 * HOUR, "P1", "C1", MissingStatus.RETURNED, None, True, None)
INTERVIEW = MissingReport(
    "E7", T0 + 3 * HOUR, "P1", "C1", MissingStatus.RETURN_INTERVIEW, None, False, 3
)
REFERRAL = Referral("E8", T0, "R1", "C1", Agency.CHILDRENS_SOCIAL_CARE, "I1", None)
REFERRAL_BARE = Referral("E9", T0 + 999, "R2", "C2", Agency.EARLY_HELP, None, None)
REFERRAL_BOTH = Referral("E10", T0, "R3", "C2", Agency.SCHOOL, "I1", "P1")

EVENTS: list[Event] = [
    INCIDENT,
    INCIDENT_BARE,
    INCIDENT_FULL_HOUSE,
    REPORTED,
    REVIEWED,
    RETURNED,
    INTERVIEW,
    REFERRAL,
    REFERRAL_BARE,
    REFERRAL_BOTH,
]

ALERT = Alert(
    alert_id=alert_id_for("SG01", "C1", "I1"),
    rule_id=RuleId.SG01,
    child_id="C1",
    trigger_id="I1",
    severity=Severity.HIGH,
    raised_at=T0 + 24 * HOUR,
    due_at=T0 + 24 * HOUR,
    evidence=("E1",),
    summary="Child C1 was listed in domestic abuse incident I1 and not referred.",
    recommended_action="Refer the child to children's social care.",
    status=AlertStatus.RAISED,
    resolved_at=None,
    mode=Mode.LIVE,
    detected_at=T0 + 24 * HOUR + 5,
)
ALERT_RESOLVED = Alert(
    alert_id=alert_id_for("SG03", "C1", "P1"),
    rule_id=RuleId.SG03,
    child_id="C1",
    trigger_id="P1",
    severity=Severity.MEDIUM,
    raised_at=T0 + 4 * HOUR,
    due_at=T0 + 4 * HOUR,
    evidence=("E4", "E5", "E6"),
    summary="Missing episode P1 graded no apparent risk was not reviewed within 4 hours.",
    recommended_action="Review the risk.",
    status=AlertStatus.RESOLVED,
    resolved_at=T0 + 5 * HOUR + 1,
    mode=Mode.REPLAY,
    detected_at=T0,
)
ALERTS = [ALERT, ALERT_RESOLVED]

ACTIONS = [
    AlertAction("A1", ALERT.alert_id, ActionKind.ACKNOWLEDGE, "hub.user1", T0),
    AlertAction("A2", ALERT.alert_id, ActionKind.ASSIGN, "hub.user1", T0 + 1, assignee="sw.jones"),
    AlertAction("A3", ALERT.alert_id, ActionKind.NOTE, "sw.jones", T0 + 2, note="Called school"),
    AlertAction("A4", ALERT.alert_id, ActionKind.CLOSE, "sw.jones", T0 + 3, outcome="REFERRED"),
    AlertAction(
        "A5", ALERT.alert_id, ActionKind.CLOSE, "sw.jones", T0, note="Done", outcome="DUPLICATE"
    ),
]

DEAD_LETTERS = [
    DeadLetter("safeguarding.incidents", 3, 12345, "incident field 'children': ...", b"{}", T0),
    DeadLetter("history.jsonl", None, 17, "line is not valid JSON", b"\xff\xfe not utf-8", T0),
    DeadLetter("safeguarding.referrals", None, None, "empty", b"", T0 + 1),
]


def event_id(value: object) -> str:
    return getattr(value, "event_id", None) or getattr(value, "action_id", "") or repr(value)[:30]


# --------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("event", EVENTS, ids=event_id)
def test_event_json_round_trip(event: Event) -> None:
    line = codec.encode_json_line(event)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert orjson.loads(line)["type"] == event.type
    assert codec.decode_json_line(line) == event
    assert codec.decode_json_line(line.decode()) == event
    assert codec.event_from_dict(codec.event_to_dict(event)) == event


@pytest.mark.parametrize("event", EVENTS, ids=event_id)
def test_event_avro_round_trip(event: Event) -> None:
    data = codec.encode_avro(event)
    decoded = codec.decode_event_avro(event.type, data)
    assert decoded == event
    assert type(decoded) is type(event)


@pytest.mark.parametrize("event", EVENTS, ids=event_id)
def test_event_avro_agrees_with_reference_implementation(event: Event) -> None:
    """The Apache ``avro`` package reads what we write and we read what it writes."""
    schema = avro.schema.parse(orjson.dumps(codec.load_schema(event.type)).decode())
    reference = avro.io.DatumReader(schema).read(
        avro.io.BinaryDecoder(io.BytesIO(codec.encode_avro(event)))
    )
    assert from_datetime(reference.pop("occurred_at")) == event.occurred_at
    expected = codec.event_to_dict(event)
    del expected["type"], expected["occurred_at"]
    assert reference == expected

    out = io.BytesIO()
    datum = codec.event_to_dict(event)
    del datum["type"]
    datum["occurred_at"] = datetime.fromisoformat(datum["occurred_at"])
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
    assert codec.decode_event_avro(event.type, out.getvalue()) == event


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a.rule_id)
def test_alert_round_trips(alert: Alert) -> None:
    as_json = orjson.loads(orjson.dumps(codec.alert_to_dict(alert)))
    assert codec.alert_from_dict(as_json) == alert
    assert codec.decode_alert_avro(codec.encode_avro(alert)) == alert


def test_alert_to_dict_has_every_field_in_json_words() -> None:
    assert codec.alert_to_dict(ALERT_RESOLVED) == {
        "alert_id": ALERT_RESOLVED.alert_id,
        "rule_id": "SG03",
        "child_id": "C1",
        "trigger_id": "P1",
        "severity": "MEDIUM",
        "raised_at": "2024-05-01T18:30:00Z",
        "due_at": "2024-05-01T18:30:00Z",
        "evidence": ["E4", "E5", "E6"],
        "summary": ALERT_RESOLVED.summary,
        "recommended_action": "Review the risk.",
        "status": "RESOLVED",
        "resolved_at": "2024-05-01T19:30:00.001Z",
        "mode": "replay",
        "detected_at": "2024-05-01T14:30:00Z",
    }
    assert codec.alert_to_dict(ALERT)["resolved_at"] is None


@pytest.mark.parametrize("action", ACTIONS, ids=event_id)
def test_action_round_trips(action: AlertAction) -> None:
    as_json = orjson.loads(orjson.dumps(codec.action_to_dict(action)))
    assert as_json["at"].endswith("Z")
    assert codec.action_from_dict(as_json) == action
    assert codec.decode_action_avro(codec.encode_avro(action)) == action


@pytest.mark.parametrize("letter", DEAD_LETTERS, ids=lambda d: d.source_topic)
def test_dead_letter_round_trips(letter: DeadLetter) -> None:
    assert codec.decode_dead_letter_avro(codec.encode_avro(letter)) == letter
    as_json = orjson.loads(orjson.dumps(codec.dead_letter_to_dict(letter)))
    assert codec.dead_letter_from_dict(as_json) == letter


def test_dead_letter_may_carry_an_oversized_payload() -> None:
    letter = DeadLetter("t", 0, 0, "too big", b"x" * (codec.MAX_RECORD_BYTES + 1), T0)
    assert codec.decode_dead_letter_avro(codec.encode_avro(letter)) == letter


def test_extra_fields_are_ignored() -> None:
    obj = codec.event_to_dict(INCIDENT) | {"reported_by": "a newer producer", "v": 2}
    obj["children"][0]["school"] = "future field"
    assert codec.decode_json_line(orjson.dumps(obj)) == INCIDENT


@pytest.mark.parametrize(
    ("event", "absent"),
    [
        (INCIDENT_BARE, "dash_risk"),
        (RETURNED, "risk_level"),
        (RETURNED, "age"),
        (REFERRAL_BARE, "incident_id"),
        (REFERRAL_BARE, "episode_id"),
    ],
)
def test_nullable_fields_may_be_absent(event: Event, absent: str) -> None:
    obj = codec.event_to_dict(event)
    assert obj.pop(absent) is None
    assert codec.event_from_dict(obj) == event


# --------------------------------------------------------------------------------------------
# Time


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2024-05-01T14:30:00Z", T0),
        ("2024-05-01T14:30:00+00:00", T0),
        ("2024-05-01T15:30:00+01:00", T0),  # British Summer Time
        ("2024-05-01T09:30:00-05:00", T0),
        ("2024-05-02T00:00:00+09:30", T0),
        ("2024-05-01T14:30:00.123Z", T0 + 123),
        ("2024-05-01T15:30:00.5+01:00", T0 + 500),
        ("2024-05-01T14:30:00.123999Z", T0 + 123),  # microseconds are truncated
    ],
)
def test_offsets_are_converted_to_utc(text: str, millis: int) -> None:
    obj = codec.event_to_dict(REFERRAL) | {"occurred_at": text}
    event = codec.event_from_dict(obj)
    assert event.occurred_at == millis
    assert codec.event_to_dict(event)["occurred_at"].endswith("Z")


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T14:30:00", "2024-05-01T14:30:00.123", "2024-05-01 14:30:00", "2024-05-01"],
)
def test_naive_timestamp_is_rejected(text: str) -> None:
    obj = codec.event_to_dict(REFERRAL) | {"occurred_at": text}
    with pytest.raises(InvalidEvent, match="with an offset") as caught:
        codec.event_from_dict(obj)
    assert caught.value.field == "occurred_at"
    assert text in caught.value.reason


def test_utc_is_written_with_z() -> None:
    obj = codec.event_to_dict(INCIDENT_BARE)
    assert obj["occurred_at"] == "2024-05-01T14:30:00.123Z"


# --------------------------------------------------------------------------------------------
# Invalid JSON events: each names its field

DROP = object()


def changed(event: Event, **changes: Any) -> dict[str, Any]:
    """The JSON object of ``event`` with fields changed (``DROP`` removes one)."""
    obj = codec.event_to_dict(event)
    for key, value in changes.items():
        if value is DROP:
            del obj[key]
        else:
            obj[key] = value
    return obj


def child(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"child_id": "C1", "present": True, "age": 7}
    for key, value in changes.items():
        if value is DROP:
            del obj[key]
        else:
            obj[key] = value
    return obj


INVALID_EVENTS = [
    # (id, object, field, fragment of the reason)
    ("type missing", changed(INCIDENT, type=DROP), "type", "nothing (the field is missing)"),
    ("type unknown", changed(INCIDENT, type="alert"), "type", 'received "alert"'),
    ("type not a string", changed(INCIDENT, type=1), "type", "received 1"),
    ("event_id missing", changed(INCIDENT, event_id=DROP), "event_id", "non-empty string"),
    ("event_id empty", changed(INCIDENT, event_id=""), "event_id", 'received ""'),
    ("event_id blank", changed(REFERRAL, event_id="   "), "event_id", "non-empty string"),
    ("event_id number", changed(REPORTED, event_id=5), "event_id", "received 5"),
    ("event_id null", changed(REPORTED, event_id=None), "event_id", "received null"),
    ("time naive", changed(INCIDENT, occurred_at="2024-05-01T14:30:00"), "occurred_at", "offset"),
    ("time words", changed(INCIDENT, occurred_at="yesterday"), "occurred_at", '"yesterday"'),
    ("time as millis", changed(INCIDENT, occurred_at=T0), "occurred_at", f"received {T0}"),
    ("time missing", changed(REFERRAL, occurred_at=DROP), "occurred_at", "missing"),
    ("time 1850", changed(REFERRAL, occurred_at="1850-01-01T00:00:00Z"), "occurred_at", "1900"),
    ("incident_id empty", changed(INCIDENT, incident_id=""), "incident_id", "non-empty"),
    (
        "incident_type unknown",
        changed(INCIDENT, incident_type="ARSON"),
        "incident_type",
        "expected one of DOMESTIC_ABUSE, CHILD_NEGLECT, VIOLENCE, SEXUAL_OFFENCE, "
        'CONCERN_FOR_WELFARE, OTHER, received "ARSON"',
    ),
    (
        "incident_type lower case",
        changed(INCIDENT, incident_type="domestic_abuse"),
        "incident_type",
        '"domestic_abuse"',
    ),
    ("incident_type null", changed(INCIDENT, incident_type=None), "incident_type", "null"),
    ("dash_risk unknown", changed(INCIDENT, dash_risk="SEVERE"), "dash_risk", "or null"),
    ("dash_risk number", changed(INCIDENT, dash_risk=14), "dash_risk", "received 14"),
    ("children empty", changed(INCIDENT, children=[]), "children", "received a list of 0 items"),
    (
        "children 21",
        changed(INCIDENT, children=[child(child_id=f"C{i}") for i in range(21)]),
        "children",
        "1 to 20 children, received a list of 21 items",
    ),
    ("children missing", changed(INCIDENT, children=DROP), "children", "missing"),
    ("children object", changed(INCIDENT, children=child()), "children", "an object"),
    ("child not object", changed(INCIDENT, children=["C1"]), "children[0]", '"C1"'),
    (
        "child_id missing",
        changed(INCIDENT, children=[child(child_id=DROP)]),
        "children[0].child_id",
        "missing",
    ),
    (
        "child_id empty",
        changed(INCIDENT, children=[child(), child(child_id="")]),
        "children[1].child_id",
        '""',
    ),
    (
        "present string",
        changed(INCIDENT, children=[child(present="true")]),
        "children[0].present",
        '"true"',
    ),
    (
        "present int",
        changed(INCIDENT, children=[child(present=1)]),
        "children[0].present",
        "received 1",
    ),
    (
        "present missing",
        changed(INCIDENT, children=[child(present=DROP)]),
        "children[0].present",
        "missing",
    ),
    ("age negative", changed(INCIDENT, children=[child(age=-1)]), "children[0].age", "0 to 25"),
    ("age too old", changed(INCIDENT, children=[child(age=26)]), "children[0].age", "received 26"),
    ("age float", changed(INCIDENT, children=[child(age=7.0)]), "children[0].age", "received 7.0"),
    ("age bool", changed(INCIDENT, children=[child(age=True)]), "children[0].age", "received true"),
    ("age string", changed(INCIDENT, children=[child(age="7")]), "children[0].age", '"7"'),
    (
        "child twice",
        changed(INCIDENT, children=[child(child_id="C9"), child(child_id="C9")]),
        "children[1].child_id",
        "each child once",
    ),
    ("status unknown", changed(REPORTED, status="FOUND"), "status", "REPORTED, RISK_REVIEWED"),
    (
        "risk null when reported",
        changed(REPORTED, risk_level=None),
        "risk_level",
        "missing_report field 'risk_level': expected one of HIGH, MEDIUM, LOW, "
        "NO_APPARENT_RISK, ABSENT for status REPORTED, received null",
    ),
    (
        "risk absent when reviewed",
        changed(REVIEWED, risk_level=DROP),
        "risk_level",
        "for status RISK_REVIEWED, received nothing",
    ),
    ("risk lower case", changed(REPORTED, risk_level="low"), "risk_level", '"low"'),
    (
        "risk when returned",
        changed(RETURNED, risk_level="LOW"),
        "risk_level",
        'expected null (or no field) for status RETURNED, received "LOW"',
    ),
    (
        "risk when interviewed",
        changed(INTERVIEW, risk_level="HIGH"),
        "risk_level",
        "for status RETURN_INTERVIEW",
    ),
    ("looked_after string", changed(REPORTED, looked_after="yes"), "looked_after", '"yes"'),
    ("looked_after int", changed(REPORTED, looked_after=0), "looked_after", "true or false"),
    ("looked_after missing", changed(REPORTED, looked_after=DROP), "looked_after", "missing"),
    ("missing age too old", changed(REPORTED, age=30), "age", "0 to 25"),
    ("episode_id missing", changed(REPORTED, episode_id=DROP), "episode_id", "missing"),
    ("child_id null", changed(REFERRAL, child_id=None), "child_id", "null"),
    (
        "agency unknown",
        changed(REFERRAL, agency="POLICE"),
        "agency",
        "CHILDRENS_SOCIAL_CARE, SCHOOL",
    ),
    ("referral_id list", changed(REFERRAL, referral_id=["R1"]), "referral_id", "a list of 1"),
    ("incident_id empty", changed(REFERRAL, incident_id=""), "incident_id", "or null"),
    ("episode_id number", changed(REFERRAL, episode_id=5), "episode_id", "received 5"),
    (
        "incident in the last week of 9999",
        changed(INCIDENT, occurred_at="9999-12-31T00:00:00Z"),
        "occurred_at",
        "no room for its deadlines",
    ),
    (
        "referral just after the last event time",
        changed(REFERRAL, occurred_at="9999-12-25T00:00:00Z"),
        "occurred_at",
        "to 9999-12-24T23:59:59.999Z",
    ),
]


@pytest.mark.parametrize("event", [INCIDENT, REPORTED, REFERRAL], ids=lambda e: e.type)
def test_the_last_event_time_is_accepted_and_its_deadlines_are_times(event: Event) -> None:
    obj = changed(event, occurred_at="9999-12-24T23:59:59.999Z")
    assert codec.decode_json_line(orjson.dumps(obj)).occurred_at == codec.MAX_EVENT_MILLIS


def test_every_deadline_of_the_last_event_times_is_a_time_an_alert_can_carry() -> None:
    p = Params()
    # The last moment of each day of the last week: one of them is a Friday night, whose
    # Encompass deadline (08:30 on Monday) is the furthest of any rule.
    for days_before in range(7):
        at = codec.MAX_EVENT_MILLIS - days_before * 86_400_000
        assert p.encompass_due(at) <= codec.MAX_MILLIS
        assert at + p.return_interview_deadline <= codec.MAX_MILLIS


@pytest.mark.parametrize(
    ("obj", "field", "fragment"),
    [row[1:] for row in INVALID_EVENTS],
    ids=[row[0] for row in INVALID_EVENTS],
)
def test_invalid_json_event_names_its_field(obj: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        codec.decode_json_line(orjson.dumps(obj))
    assert caught.value.field == field
    assert f"field '{field}'" in caught.value.reason
    assert fragment in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_reason_does_not_echo_a_repeated_child_id() -> None:
    obj = changed(INCIDENT, children=[child(child_id="Jane Doe"), child(child_id="Jane Doe")])
    with pytest.raises(InvalidEvent) as caught:
        codec.event_from_dict(obj)
    assert "Jane" not in caught.value.reason


def test_long_values_are_cut_short_in_the_reason() -> None:
    with pytest.raises(InvalidEvent) as caught:
        codec.event_from_dict(changed(REFERRAL, agency="X" * 10_000))
    assert len(caught.value.reason) < 300


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"\n", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"type": "incident",}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "not a JSON object: received a list of 0 items"),
        (b'"incident"', 'not a JSON object: received "incident"'),
        (b"null", "not a JSON object: received null"),
        (b"42", "not a JSON object: received 42"),
    ],
)
def test_line_that_is_not_a_json_object(line: bytes, fragment: str) -> None:
    with pytest.raises(InvalidEvent, match="line is not") as caught:
        codec.decode_json_line(line)
    assert fragment in caught.value.reason
    if b"\xff" not in line:
        with pytest.raises(InvalidEvent, match="line is not"):
            codec.decode_json_line(line.decode())


def test_event_from_dict_needs_an_object() -> None:
    with pytest.raises(InvalidEvent, match="expected a JSON object, received a list of 1 items"):
        codec.event_from_dict(["x"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Size


def padded_line(size: int, filler: str = "x") -> bytes:
    """A valid referral line of exactly ``size`` bytes, padded with an ignored field."""
    base = orjson.dumps(codec.event_to_dict(REFERRAL) | {"pad": ""})
    pad = (size - len(base)) // len(filler.encode())
    line = orjson.dumps(codec.event_to_dict(REFERRAL) | {"pad": filler * pad})
    assert len(line) == size
    return line


def test_line_of_64_kib_is_accepted_and_one_byte_more_is_not() -> None:
    assert codec.decode_json_line(padded_line(codec.MAX_RECORD_BYTES)) == REFERRAL
    assert codec.decode_json_line(padded_line(codec.MAX_RECORD_BYTES) + b"\r\n") == REFERRAL
    with pytest.raises(InvalidEvent, match=r"record is 65,537 bytes; the limit is 65,536 bytes"):
        codec.decode_json_line(padded_line(codec.MAX_RECORD_BYTES + 1))


def test_oversized_str_line_is_measured_in_utf8_bytes() -> None:
    # "€" is 3 bytes in UTF-8: 22,000 of them are under 64 Ki characters but over 64 KiB.
    line = orjson.dumps(codec.event_to_dict(REFERRAL) | {"pad": "€" * 22_000}).decode()
    assert len(line) < codec.MAX_RECORD_BYTES < len(line.encode())
    with pytest.raises(InvalidEvent, match="the limit is 65,536 bytes"):
        codec.decode_json_line(line)
    fits = orjson.dumps(codec.event_to_dict(REFERRAL) | {"pad": "€" * 21_000}).decode()
    assert codec.decode_json_line(fits) == REFERRAL


@pytest.mark.parametrize("kind", codec.EVENT_KINDS)
def test_oversized_avro_is_rejected_before_decoding(kind: str) -> None:
    with pytest.raises(InvalidEvent, match=r"65,537 bytes; the limit is 65,536"):
        codec.decode_event_avro(kind, b"\x00" * (codec.MAX_RECORD_BYTES + 1))


def test_oversized_avro_event_written_by_another_producer() -> None:
    big = Referral("E" * (codec.MAX_RECORD_BYTES + 10), T0, "R", "C", Agency.SCHOOL, None, None)
    with pytest.raises(InvalidEvent, match="the limit is 65,536 bytes"):
        codec.decode_event_avro("referral", codec.encode_avro(big))


# --------------------------------------------------------------------------------------------
# Avro: values that fit the schema but fail validation


def raw_avro(kind: str, record: dict[str, Any]) -> bytes:
    """Bytes a careless producer could write: valid for the schema, not for the rules."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(codec.load_schema(kind)), record)
    return out.getvalue()


def avro_record(event: Event, **changes: Any) -> dict[str, Any]:
    obj = codec.event_to_dict(event)
    del obj["type"]
    obj["occurred_at"] = event.occurred_at
    obj.update(changes)
    return obj


_AVRO_VALUES = {
    "event_id": st.sampled_from(["E1", "", " ", "E\u00e92"]),
    "incident_id": st.sampled_from(["I1", "", "\t"]),
    "episode_id": st.sampled_from(["M1", "", " "]),
    "referral_id": st.sampled_from(["R1", ""]),
    "child_id": st.sampled_from(["C1", "", " "]),
    "occurred_at": st.sampled_from(
        [
            0,
            codec.MIN_MILLIS - 1,
            codec.MIN_MILLIS,
            codec.MAX_EVENT_MILLIS,
            codec.MAX_EVENT_MILLIS + 1,
            codec.MAX_MILLIS,
            -(2**62),
            2**62,
        ]
    ),
    "dash_risk": st.sampled_from([None, "HIGH", "STANDARD"]),
    "risk_level": st.sampled_from([None, "LOW", "ABSENT", "HIGH"]),
    "status": st.sampled_from(["REPORTED", "RISK_REVIEWED", "RETURNED", "RETURN_INTERVIEW"]),
    "age": st.sampled_from([None, -1, 0, 4, codec.MAX_AGE, codec.MAX_AGE + 1]),
    "looked_after": st.booleans(),
    "agency": st.sampled_from(["SCHOOL", "CHILDRENS_SOCIAL_CARE"]),
    "children": st.lists(
        st.fixed_dictionaries(
            {
                "child_id": st.sampled_from(["C1", "C2", ""]),
                "present": st.booleans(),
                "age": st.sampled_from([None, 3, -2, 99]),
            }
        ),
        max_size=22,
    ),
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([INCIDENT, REPORTED, REFERRAL]), st.data())
def test_the_fast_avro_path_decodes_as_the_full_validator(event: Event, data: Any) -> None:
    """A record valid for the schema, with fields replaced: the same event or the same reason
    from ``decode_event_avro`` (its shortcut first) as from the full readers alone."""
    record = avro_record(event)
    for key in data.draw(st.lists(st.sampled_from(sorted(record)), max_size=3)):
        if key in _AVRO_VALUES:
            record[key] = data.draw(_AVRO_VALUES[key])
    wire = raw_avro(event.type, record)

    def outcome(decode: Any) -> object:
        try:
            return decode()
        except InvalidEvent as exc:
            return exc.reason

    full = codec._EVENT_READERS[event.type]
    decoded = codec._read_avro(wire, event.type, codec.MAX_RECORD_BYTES)
    assert outcome(lambda: codec.decode_event_avro(event.type, wire)) == outcome(
        lambda: full(decoded, codec._avro_time)
    )


INVALID_AVRO = [
    ("children empty", INCIDENT, {"children": []}, "children"),
    (
        "children 21",
        INCIDENT,
        {"children": [child(child_id=f"C{i}") for i in range(21)]},
        "children",
    ),
    ("child_id empty", INCIDENT, {"children": [child(child_id="")]}, "children[0].child_id"),
    ("age negative", INCIDENT, {"children": [child(age=-3)]}, "children[0].age"),
    ("child twice", INCIDENT, {"children": [child(), child()]}, "children[1].child_id"),
    ("event_id empty", INCIDENT, {"event_id": ""}, "event_id"),
    ("risk null when reported", REPORTED, {"risk_level": None}, "risk_level"),
    ("risk when returned", RETURNED, {"risk_level": "HIGH"}, "risk_level"),
    ("age too old", REPORTED, {"age": 99}, "age"),
    ("time before 1900", REFERRAL, {"occurred_at": -(10**14)}, "occurred_at"),
    ("time after 9999", REFERRAL, {"occurred_at": 2**62}, "occurred_at"),
    ("time in the last week of 9999", INCIDENT, {"occurred_at": codec.MAX_MILLIS}, "occurred_at"),
    ("incident_id blank", REFERRAL, {"incident_id": " "}, "incident_id"),
]


@pytest.mark.parametrize(
    ("event", "changes", "field"),
    [row[1:] for row in INVALID_AVRO],
    ids=[row[0] for row in INVALID_AVRO],
)
def test_invalid_avro_event_names_its_field(
    event: Event, changes: dict[str, Any], field: str
) -> None:
    data = raw_avro(event.type, avro_record(event, **changes))
    with pytest.raises(InvalidEvent) as caught:
        codec.decode_event_avro(event.type, data)
    assert caught.value.field == field
    assert f"field '{field}'" in caught.value.reason


# --------------------------------------------------------------------------------------------
# Avro: garbage bytes


def zigzag(n: int) -> bytes:
    """An Avro ``long``."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


GOOD = {
    "incident": codec.encode_avro(INCIDENT),
    "missing_report": codec.encode_avro(REPORTED),
    "referral": codec.encode_avro(REFERRAL),
    "alert": codec.encode_avro(ALERT),
    "alert_action": codec.encode_avro(ACTIONS[1]),
    "dead_letter": codec.encode_avro(DEAD_LETTERS[0]),
}
DECODERS = {
    "incident": lambda data: codec.decode_event_avro("incident", data),
    "missing_report": lambda data: codec.decode_event_avro("missing_report", data),
    "referral": lambda data: codec.decode_event_avro("referral", data),
    "alert": codec.decode_alert_avro,
    "alert_action": codec.decode_action_avro,
    "dead_letter": codec.decode_dead_letter_avro,
}


def garbage(kind: str) -> list[tuple[str, bytes]]:
    good = GOOD[kind]
    return [
        ("empty", b""),
        ("one zero byte", b"\x00"),
        ("all ones", b"\xff" * 40),
        ("a JSON line", codec.encode_json_line(REFERRAL)),
        ("truncated by one", good[:-1]),
        ("first half", good[: len(good) // 2]),
        ("a byte too many", good + b"\x00"),
        ("schema registry header", b"\x00\x00\x00\x00\x07" + good),
        ("huge string length", zigzag(2**62) + b"abc"),
        ("negative string length", zigzag(-5) + b"abc"),
        ("bad utf-8", zigzag(2) + b"\xff\xfe" + good[3:]),
        ("huge array count", good[:20] + zigzag(2**62) + zigzag(2**62)),
        ("negative array block", good[:20] + zigzag(-(2**62)) + zigzag(2**40)),
    ]


GARBAGE = [(kind, name, data) for kind in DECODERS for name, data in garbage(kind)]


@pytest.mark.parametrize(
    ("kind", "data"),
    [(kind, data) for kind, _, data in GARBAGE],
    ids=[f"{kind}-{name}" for kind, name, _ in GARBAGE],
)
def test_garbage_avro_raises_invalid_event(kind: str, data: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        DECODERS[kind](data)
    assert kind in caught.value.reason


@pytest.mark.parametrize("kind", ["incident", "missing_report", "referral"])
def test_truncated_and_padded_avro_are_invalid(kind: str) -> None:
    good = GOOD[kind]
    for cut in range(len(good)):
        with pytest.raises(InvalidEvent):
            codec.decode_event_avro(kind, good[:cut])
    with pytest.raises(InvalidEvent, match="1 byte left over"):
        codec.decode_event_avro(kind, good + b"\x02")


def test_avro_of_another_kind_is_rejected() -> None:
    with pytest.raises(InvalidEvent):
        codec.decode_event_avro("referral", GOOD["missing_report"])
    with pytest.raises(InvalidEvent):
        codec.decode_event_avro("incident", GOOD["referral"])


def test_decode_needs_bytes() -> None:
    with pytest.raises(InvalidEvent, match="expected Avro bytes, received"):
        codec.decode_event_avro("referral", "text")  # type: ignore[arg-type]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'alert'"):
        codec.decode_event_avro("alert", GOOD["alert"])


def test_encode_avro_needs_a_known_value() -> None:
    with pytest.raises(TypeError, match="no Avro schema for a dict"):
        codec.encode_avro({"event_id": "E1"})  # type: ignore[arg-type]


def test_encode_avro_rejects_a_value_that_does_not_fit() -> None:
    too_old = MissingReport("E", T0, "P", "C", MissingStatus.RETURNED, None, False, 2**40)
    with pytest.raises(InvalidEvent, match="missing_report cannot be written as Avro"):
        codec.encode_avro(too_old)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_valid_value_or_invalid_event(kind: str, data: bytes) -> None:
    try:
        value = DECODERS[kind](data)
    except InvalidEvent:
        return
    assert DECODERS[kind](codec.encode_avro(value)) == value


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(DECODERS)),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_mutated_valid_bytes_give_a_valid_value_or_invalid_event(
    kind: str, position: int, byte: int
) -> None:
    data = bytearray(GOOD[kind])
    data[position % len(data)] = byte
    try:
        value = DECODERS[kind](bytes(data))
    except InvalidEvent:
        return
    assert DECODERS[kind](codec.encode_avro(value)) == value


# --------------------------------------------------------------------------------------------
# Actions and alerts from JSON


def action_json(**changes: Any) -> dict[str, Any]:
    obj = codec.action_to_dict(ACTIONS[1])
    obj.update(changes)
    return obj


INVALID_ACTIONS = [
    ("kind unknown", action_json(kind="DELETE"), "kind"),
    ("user empty", action_json(user=""), "user"),
    ("user missing", {k: v for k, v in action_json().items() if k != "user"}, "user"),
    ("at naive", action_json(at="2024-05-01T14:30:00"), "at"),
    ("assign without assignee", action_json(assignee=None), "assignee"),
    ("note without text", action_json(kind="NOTE", assignee=None, note="  "), "note"),
    ("close without outcome", action_json(kind="CLOSE", assignee=None), "outcome"),
    ("note too long", action_json(note="x" * (codec.MAX_NOTE_CHARS + 1)), "note"),
    ("outcome number", action_json(outcome=3), "outcome"),
]


@pytest.mark.parametrize(
    ("obj", "field"),
    [row[1:] for row in INVALID_ACTIONS],
    ids=[row[0] for row in INVALID_ACTIONS],
)
def test_invalid_action_names_its_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        codec.action_from_dict(obj)
    assert caught.value.field == field
    assert f"alert_action field '{field}'" in caught.value.reason


def alert_json(**changes: Any) -> dict[str, Any]:
    obj = codec.alert_to_dict(ALERT)
    obj.update(changes)
    return obj


INVALID_ALERTS = [
    ("rule unknown", alert_json(rule_id="SG99"), "rule_id"),
    ("severity lower", alert_json(severity="high"), "severity"),
    ("evidence string", alert_json(evidence="E1"), "evidence"),
    ("evidence empty id", alert_json(evidence=["E1", ""]), "evidence[1]"),
    ("resolved_at naive", alert_json(resolved_at="2024-05-01T14:30:00"), "resolved_at"),
    ("mode upper case", alert_json(mode="LIVE"), "mode"),
    ("status unknown", alert_json(status="OPEN"), "status"),
    ("raised_at missing", {k: v for k, v in alert_json().items() if k != "raised_at"}, "raised_at"),
]


@pytest.mark.parametrize(
    ("obj", "field"),
    [row[1:] for row in INVALID_ALERTS],
    ids=[row[0] for row in INVALID_ALERTS],
)
def test_invalid_alert_names_its_field(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        codec.alert_from_dict(obj)
    assert caught.value.field == field
    assert f"alert field '{field}'" in caught.value.reason


def test_invalid_dead_letter_payload() -> None:
    obj = codec.dead_letter_to_dict(DEAD_LETTERS[0]) | {"payload_base64": "not base64!"}
    with pytest.raises(InvalidEvent) as caught:
        codec.dead_letter_from_dict(obj)
    assert caught.value.field == "payload_base64"


# --------------------------------------------------------------------------------------------
# Avro object container files


def read_all(data: bytes) -> list[Event | InvalidEvent]:
    return list(codec.read_avro_container(io.BytesIO(data)))


@pytest.mark.parametrize("compression", ["null", "deflate"])
def test_container_round_trip_with_mixed_events(compression: str) -> None:
    out = io.BytesIO()
    assert codec.write_avro_container(out, iter(EVENTS), codec=compression) == len(EVENTS)
    assert read_all(out.getvalue()) == EVENTS


def test_container_round_trip_through_a_path(tmp_path: Path) -> None:
    path = tmp_path / "history.avro"
    assert codec.write_avro_container(path, EVENTS) == len(EVENTS)
    assert list(codec.read_avro_container(path)) == EVENTS
    assert list(codec.read_avro_container(str(path))) == EVENTS


def test_container_is_readable_by_fastavro_with_times() -> None:
    out = io.BytesIO()
    codec.write_avro_container(out, [REFERRAL])
    out.seek(0)
    [(name, record)] = list(fastavro.reader(out, return_record_name=True))
    assert name == "uk.safeguarding.streams.Referral"
    assert record["occurred_at"] == datetime(2024, 5, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "events",
    [[INCIDENT, INCIDENT_BARE], [REPORTED, RETURNED], [REFERRAL, REFERRAL_BARE]],
    ids=["incident", "missing_report", "referral"],
)
def test_container_written_with_one_record_schema(events: list[Event]) -> None:
    """A file another tool wrote with one event schema and datetime times."""
    kind = events[0].type
    records = []
    for event in events:
        record = avro_record(event)
        record["occurred_at"] = datetime.fromtimestamp(event.occurred_at / 1000, tz=UTC)
        records.append(record)
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(codec.load_schema(kind)), records)
    assert read_all(out.getvalue()) == events


def test_container_written_with_an_older_schema_gets_defaults() -> None:
    old = codec.load_schema("referral")
    old["fields"] = [f for f in old["fields"] if f["name"] != "episode_id"]
    record = avro_record(REFERRAL)
    del record["episode_id"]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(old), [record])
    assert read_all(out.getvalue()) == [REFERRAL]


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like standard input."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def test_container_from_a_stream_that_cannot_seek() -> None:
    out = io.BytesIO()
    codec.write_avro_container(out, EVENTS)
    assert list(codec.read_avro_container(Pipe(out.getvalue()))) == EVENTS

    old = codec.load_schema("referral")
    old["fields"] = [f for f in old["fields"] if f["name"] != "episode_id"]
    record = avro_record(REFERRAL)
    del record["episode_id"]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(old), [record])
    assert list(codec.read_avro_container(Pipe(out.getvalue()))) == [REFERRAL]


def test_container_starting_mid_stream() -> None:
    """An older file is read twice from where the caller's stream was, not from byte 0."""
    old = codec.load_schema("referral")
    old["fields"] = old["fields"][:-1]
    record = avro_record(REFERRAL)
    del record["episode_id"]
    container = io.BytesIO()
    fastavro.writer(container, fastavro.parse_schema(old), [record])
    stream = io.BytesIO(b"preamble" + container.getvalue())
    stream.seek(len(b"preamble"))
    assert list(codec.read_avro_container(stream)) == [REFERRAL]


def test_container_with_a_union_of_two_event_schemas() -> None:
    schema = fastavro.parse_schema([codec.load_schema("referral"), codec.load_schema("incident")])
    records = [
        ("uk.safeguarding.streams.Incident", avro_record(INCIDENT)),
        ("uk.safeguarding.streams.Referral", avro_record(REFERRAL)),
    ]
    out = io.BytesIO()
    fastavro.writer(out, schema, records)
    assert read_all(out.getvalue()) == [INCIDENT, REFERRAL]


def test_invalid_record_in_a_container_is_yielded_and_reading_goes_on() -> None:
    records = [
        avro_record(INCIDENT),
        avro_record(INCIDENT, children=[]),
        avro_record(INCIDENT_BARE),
    ]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(codec.load_schema("incident")), records)
    first, bad, last = read_all(out.getvalue())
    assert first == INCIDENT
    assert isinstance(bad, InvalidEvent)
    assert bad.field == "children"
    assert last == INCIDENT_BARE


def test_truncated_container_ends_with_an_invalid_event() -> None:
    out = io.BytesIO()
    codec.write_avro_container(out, EVENTS, codec="null")
    items = read_all(out.getvalue()[:-30])
    assert isinstance(items[-1], InvalidEvent)
    assert "the rest of the file was not read" in items[-1].reason


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not an Avro container file"),
        (b"garbage that is not avro", "not an Avro container file"),
        (codec.encode_json_line(REFERRAL), "not an Avro container file"),
    ],
    ids=["empty", "garbage", "json"],
)
def test_not_a_container_file(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidEvent, match=fragment):
        read_all(data)


def test_container_of_alerts_is_not_an_event_file() -> None:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(codec.load_schema("alert")), [])
    with pytest.raises(InvalidEvent, match=r"written with record uk\.safeguarding\.streams\.Alert"):
        read_all(out.getvalue())


# --------------------------------------------------------------------------------------------
# Schemas


def test_load_schema_returns_a_copy() -> None:
    codec.load_schema("incident")["fields"].clear()
    assert codec.load_schema("incident")["fields"]
    with pytest.raises(KeyError, match="no schema named 'nope'"):
        codec.load_schema("nope")


def test_schema_directory_is_at_the_repository_root() -> None:
    assert codec.SCHEMA_DIR.name == "schemas"
    assert (codec.SCHEMA_DIR.parent / "streams" / "codec.py").is_file()
