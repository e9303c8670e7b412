"""The compiled detection core (native/, streams.domain.native) gives what the reference gives.

The rule tables (test_rules.py) and the property tests (test_properties.py) run on both cores
already. These tests go where those do not: events in any order (late, beyond the lateness,
beyond the retention), duplicates, short retentions that prune and drop, ``--until``, the clock
changes of Europe/London, ids that JSON must escape; and whole backtests, line for line.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import codec
from streams.backtest import backtest_inline
from streams.domain import native
from streams.domain.alerts import Alert
from streams.domain.detector import Detector
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
from streams.domain.native import NativeCoreMissing, NativeDetector, inline_engine
from streams.domain.params import Params
from streams.domain.time import DAY, HOUR, MINUTE, Millis, parse_rfc3339
from streams.errors import ConfigurationError
from streams.generate import run_generate
from streams.report import report_to_dict, run_report
from streams.settings import Settings
from tests.unit.conftest import require_native_core


@pytest.fixture(autouse=True)
def _native_core() -> None:
    require_native_core()


# Around the end of British Summer Time 2024 (27 October, 01:00 UTC), so that local times and
# Operation Encompass's next school day cross a clock change.
T0 = parse_rfc3339("2024-10-20T06:00:00Z")
CHILDREN = ["C1", "C2", "C3", "C4"]
# Ids an incident and an episode may share (a trigger id of both kinds).
TRIGGERS = ["X1", "X2", "X3", "X4", "X5"]

_STEPS = [4 * HOUR, 24 * HOUR, 72 * HOUR, 30 * DAY, 90 * DAY]
"""The rules' deadlines and windows (Params' defaults)."""


def _times(p: Params) -> st.SearchStrategy[Millis]:
    """Event times over about a year, many of them exactly on an edge: T0 plus a sum of the
    deadlines, the windows, the lateness and the retention in play, give or take a millisecond
    or a minute (an event exactly at a deadline, at the retention's horizon, at the lateness)."""
    edges = [*_STEPS, p.lateness, p.retention, p.lookback, p.cumulative_window]
    on_edge = st.lists(st.sampled_from(edges), min_size=1, max_size=3).flatmap(
        lambda parts: st.sampled_from([0, 1, -1, MINUTE, -MINUTE]).map(
            lambda nudge: T0 + sum(parts) + nudge
        )
    )
    return st.one_of(
        st.integers(0, 400 * DAY // MINUTE).map(lambda m: T0 + m * MINUTE),
        st.integers(0, 40 * DAY // HOUR).map(lambda h: T0 + h * HOUR),
        on_edge,
        on_edge,
    )


@st.composite
def events(draw: st.DrawFn, p: Params) -> list[Event]:
    """Up to 60 events over about a year, in any order, some of them sent twice."""
    times = _times(p)
    out: list[Event] = []
    owner: dict[str, str] = {}
    for i in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(["incident", "missing", "missing", "referral"]))
        at = draw(times)
        if kind == "incident":
            kids = draw(st.lists(st.sampled_from(CHILDREN), min_size=1, max_size=4))
            out.append(
                Incident(
                    f"e{i}",
                    at,
                    draw(st.sampled_from(TRIGGERS)),
                    draw(st.sampled_from([IncidentType.DOMESTIC_ABUSE] * 4 + [IncidentType.OTHER])),
                    draw(st.sampled_from([None, *DashRisk])),
                    tuple(
                        HouseholdChild(
                            c, draw(st.booleans()), draw(st.sampled_from([None, 3, 4, 9, 17, 18]))
                        )
                        for c in kids
                    ),
                )
            )
        elif kind == "missing":
            episode = draw(st.sampled_from(TRIGGERS))
            status = draw(st.sampled_from(list(MissingStatus)))
            graded = status in (MissingStatus.REPORTED, MissingStatus.RISK_REVIEWED)
            out.append(
                MissingReport(
                    f"e{i}",
                    at,
                    episode,
                    owner.setdefault(episode, draw(st.sampled_from(CHILDREN))),
                    status,
                    draw(st.sampled_from(list(RiskLevel))) if graded else None,
                    draw(st.booleans()),
                    None,
                )
            )
        else:
            out.append(
                Referral(
                    f"e{i}",
                    at,
                    f"R{i}",
                    draw(st.sampled_from(CHILDREN)),
                    draw(st.sampled_from(list(Agency))),
                    draw(st.sampled_from([None, *TRIGGERS])),
                    draw(st.sampled_from([None, *TRIGGERS])),
                )
            )
    out += draw(st.lists(st.sampled_from(out), max_size=5))  # duplicates (same event_id)
    order = draw(st.sampled_from(["time", "shuffled", "nearly"]))
    if order == "time":
        out.sort(key=lambda e: e.occurred_at)
    elif order == "shuffled":
        out = draw(st.permutations(out))
    else:  # in time order but for a few swaps
        out.sort(key=lambda e: e.occurred_at)
        for _ in range(draw(st.integers(1, 5))):
            i, j = draw(st.integers(0, len(out) - 1)), draw(st.integers(0, len(out) - 1))
            out[i], out[j] = out[j], out[i]
    return out


params = st.builds(
    Params,
    lateness=st.sampled_from([0, 2 * MINUTE, 3 * HOUR]),
    retention=st.sampled_from([2 * DAY, 20 * DAY, 100 * DAY, 180 * DAY]),
    lookback=st.sampled_from([10 * DAY, 90 * DAY]),
    repeat_episodes=st.sampled_from([2, 3]),
    cumulative_window=st.sampled_from([5 * DAY, 30 * DAY]),
)


def _run(
    make: Any,
    evs: list[Event],
    p: Params,
    until: Millis | None,
    split: int,
    end: Millis | None = None,
) -> tuple[list[Alert], list[Alert], list[Alert], object]:
    """(every version produced, the final alerts drained part-way, the alerts at the end,
    the stats), with the engine's ``until`` and the ``finish(end)``."""
    d = make(p, until=until, now=lambda: 1_700_000_000_000)
    versions = d.feed_all(evs[:split])
    drained = d.drain_final()
    versions += d.feed_all(evs[split:])
    versions += d.finish(end)
    drained += d.drain_final()
    return versions, drained, d.alerts(), d.stats


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params, st.data())
def test_the_compiled_core_produces_the_reference_alerts_version_for_version(
    p: Params, data: st.DataObject
) -> None:
    evs = data.draw(events(p), label="events")
    until = data.draw(st.one_of(st.none(), _times(p)), label="until")
    split = data.draw(st.integers(0, len(evs)), label="split")
    end = data.draw(st.one_of(st.none(), _times(p)), label="finish")
    reference = _run(Detector, evs, p, until, split, end)
    compiled = _run(NativeDetector, evs, p, until, split, end)
    assert compiled[0] == reference[0]  # every version, in order
    assert compiled[1] == reference[1]  # final alerts drained, in order
    assert compiled[2] == reference[2]  # the alerts at the end, in order
    assert compiled[3] == reference[3]  # stats: events, duplicates, late, too late, versions


def _edges(delta: Millis) -> dict[str, tuple[Params, list[Event]]]:
    """Scenarios with one time ``delta`` ms off an edge of the engine's own making (not a rule's
    deadline, which the rule tables hold): the retention's horizon at a pruning, the resolution
    window, the drop of events beyond the retention, the lateness. Random times rarely land on
    these to the millisecond."""
    r, lateness = 20 * DAY, 2 * MINUTE
    p = Params(retention=r, lateness=lateness)
    kid = (HouseholdChild("C1", True, 9),)
    da = IncidentType.DOMESTIC_ABUSE
    csc, marac = Agency.CHILDRENS_SOCIAL_CARE, Agency.MARAC
    low = RiskLevel.LOW
    reported = MissingStatus.REPORTED
    return {
        # C1 is woken at a clock of exactly T0 + r + delta, so the horizon is T0 + delta: I1 at
        # T0 is kept or pruned, and the report's SG08 names I1 or I2 as the earlier incident.
        "pruning horizon": (p, [
            Referral("r0", T0 - HOUR, "R0", "C1", marac, None, None),
            Incident("i1", T0, "I1", da, None, kid),
            Incident("i2", T0 + r - DAY - MINUTE, "I2", da, None, kid),
            Referral("r9", T0 + r + lateness + delta, "R9", "C9", marac, None, None),
            MissingReport("m1", T0 + r + DAY, "E1", "C1", reported, low, False, None),
        ]),
        # SG01 of I1 is raised (due T0 + 24 h); a referral in order at the end of its
        # resolution window, due + r, resolves it, one ms later does not.
        "resolution window": (p, [
            Incident("i1", T0, "I1", da, None, kid),
            Referral("r9", T0 + 2 * DAY, "R9", "C9", marac, None, None),
            Referral("r1", T0 + DAY + r + delta, "R1", "C1", csc, "I1", None),
        ]),
        # The same through a late event: the referral arrives after the clock has passed it.
        "resolution window, late": (p, [
            Incident("i1", T0, "I1", da, None, kid),
            Referral("r9", T0 + DAY + r + 3 * DAY, "R9", "C9", marac, None, None),
            Referral("r1", T0 + DAY + r + delta, "R1", "C1", csc, "I1", None),
        ]),
        # An event exactly the retention behind the clock is applied; older ones are dropped.
        "too late": (p, [
            Incident("i1", T0 + 5 * DAY, "I1", da, None, kid),
            Referral("r9", T0 + r + 5 * DAY + lateness, "R9", "C9", marac, None, None),
            Incident("i0", T0 + 5 * DAY + delta, "I0", da, None, (HouseholdChild("C2", False, 8),)),
            Referral("r1", T0 + 5 * DAY + DAY + delta, "R1", "C1", csc, "I1", None),
        ]),
        # A referral exactly the lateness behind the latest event is still in time.
        "lateness": (p, [
            Incident("i2", T0 - 2 * DAY, "I2", da, None, (HouseholdChild("C2", True, 9),)),
            Incident("i1", T0, "I1", da, None, kid),
            Referral("r9", T0 + DAY + lateness + delta, "R9", "C9", marac, None, None),
            Referral("r1", T0 + DAY, "R1", "C1", csc, "I1", None),
        ]),
    }  # fmt: skip


@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.parametrize("scenario", list(_edges(0)))
def test_both_cores_agree_on_the_engines_own_edges_to_the_millisecond(
    scenario: str, delta: Millis
) -> None:
    p, evs = _edges(delta)[scenario]
    reference = _run(Detector, evs, p, None, len(evs))
    compiled = _run(NativeDetector, evs, p, None, len(evs))
    assert reference[0], "the scenario raises alerts"
    assert compiled == reference


_awkward = st.text(
    st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
)  # any text JSON can carry: quotes, backslashes, control characters, non-ASCII
"""Ids with every character the JSON writer has to escape, or keep as it is."""


@settings(max_examples=150, deadline=None)
@given(_awkward, _awkward, _awkward)
def test_alert_lines_are_the_reference_lines_for_any_ids(
    child: str, incident: str, event_id: str
) -> None:
    evs = [
        Incident(event_id, T0, incident, IncidentType.DOMESTIC_ABUSE, None,
                 (HouseholdChild(child, True, 9),)),
        MissingReport(event_id + "m", T0 + HOUR, incident, child, MissingStatus.REPORTED,
                      RiskLevel.ABSENT, True, None),
    ]  # fmt: skip
    d = NativeDetector(now=lambda: 1_700_000_000_001)
    d.feed_all(evs)
    d.finish(T0 + 10 * DAY)
    written: list[bytes] = []
    d.write_alerts(written.append)
    reference = Detector(now=lambda: 1_700_000_000_001)
    reference.feed_all(evs)
    reference.finish(T0 + 10 * DAY)
    assert b"".join(written) == b"".join(codec.alert_json_line(a) for a in reference.alerts())
    assert len(written) == 1


def _world(tmp_path: Path, children: int, days: int, seed: int) -> Path:
    path = tmp_path / "world.jsonl"
    run_generate(children, days, seed, path)
    return path


def _backtest(paths: list[Path], out: Path, core: str, **kwargs: Any) -> tuple[bytes, Any]:
    summary = backtest_inline(paths, out, core=core, now=lambda: 1_700_000_000_123, **kwargs)
    return out.read_bytes(), summary


def test_a_backtest_writes_the_same_lines_and_summary_on_both_cores(tmp_path: Path) -> None:
    """A generated world of two years, with invalid lines, re-sent events and the history split
    over two files out of order (sorted in memory), gives the same file byte for byte."""
    world = _world(tmp_path, 600, 730, seed=5)
    lines = world.read_bytes().splitlines(keepends=True)
    rng = random.Random(5)
    resent = rng.sample(lines, 50)
    damaged = [b'{"type": "incident", "event_id": "bad"}\n', b"not json\n"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    half = len(lines) // 2
    a.write_bytes(b"".join(lines[half:] + damaged))
    b.write_bytes(gzip.compress(b"".join(lines[:half] + resent)))
    out: dict[str, tuple[bytes, Any]] = {}
    for core in ("python", "native"):
        out[core] = _backtest([a, b], tmp_path / f"{core}.jsonl", core,
                              dead_letters=tmp_path / f"{core}-dl.jsonl")  # fmt: skip
    (ref_lines, ref), (got_lines, got) = out["python"], out["native"]
    assert ref_lines.count(b"\n") > 1000
    assert got_lines == ref_lines
    assert got.alerts == ref.alerts
    assert got.stats == ref.stats
    assert got.stats.duplicates > 0
    assert (got.events, got.invalid, got.until, got.sorted_in_memory) == (
        ref.events, ref.invalid, ref.until, ref.sorted_in_memory,
    )  # fmt: skip
    assert got.invalid == 2
    assert got.sorted_in_memory
    assert (got.core, ref.core) == ("native", "python")
    dead_letters = (tmp_path / "native-dl.jsonl").read_bytes()
    assert dead_letters == (tmp_path / "python-dl.jsonl").read_bytes()


def test_a_backtest_with_until_writes_the_same_lines_on_both_cores(tmp_path: Path) -> None:
    world = _world(tmp_path, 400, 365, seed=8)
    first = orjson.loads(world.read_bytes().split(b"\n", 1)[0])
    until = parse_rfc3339(first["occurred_at"]) + 200 * DAY
    ref, _ = _backtest([world], tmp_path / "p.jsonl", "python", until=until)
    got, summary = _backtest([world], tmp_path / "n.jsonl", "native", until=until)
    assert got == ref
    assert summary.until == until
    raised = [orjson.loads(line)["raised_at"] for line in got.splitlines()]
    assert raised
    assert max(parse_rfc3339(r) for r in raised) <= until


def test_a_report_is_the_same_on_both_cores(tmp_path: Path) -> None:
    """`safeguarding report` detects on the compiled core when installed: the same measures
    and grades, child for child."""
    world = _world(tmp_path, 800, 500, seed=4)
    first = orjson.loads(world.read_bytes().split(b"\n", 1)[0])
    start = parse_rfc3339(first["occurred_at"]) + 100 * DAY
    end = start + 300 * DAY
    reports = {
        core: report_to_dict(run_report([world], start, end, core=core))
        for core in ("python", "native")
    }
    assert reports["native"] == reports["python"]
    assert any(m["numerator"] for m in reports["python"]["measures"])


def test_the_inline_engine_is_chosen_by_safeguarding_core() -> None:
    def core(value: str | None) -> str:
        env = {} if value is None else {"SAFEGUARDING_CORE": value}
        return inline_engine(Settings.from_env(env).core)

    assert core(None) == "native"  # installed here (require_native_core)
    assert core("auto") == "native"
    assert core("native") == "native"
    assert core("python") == "python"
    with pytest.raises(ConfigurationError, match="SAFEGUARDING_CORE: expected auto, native or"):
        core("rust")


def test_without_the_compiled_core_auto_falls_back_and_native_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(native, "load", lambda: None)
    assert inline_engine("auto") == "python"
    with pytest.raises(NativeCoreMissing, match="cargo"):
        inline_engine("native")
    with pytest.raises(NativeCoreMissing):
        NativeDetector()
