"""The hub's pure state: folding alerts, actions and events; filters, order, timeline, bounds."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    Mode,
    RuleId,
    Severity,
)
from streams.domain.events import (
    Agency,
    DashRisk,
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
)
from streams.domain.time import DAY, HOUR, MINUTE
from streams.hub.state import (
    AlertChanged,
    Filters,
    HubState,
    TimelineChanged,
    TimelineKind,
    Workflow,
    live_quality,
    rebuild,
)
from tests.hubkit import T0, make_alert

alert = make_alert


def action(
    a: Alert,
    kind: ActionKind,
    n: int,
    *,
    user: str = "alice",
    assignee: str | None = None,
    outcome: str | None = None,
    note: str | None = None,
) -> AlertAction:
    return AlertAction(
        action_id=f"act-{a.alert_id[:8]}-{n}",
        alert_id=a.alert_id,
        kind=kind,
        user=user,
        at=T0 + n * MINUTE,
        assignee=assignee,
        note=note,
        outcome=outcome,
    )


def missing(
    event_id: str,
    child: str,
    at: int,
    status: MissingStatus = MissingStatus.REPORTED,
    risk: RiskLevel | None = RiskLevel.LOW,
) -> MissingReport:
    return MissingReport(event_id, at, "EP1", child, status, risk, False, 12)


# -- folding alerts and actions ------------------------------------------------------------------


def test_latest_alert_version_wins_and_resolution_is_in_place() -> None:
    state = HubState()
    raised = alert()
    first = state.apply_alert(raised)
    assert isinstance(first, AlertChanged)
    assert first.previous is None
    resolved = dataclasses.replace(
        raised, status=AlertStatus.RESOLVED, resolved_at=T0 + HOUR, detected_at=T0 + 2 * HOUR
    )
    change = state.apply_alert(resolved)
    assert change is not None
    assert change.previous is not None
    assert change.previous.alert.status is AlertStatus.RAISED
    views = state.alerts()
    assert [v.alert for v in views] == [resolved]
    withdrawn = dataclasses.replace(resolved, status=AlertStatus.WITHDRAWN)
    state.apply_alert(withdrawn)
    assert [v.alert.status for v in state.alerts()] == [AlertStatus.WITHDRAWN]


def test_repeated_identical_version_changes_nothing() -> None:
    state = HubState()
    a = alert()
    state.apply_alert(a)
    version = state.version
    assert state.apply_alert(a) is None
    assert state.version == version


def test_actions_are_kept_in_order_and_survive_new_alert_versions() -> None:
    state = HubState()
    a = alert()
    state.apply_alert(a)
    ack = action(a, ActionKind.ACKNOWLEDGE, 1)
    assign = action(a, ActionKind.ASSIGN, 2, assignee="bob")
    note = action(a, ActionKind.NOTE, 3, note="Phoned the school.")
    reassign = action(a, ActionKind.ASSIGN, 4, user="bob", assignee="carol")
    for act in (ack, assign, note, reassign):
        assert state.apply_action(act) is not None
    view = state.alert(a.alert_id)
    assert view is not None
    assert view.actions == (ack, assign, note, reassign)
    assert view.workflow is Workflow.ASSIGNED
    assert view.assignee == "carol"
    assert view.acknowledged == ack

    state.apply_alert(dataclasses.replace(a, status=AlertStatus.RESOLVED, resolved_at=T0 + DAY))
    view = state.alert(a.alert_id)
    assert view is not None
    assert view.actions == (ack, assign, note, reassign)

    close = action(a, ActionKind.CLOSE, 5, outcome="REFERRED")
    state.apply_action(close)
    view = state.alert(a.alert_id)
    assert view is not None
    assert view.workflow is Workflow.CLOSED
    assert view.closure == close
    assert view.to_dict()["closed"]["outcome"] == "REFERRED"


def test_a_repeated_action_id_is_ignored() -> None:
    state = HubState()
    a = alert()
    state.apply_alert(a)
    ack = action(a, ActionKind.ACKNOWLEDGE, 1)
    assert state.apply_action(ack) is not None
    assert state.apply_action(ack) is None
    view = state.alert(a.alert_id)
    assert view is not None
    assert view.actions == (ack,)


def test_an_action_before_its_alert_waits_for_it() -> None:
    state = HubState()
    a = alert()
    ack = action(a, ActionKind.ACKNOWLEDGE, 1)
    assert state.apply_action(ack) is None
    assert state.apply_action(ack) is None  # a repeat while waiting
    assert state.alerts() == []
    change = state.apply_alert(a)
    assert change is not None
    assert change.view.actions == (ack,)
    assert change.view.workflow is Workflow.ACKNOWLEDGED


def test_replay_alerts_never_reach_a_live_hub() -> None:
    assert HubState().apply_alert(alert(mode=Mode.REPLAY)) is None
    assert HubState(show_replay=True).apply_alert(alert(mode=Mode.REPLAY)) is not None


def test_every_change_increases_the_version_carried_by_the_view() -> None:
    state = HubState()
    a = alert()
    c1 = state.apply_alert(a)
    c2 = state.apply_action(action(a, ActionKind.ACKNOWLEDGE, 1))
    c3 = state.apply_event(missing("m1", "C1", T0))
    assert c1 is not None
    assert c2 is not None
    assert c3 is not None
    assert (c1.view.version, c2.view.version, c3.version) == (1, 2, 3)
    assert state.version == 3


# -- filters and order ---------------------------------------------------------------------------


def _board() -> tuple[HubState, dict[str, Alert]]:
    state = HubState()
    alerts = {
        "med_old": alert("C1", RuleId.SG02, "I1", Severity.MEDIUM, T0),
        "high_new": alert("C2", RuleId.SG01, "I2", Severity.HIGH, T0 + 5 * HOUR),
        "high_old": alert("C3", RuleId.SG03, "E3", Severity.HIGH, T0 + HOUR),
        "low": alert("C4", RuleId.SG06, "E4", Severity.LOW, T0 - DAY),
        "resolved": alert(
            "C5",
            RuleId.SG01,
            "I5",
            Severity.MEDIUM,
            T0 + 2 * HOUR,
            AlertStatus.RESOLVED,
            T0 + 3 * HOUR,
        ),
    }
    for a in alerts.values():
        state.apply_alert(a)
    state.apply_action(action(alerts["high_new"], ActionKind.ACKNOWLEDGE, 1))
    return state, alerts


def test_alerts_are_sorted_by_severity_then_age() -> None:
    state, alerts = _board()
    order = [v.alert.alert_id for v in state.alerts()]
    names = {a.alert_id: name for name, a in alerts.items()}
    assert [names[i] for i in order] == ["high_old", "high_new", "med_old", "resolved", "low"]


def test_ties_in_severity_and_age_are_broken_by_alert_id() -> None:
    state = HubState()
    a, b = alert("C1"), alert("C2")
    state.apply_alert(b)
    state.apply_alert(a)
    assert [v.alert.alert_id for v in state.alerts()] == sorted([a.alert_id, b.alert_id])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"high_old", "high_new", "med_old", "resolved", "low"}),
        ({"severity": ["HIGH"]}, {"high_old", "high_new"}),
        ({"severity": ["high,low"]}, {"high_old", "high_new", "low"}),
        ({"severity": ["HIGH"], "severity_ignored": ["x"]}, {"high_old", "high_new"}),
        ({"rule": ["SG01"]}, {"high_new", "resolved"}),
        ({"rule": ["SG01", "SG06"]}, {"high_new", "resolved", "low"}),
        ({"status": ["RESOLVED"]}, {"resolved"}),
        ({"status": ["RAISED"], "severity": ["MEDIUM"]}, {"med_old"}),
        ({"workflow": ["ACKNOWLEDGED"]}, {"high_new"}),
        ({"workflow": ["NEW"], "rule": ["SG01"]}, {"resolved"}),
    ],
)
def test_filters(params: dict[str, list[str]], expected: set[str]) -> None:
    state, alerts = _board()
    names = {a.alert_id: name for name, a in alerts.items()}
    got = {names[v.alert.alert_id] for v in state.alerts(Filters.parse(params))}
    assert got == expected


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"severity": ["URGENT"]}, "query parameter 'severity': 'URGENT' is not one of HIGH"),
        ({"rule": ["SG09"]}, "query parameter 'rule'"),
        ({"status": ["OPEN"]}, "query parameter 'status'"),
        ({"workflow": ["DONE"]}, "query parameter 'workflow'"),
    ],
)
def test_bad_filter_values_say_which_parameter(params: dict[str, list[str]], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Filters.parse(params)


# -- timeline ------------------------------------------------------------------------------------


def test_timeline_is_in_time_order_with_events_alerts_and_actions() -> None:
    state = HubState()
    incident = Incident(
        "ev-inc",
        T0,
        "I1",
        IncidentType.DOMESTIC_ABUSE,
        DashRisk.HIGH,
        (HouseholdChild("C1", False, 7), HouseholdChild("C2", True, 9)),
    )
    referral = Referral(
        "ev-ref", T0 + 30 * HOUR, "R1", "C1", Agency.CHILDRENS_SOCIAL_CARE, "I1", None
    )
    report = missing("ev-miss", "C1", T0 - HOUR)
    # Out of order on purpose: the timeline sorts by event time.
    for event in (referral, incident, report):
        state.apply_event(event)
    a = alert("C1", raised_at=T0 + 24 * HOUR)
    state.apply_alert(a)
    state.apply_alert(
        dataclasses.replace(a, status=AlertStatus.RESOLVED, resolved_at=T0 + 30 * HOUR)
    )
    state.apply_action(dataclasses.replace(action(a, ActionKind.ACKNOWLEDGE, 1), at=T0 + 25 * HOUR))

    timeline = state.timeline("C1")
    got = [(e.kind, e.ref) for e in timeline.entries]
    assert got == [
        (TimelineKind.EVENT, "ev-miss"),
        (TimelineKind.EVENT, "ev-inc"),
        (TimelineKind.ALERT_RAISED, a.alert_id),
        (TimelineKind.ACTION, action(a, ActionKind.ACKNOWLEDGE, 1).action_id),
        (TimelineKind.EVENT, "ev-ref"),  # events before alerts at the same time
        (TimelineKind.ALERT_RESOLVED, a.alert_id),
    ]
    assert [e.at for e in timeline.entries] == sorted(e.at for e in timeline.entries)
    assert timeline.complete
    as_json = timeline.entries[1].to_dict()
    assert as_json["at"] == "2024-03-01T09:00:00Z"
    assert as_json["event"]["type"] == "incident"
    assert as_json["event"]["children"][1] == {"child_id": "C2", "present": True, "age": 9}

    # The incident is in the other child's timeline too, and only there is nothing else.
    assert [(e.kind, e.ref) for e in state.timeline("C2").entries] == [
        (TimelineKind.EVENT, "ev-inc")
    ]
    assert state.timeline("nobody").entries == ()
    assert not state.timeline("nobody").complete


def test_a_duplicate_event_is_ignored() -> None:
    state = HubState()
    event = missing("m1", "C1", T0)
    assert isinstance(state.apply_event(event), TimelineChanged)
    assert state.apply_event(event) is None
    assert len(state.timeline("C1").entries) == 1


# -- bounded memory ------------------------------------------------------------------------------


def test_timelines_are_bounded_least_recently_updated_child_first() -> None:
    state = HubState(max_children=2)
    state.apply_event(missing("m1", "C1", T0))
    state.apply_event(missing("m2", "C2", T0))
    state.apply_event(missing("m3", "C1", T0 + HOUR))  # C1 is now the most recent
    state.apply_event(missing("m4", "C3", T0))
    assert state.timeline("C2").entries == ()
    assert [e.ref for e in state.timeline("C1").entries] == ["m1", "m3"]
    assert [e.ref for e in state.timeline("C3").entries] == ["m4"]


def test_events_per_child_are_bounded_oldest_first_and_marked_incomplete() -> None:
    state = HubState(max_events_per_child=3)
    for i in (5, 1, 4, 2, 3):
        state.apply_event(missing(f"m{i}", "C1", T0 + i * HOUR))
    timeline = state.timeline("C1")
    assert [e.ref for e in timeline.entries] == ["m3", "m4", "m5"]
    assert not timeline.complete


def test_alerts_are_bounded_finished_ones_go_first() -> None:
    state = HubState(max_alerts=3)
    done = alert("C1", raised_at=T0 + HOUR, status=AlertStatus.RESOLVED, resolved_at=T0 + DAY)
    old_open = alert("C2", raised_at=T0)
    state.apply_alert(done)
    state.apply_alert(old_open)
    state.apply_alert(alert("C3", raised_at=T0 + 2 * HOUR))
    state.apply_alert(alert("C4", raised_at=T0 + 3 * HOUR))
    kept = {v.alert.child_id for v in state.alerts()}
    assert kept == {"C2", "C3", "C4"}
    assert state.alert(done.alert_id) is None
    assert all(e.kind is not TimelineKind.ALERT_RAISED for e in state.timeline("C1").entries)


def test_actions_waiting_for_alerts_are_bounded() -> None:
    state = HubState(max_pending_actions=2)
    alerts = [alert(f"C{i}") for i in range(3)]
    for i, a in enumerate(alerts):
        state.apply_action(action(a, ActionKind.ACKNOWLEDGE, i))
    for a in alerts:
        state.apply_alert(a)
    got = [len(v.actions) for v in sorted(state.alerts(), key=lambda v: v.alert.child_id)]
    assert got == [0, 1, 1]  # the oldest waiting action was dropped


def test_the_board_holds_every_open_alert_and_the_latest_finished_ones() -> None:
    state = HubState()
    open_old = alert("C1", raised_at=T0 - DAY)
    finished = [
        alert(f"F{i}", raised_at=T0 + i * HOUR, status=AlertStatus.RESOLVED, resolved_at=T0 + DAY)
        for i in range(4)
    ]
    closed = alert("C2", raised_at=T0 + 9 * HOUR)
    for a in (open_old, *finished, closed):
        state.apply_alert(a)
    state.apply_action(action(closed, ActionKind.CLOSE, 1, outcome="DUPLICATE"))
    board = {v.alert.child_id for v in state.board(max_finished=2)}
    assert board == {"C1", "C2", "F3"}
    assert [v.alert.child_id for v in state.board(max_finished=2)] == ["C1", "F3", "C2"]
    assert len(state.alerts()) == 6


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HubState(max_children=0)


# -- quality -------------------------------------------------------------------------------------


def test_live_quality_counts_and_grades() -> None:
    state = HubState()
    now = T0 + 10 * DAY
    high_open = alert("C1", RuleId.SG01, "I1", Severity.HIGH, T0)
    high_resolved = alert(
        "C2", RuleId.SG03, "E2", Severity.HIGH, T0, AlertStatus.RESOLVED, T0 + HOUR
    )
    medium_open = alert("C3", RuleId.SG02, "I3", Severity.MEDIUM, T0)
    withdrawn = alert("C4", RuleId.SG01, "I4", Severity.HIGH, T0, AlertStatus.WITHDRAWN, T0 + HOUR)
    resolved_after_period = alert(
        "C5", RuleId.SG07, "E5", Severity.HIGH, T0, AlertStatus.RESOLVED, now + HOUR
    )
    too_old = alert("C6", RuleId.SG01, "I6", Severity.HIGH, now - 31 * DAY)
    for a in (high_open, high_resolved, medium_open, withdrawn, resolved_after_period, too_old):
        state.apply_alert(a)
    state.apply_action(action(medium_open, ActionKind.CLOSE, 1, outcome="REFERRED"))
    state.apply_event(missing("m1", "C7", T0))  # a child with events and no alert
    state.apply_event(missing("m2", "C8", now - 40 * DAY))  # events before the period

    q = live_quality(state, now, 30)
    assert q == state.quality(now)
    assert q["alerts"] == 5
    assert q["by_status"] == {"RAISED": 2, "RESOLVED": 2, "WITHDRAWN": 1}
    assert q["by_severity"] == {"HIGH": 4, "MEDIUM": 1, "LOW": 0}
    assert q["by_workflow"] == {"NEW": 4, "ACKNOWLEDGED": 0, "ASSIGNED": 0, "CLOSED": 1}
    sg01 = next(r for r in q["by_rule"] if r["rule_id"] == "SG01")
    assert sg01["total"] == 2
    assert sg01["RAISED"] == 1
    assert sg01["WITHDRAWN"] == 1
    assert sg01["rule_title"].startswith("Domestic abuse")
    grades = {c["child_id"]: c["grade"] for c in q["children"]}
    assert grades == {
        "C1": "inadequate",
        "C2": "requires_improvement",
        "C3": "requires_improvement",
        "C5": "inadequate",  # still RAISED at the end of the period
    }
    assert q["grades"] == {"good": 1, "requires_improvement": 2, "inadequate": 2}
    assert q["children"][0]["open_high"] == 1
    assert q["from"] == "2024-02-10T09:00:00Z"
    assert q["to"] == "2024-03-11T09:00:00Z"


# -- rebuild: the same records give the same state -----------------------------------------------


def _views(state: HubState) -> list[tuple[Alert, tuple[AlertAction, ...]]]:
    return [(v.alert, v.actions) for v in state.alerts()]


def test_rebuild_from_the_topics_equals_the_live_state() -> None:
    live = HubState()
    a, b = alert("C1"), alert("C2", RuleId.SG03, "E1", Severity.MEDIUM)
    b_resolved = dataclasses.replace(b, status=AlertStatus.RESOLVED, resolved_at=T0 + DAY)
    acts = [
        action(a, ActionKind.ACKNOWLEDGE, 1),
        action(b, ActionKind.NOTE, 2, note="x"),
        action(a, ActionKind.CLOSE, 3, outcome="DUPLICATE"),
    ]
    live.apply_alert(a)
    live.apply_action(acts[0])
    live.apply_alert(b)
    live.apply_action(acts[1])
    live.apply_alert(b_resolved)
    live.apply_action(acts[2])
    assert _views(rebuild([a, b, b_resolved], acts)) == _views(live)


@st.composite
def _two_topics(draw: st.DrawFn) -> tuple[list[Alert], list[AlertAction], list[bool]]:
    children = draw(st.lists(st.sampled_from(["C1", "C2", "C3"]), min_size=1, max_size=6))
    alerts: list[Alert] = []
    for i, child in enumerate(children):
        status = draw(st.sampled_from(list(AlertStatus)))
        alerts.append(
            alert(
                child,
                RuleId.SG01,
                "I1",
                raised_at=T0 + i,
                status=status,
                resolved_at=None if status is AlertStatus.RAISED else T0 + DAY,
            )
        )
    targets = draw(st.lists(st.sampled_from(alerts), max_size=8))
    kinds = draw(
        st.lists(st.sampled_from(list(ActionKind)), min_size=len(targets), max_size=len(targets))
    )
    actions = [
        action(t, k, n, assignee="bob", outcome="REFERRED", note="n")
        for n, (t, k) in enumerate(zip(targets, kinds, strict=True))
    ]
    # How the consumer interleaves the two topics: any merge keeping each topic's order.
    picks = draw(st.permutations([True] * len(alerts) + [False] * len(actions)))
    return alerts, actions, picks


@settings(max_examples=200, deadline=None)
@given(_two_topics())
def test_any_interleaving_of_the_two_topics_gives_the_same_state(
    topics: tuple[list[Alert], list[AlertAction], list[bool]],
) -> None:
    alerts, actions, picks = topics
    merged = HubState()
    ai, ci = iter(alerts), iter(actions)
    for is_alert in picks:
        if is_alert:
            merged.apply_alert(next(ai))
        else:
            merged.apply_action(next(ci))
    assert _views(merged) == _views(rebuild(alerts, actions))
