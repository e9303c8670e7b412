"""`safeguarding generate`: determinism, SPEC section 3 validity, order, realism, and planted
missed opportunities that the rules of SPEC section 4 (docs/semantics.md) certainly raise."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.domain.alerts import AlertStatus, RuleId, Severity
from streams.domain.events import (
    Agency,
    DashRisk,
    Event,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    Referral,
    RiskLevel,
)
from streams.domain.time import DAY, HOUR, parse_rfc3339
from streams.generate import (
    ABSENT_ABOLISHED,
    DEFAULT_START,
    EVENTS_PER_CHILD_YEAR,
    GeneratedWorld,
    generate,
    run_generate,
    truth_path_for,
    write_world,
)
from tests.unit import rulekit

START_2015 = parse_rfc3339("2015-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def world() -> GeneratedWorld:
    """A modest world: 300 children over a year."""
    return generate(children=300, days=365, seed=11)


@pytest.fixture(scope="module")
def old_world() -> GeneratedWorld:
    """Two years across the January 2017 change, when the ABSENT grade went."""
    return generate(children=600, days=730, seed=5, start=parse_rfc3339("2016-01-01T00:00:00Z"))


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.splitlines()


# ---- determinism -----------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    a = run_generate(400, 120, 3, tmp_path / "a.jsonl.gz", workers=1)
    b = run_generate(400, 120, 3, tmp_path / "b.jsonl.gz", workers=1)
    c = run_generate(400, 120, 4, tmp_path / "c.jsonl.gz", workers=1)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert (tmp_path / "a.planted.jsonl").read_bytes() == (
        tmp_path / "b.planted.jsonl"
    ).read_bytes()
    assert (tmp_path / "a.jsonl.gz").read_bytes() != (tmp_path / "c.jsonl.gz").read_bytes()
    assert a["events"] == b["events"]
    assert a["planted_by_rule"] == b["planted_by_rule"]
    assert c["events"] > 0


def test_generate_is_deterministic_in_memory() -> None:
    assert generate(120, 90, 8) == generate(120, 90, 8)
    assert generate(120, 90, 8).events != generate(120, 90, 9).events


def test_streamed_parallel_and_in_memory_writes_are_the_same_bytes(tmp_path: Path) -> None:
    # 4,100 children: three blocks, so the streamed path really merges sorted block files
    memory = write_world(generate(4100, 40, 2), tmp_path / "m.jsonl")
    one = run_generate(4100, 40, 2, tmp_path / "one.jsonl", workers=1)
    two = run_generate(4100, 40, 2, tmp_path / "two.jsonl", workers=2)
    for name in ("one", "two"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (tmp_path / "m.jsonl").read_bytes()
        assert (tmp_path / f"{name}.planted.jsonl").read_bytes() == (
            tmp_path / "m.planted.jsonl"
        ).read_bytes()
    strip = {"out", "truth"}
    assert {k: v for k, v in memory.items() if k not in strip} == {
        k: v for k, v in one.items() if k not in strip
    }
    assert {k: v for k, v in one.items() if k not in strip} == {
        k: v for k, v in two.items() if k not in strip
    }


def test_gzip_is_the_same_lines_as_plain(tmp_path: Path) -> None:
    run_generate(200, 60, 1, tmp_path / "w.jsonl", workers=1)
    run_generate(200, 60, 1, tmp_path / "w.jsonl.gz", truth=tmp_path / "t.jsonl", workers=1)
    assert _lines(tmp_path / "w.jsonl.gz") == _lines(tmp_path / "w.jsonl")
    assert (tmp_path / "t.jsonl").read_bytes() == (tmp_path / "w.planted.jsonl").read_bytes()


def test_no_wall_clock_default_start() -> None:
    w = generate(20, 10, 1)
    assert w.start == DEFAULT_START == parse_rfc3339("2024-01-01T00:00:00Z")
    assert all(w.start <= e.occurred_at < w.start + 10 * DAY for e in w.events)


def test_default_truth_path() -> None:
    assert truth_path_for("out/world.jsonl.gz") == Path("out/world.planted.jsonl")
    assert truth_path_for("world.jsonl") == Path("world.planted.jsonl")
    assert truth_path_for("world") == Path("world.planted.jsonl")


def test_rejects_an_empty_world() -> None:
    with pytest.raises(ValueError, match="children"):
        generate(0, 10, 1)
    with pytest.raises(ValueError, match="days"):
        run_generate(10, 0, 1, "unused.jsonl")


def test_progress_reaches_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    run_generate(
        4100, 20, 1, tmp_path / "w.jsonl", workers=1, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (4100, 4100)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# ---- SPEC section 3 validity and order -------------------------------------------------------


def test_every_line_decodes_to_the_world_event(tmp_path: Path, world: GeneratedWorld) -> None:
    codec = pytest.importorskip("streams.codec")
    run_generate(300, 365, 11, tmp_path / "w.jsonl.gz", workers=1)
    lines = _lines(tmp_path / "w.jsonl.gz")
    decoded = [codec.decode_json_line(line) for line in lines]
    assert decoded == world.events
    # the fast writer's bytes are the codec's bytes
    assert [codec.encode_json_line(e) for e in world.events] == [ln + b"\n" for ln in lines]


def test_lines_have_spec_shape(tmp_path: Path) -> None:
    run_generate(100, 60, 2, tmp_path / "w.jsonl", workers=1)
    keys = {
        "incident": {"incident_id", "incident_type", "dash_risk", "children"},
        "missing_report": {"episode_id", "child_id", "status", "risk_level", "looked_after", "age"},
        "referral": {"referral_id", "child_id", "agency", "incident_id", "episode_id"},
    }
    for line in _lines(tmp_path / "w.jsonl"):
        obj = orjson.loads(line)
        assert set(obj) == {"type", "event_id", "occurred_at"} | keys[obj["type"]]
        assert obj["occurred_at"].endswith("Z")
        parse_rfc3339(obj["occurred_at"])


def test_sorted_by_occurred_at(tmp_path: Path, world: GeneratedWorld) -> None:
    times = [e.occurred_at for e in world.events]
    assert times == sorted(times)
    run_generate(4100, 30, 6, tmp_path / "w.jsonl", workers=1)
    stamps = [parse_rfc3339(orjson.loads(ln)["occurred_at"]) for ln in _lines(tmp_path / "w.jsonl")]
    assert stamps == sorted(stamps)


def test_ids_unique_ages_and_enums_in_range(world: GeneratedWorld) -> None:
    ids = Counter(e.event_id for e in world.events)
    assert max(ids.values()) == 1
    end = world.start + 365 * DAY
    for e in world.events:
        assert world.start <= e.occurred_at < end
        if isinstance(e, Incident):
            assert isinstance(e.incident_type, IncidentType)
            assert 1 <= len(e.children) <= 4
            assert len({c.child_id for c in e.children}) == len(e.children)
            assert all(c.age is None or 0 <= c.age <= 17 for c in e.children)
            assert e.dash_risk is None or isinstance(e.dash_risk, DashRisk)
            if e.incident_type is not IncidentType.DOMESTIC_ABUSE:
                assert e.dash_risk is None
        elif isinstance(e, MissingReport):
            assert isinstance(e.status, MissingStatus)
            graded = e.status in (MissingStatus.REPORTED, MissingStatus.RISK_REVIEWED)
            assert (e.risk_level is not None) == graded
            assert e.risk_level is None or isinstance(e.risk_level, RiskLevel)
            assert e.age is None or 0 <= e.age <= 17
        else:
            assert isinstance(e, Referral)
            assert isinstance(e.agency, Agency)


def test_episodes_are_consistent(world: GeneratedWorld) -> None:
    steps: dict[str, list[MissingReport]] = {}
    for e in world.events:
        if isinstance(e, MissingReport):
            steps.setdefault(e.episode_id, []).append(e)
    for episode in steps.values():
        assert episode[0].status is MissingStatus.REPORTED  # first in time
        assert len({s.child_id for s in episode}) == 1
        assert len({s.looked_after for s in episode}) == 1
        statuses = [s.status for s in episode]
        assert statuses.count(MissingStatus.REPORTED) == 1
        assert statuses.count(MissingStatus.RETURNED) <= 1
        if MissingStatus.RETURN_INTERVIEW in statuses:
            assert statuses.index(MissingStatus.RETURNED) < statuses.index(
                MissingStatus.RETURN_INTERVIEW
            )


# ---- realism ---------------------------------------------------------------------------------


def test_the_world_has_every_kind_of_event(old_world: GeneratedWorld) -> None:
    evs = old_world.events
    incidents = [e for e in evs if isinstance(e, Incident)]
    assert {e.incident_type for e in incidents} == set(IncidentType)
    da = [e for e in incidents if e.incident_type is IncidentType.DOMESTIC_ABUSE]
    assert {len(e.children) for e in da} == {1, 2, 3, 4}
    listed = [c for e in da for c in e.children]
    assert any(c.present for c in listed)
    assert any(not c.present for c in listed)
    assert any(c.age is None for c in listed)
    assert {e.dash_risk for e in da} == {*DashRisk, None}
    referrals = [e for e in evs if isinstance(e, Referral)]
    assert {r.agency for r in referrals} == set(Agency)
    assert any(r.incident_id for r in referrals)
    assert any(r.episode_id for r in referrals)
    assert any(r.incident_id is None and r.episode_id is None for r in referrals)
    steps = [e for e in evs if isinstance(e, MissingReport)]
    assert {s.status for s in steps} == set(MissingStatus)
    reports = [s for s in steps if s.status is MissingStatus.REPORTED]
    assert {s.risk_level for s in reports} == set(RiskLevel)
    # looked-after children: a minority of the cohort, over-represented among missing children
    missing_children = {s.child_id for s in reports}
    lac = {s.child_id for s in reports if s.looked_after}
    assert 0 < len(lac) < len(missing_children) / 2
    assert len(lac) / len(missing_children) > 0.15  # 10% of the cohort
    repeat = Counter(s.child_id for s in reports)
    assert sum(1 for n in repeat.values() if n >= 3) >= 10
    da_children = {c.child_id for c in listed}
    assert len(da_children & missing_children) >= 10


def test_absent_is_the_legacy_grade(old_world: GeneratedWorld) -> None:
    reports = [
        e
        for e in old_world.events
        if isinstance(e, MissingReport) and e.status is MissingStatus.REPORTED
    ]
    before = [r for r in reports if r.occurred_at < ABSENT_ABOLISHED]
    after = [r for r in reports if r.occurred_at >= ABSENT_ABOLISHED]
    share_before = sum(r.risk_level is RiskLevel.ABSENT for r in before) / len(before)
    share_after = sum(r.risk_level is RiskLevel.ABSENT for r in after) / len(after)
    assert share_before > 0.2
    assert share_after < 0.05


def test_events_per_child_year_is_as_documented() -> None:
    w = generate(3000, 365, 21)
    per_year = len(w.events) / w.children
    assert abs(per_year - EVENTS_PER_CHILD_YEAR) / EVENTS_PER_CHILD_YEAR < 0.15


# ---- planted missed opportunities ------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_rule_is_planted_in_a_modest_world(seed: int) -> None:
    w = generate(children=300, days=365, seed=seed)
    assert {p.rule_id for p in w.planted} == set(RuleId)
    assert {p.status for p in w.planted} == {AlertStatus.RAISED, AlertStatus.RESOLVED}
    resolved = {p.rule_id for p in w.planted if p.status is AlertStatus.RESOLVED}
    assert resolved >= {RuleId.SG01, RuleId.SG02, RuleId.SG03, RuleId.SG06, RuleId.SG07}


def test_truth_file_rows(tmp_path: Path) -> None:
    summary = run_generate(300, 365, 11, tmp_path / "w.jsonl", workers=1)
    rows = [orjson.loads(ln) for ln in _lines(tmp_path / "w.planted.jsonl")]
    assert len(rows) == summary["planted"] > 0
    for row in rows:
        assert set(row) == {
            "rule_id", "child_id", "trigger_id", "severity", "status", "scenario", "raised_at"
        }  # fmt: skip
        assert row["rule_id"] in set(RuleId)
        assert row["severity"] in {"HIGH", "MEDIUM"}
        assert row["status"] in {"RAISED", "RESOLVED"}
        assert row["scenario"]
    assert Counter(r["rule_id"] for r in rows) == Counter(summary["planted_by_rule"])


def _severity_by_spec(
    p_rule: RuleId, child: str, trigger: str, evs: list[Event], lac: set[str]
) -> Severity | None:
    """The severity column of SPEC section 4, for the rules whose severity is not a constant."""
    if p_rule is RuleId.SG01:
        (incident,) = [e for e in evs if isinstance(e, Incident) and e.incident_id == trigger]
        (kid,) = [c for c in incident.children if c.child_id == child]
        high = kid.present or incident.dash_risk is DashRisk.HIGH
        return Severity.HIGH if high else Severity.MEDIUM
    if p_rule is RuleId.SG03:
        return Severity.HIGH if child in lac else Severity.MEDIUM
    if p_rule is RuleId.SG02:
        return Severity.MEDIUM
    if p_rule is RuleId.SG06:
        return None  # depends on the 90 days of history: the detector test checks it
    return Severity.HIGH


def test_planted_rows_refer_to_events_that_exist(world: GeneratedWorld) -> None:
    evs = world.events
    last = evs[-1].occurred_at
    incidents = {e.incident_id: e for e in evs if isinstance(e, Incident)}
    episodes: dict[str, list[MissingReport]] = {}
    for e in evs:
        if isinstance(e, MissingReport):
            episodes.setdefault(e.episode_id, []).append(e)
    lac = {e.child_id for e in evs if isinstance(e, MissingReport) and e.looked_after}
    keys = [(p.rule_id, p.child_id, p.trigger_id) for p in world.planted]
    assert len(keys) == len(set(keys))
    for p in world.planted:
        assert p.raised_at <= last
        if p.rule_id in (RuleId.SG01, RuleId.SG02) or p.trigger_id in incidents:
            incident = incidents[p.trigger_id]
            assert incident.incident_type is IncidentType.DOMESTIC_ABUSE
            assert p.child_id in {c.child_id for c in incident.children}
            assert p.rule_id in (RuleId.SG01, RuleId.SG02, RuleId.SG08)
        else:
            steps = episodes[p.trigger_id]
            assert {s.child_id for s in steps} == {p.child_id}
            if p.rule_id is RuleId.SG04:
                assert steps[0].looked_after
                assert steps[0].risk_level in (RiskLevel.ABSENT, RiskLevel.NO_APPARENT_RISK)
                assert p.raised_at == steps[0].occurred_at
            if p.rule_id is RuleId.SG06:
                assert MissingStatus.RETURNED in {s.status for s in steps}
        expected = _severity_by_spec(p.rule_id, p.child_id, p.trigger_id, evs, lac)
        assert expected is None or p.severity is expected, p


def test_planted_due_times_follow_spec(world: GeneratedWorld) -> None:
    incidents = {e.incident_id: e for e in world.events if isinstance(e, Incident)}
    reports = {
        e.episode_id: e.occurred_at
        for e in world.events
        if isinstance(e, MissingReport) and e.status is MissingStatus.REPORTED
    }
    for p in world.planted:
        if p.rule_id is RuleId.SG01:
            assert p.raised_at == incidents[p.trigger_id].occurred_at + 24 * HOUR
        elif p.rule_id is RuleId.SG02:
            due = p.raised_at - incidents[p.trigger_id].occurred_at
            assert 0 < due <= 4 * DAY  # the next Monday-Friday's 08:30, London time
        elif p.rule_id is RuleId.SG03:
            assert p.raised_at == reports[p.trigger_id] + 4 * HOUR
        elif p.rule_id is RuleId.SG04:
            assert p.raised_at == reports[p.trigger_id]
        elif p.rule_id is RuleId.SG07:
            assert p.raised_at == reports[p.trigger_id] + 24 * HOUR


@pytest.mark.parametrize(
    ("children", "days", "seed", "start"),
    [(300, 365, 11, None), (1500, 730, 1, None), (1500, 1000, 7, START_2015)],
    ids=["modest", "two-years", "across-2017"],
)
@pytest.mark.usefixtures("engine")  # on both detection cores
def test_planted_opportunities_are_detected(
    children: int, days: int, seed: int, start: int | None
) -> None:
    w = generate(children, days, seed, start)
    d = rulekit.detector(now=lambda: 0)
    d.feed_all(w.events)
    d.finish()
    found = {(a.rule_id, a.child_id, a.trigger_id): (a.severity, a.status) for a in d.alerts()}
    wrong = [
        (p, found.get((p.rule_id, p.child_id, p.trigger_id)))
        for p in w.planted
        if found.get((p.rule_id, p.child_id, p.trigger_id)) != (p.severity, p.status)
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(w.planted)} planted not detected as planted: {wrong[:5]}"
    )
