"""`safeguarding generate`: a synthetic event history with planted missed opportunities.

The world is a cohort of children known to a police force's safeguarding teams, grouped in
households of one to four children. Each household lives through ``days`` days of event time:
domestic-abuse and other incidents that list its children, missing episodes of its children
(reported, sometimes reviewed, returned, sometimes interviewed), and referrals to every agency
that follow them on time, late or never. Nothing is read from the wall clock or the global
``random``: one seed gives the same bytes.

The household script leaves actions undone or late at the rates the inspections found, and
grades looked-after children down; the missed opportunities that result are *planted*. Each
is found by a small per-child oracle in this module that reads the child's whole history with
the rules of SPEC section 4 as docs/semantics.md reads them. A candidate whose
outcome could depend on a reading the documents leave open (an event within a few minutes of a
boundary, a resolving action that only some readings count, a resolution so late that the
detector may have let the facts age out) is dropped rather than planted, so every truth row is
an alert the detector must raise, with the severity of SPEC's table and the final status
(RAISED, or RESOLVED when the action came after the deadline). The detector may raise more.

Use::

    >>> world = generate(children=40, days=60, seed=7)
    >>> world.events == sorted(world.events, key=lambda e: e.occurred_at)
    True
    >>> {p.rule_id for p in world.planted} >= {"SG01", "SG03", "SG06"}
    True

Scale: :data:`EVENTS_PER_CHILD_YEAR` events per child per year with the default rates.
:func:`run_generate` generates blocks of 2,000 children (optionally in worker processes),
sorts each block into a temporary file and merges them, so a world of millions of events never
sits in memory: about 45 MB for a million events.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import heapq
import math
import multiprocessing
import os
import random
import tempfile
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

import orjson

from streams.codec import MAX_EVENT_MILLIS, MIN_MILLIS
from streams.domain.alerts import AlertStatus, RuleId, Severity
from streams.domain.events import (
    LOW_RISK,
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
from streams.domain.time import DAY, HOUR, MINUTE, Millis, from_datetime
from streams.errors import ConfigurationError
from streams.files import replaced_on_success

__all__ = [
    "DEFAULT_START",
    "EVENTS_PER_CHILD_YEAR",
    "GeneratedWorld",
    "Planted",
    "WorldStream",
    "generate",
    "generate_stream",
    "run_generate",
    "truth_path_for",
    "write_world",
]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: children generated so far, of all children."""

DEFAULT_START: Millis = from_datetime(datetime(2024, 1, 1, tzinfo=UTC))
"""Default start of history: a fixed date, never the wall clock."""

EVENTS_PER_CHILD_YEAR = 4.1
"""Measured mean with the default rates: 4.4 over one year, 4.0-4.1 over three to five, 3.7 over
ten (the cohort is the children of the start, plus births in the first two years, and ages out
at 18). A benchmark that wants E events picks ``children * days / 365 * 4.1 ~= E``, e.g.
1,000,000 events from 80,000 children over 1,095 days (measured: 979,958). About a third as
many truth rows as events are planted."""

_YEAR: Millis = 31_556_952_000  # 365.2425 days
_CSC, _SCHOOL, _MARAC = Agency.CHILDRENS_SOCIAL_CARE, Agency.SCHOOL, Agency.MARAC
_HEALTH, _EARLY_HELP = Agency.HEALTH, Agency.EARLY_HELP
_REPORTED, _REVIEWED = MissingStatus.REPORTED, MissingStatus.RISK_REVIEWED
_RETURNED, _INTERVIEW = MissingStatus.RETURNED, MissingStatus.RETURN_INTERVIEW
_HIGH, _MEDIUM, _LOW = RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW
_NAR, _ABSENT = RiskLevel.NO_APPARENT_RISK, RiskLevel.ABSENT
_RAISED_GRADES = frozenset({_HIGH, _MEDIUM})
_DA = IncidentType.DOMESTIC_ABUSE

# ---- Rates -----------------------------------------------------------------------------------
# Sources are GUIDANCE.md's ids. "no figure" means GUIDANCE.md has no national or local number
# for it: the value is a plausible choice for a demo cohort, and a constant of this module.

OUTCOME_ON_TIME = 0.31  # [S28] In harm's way (2015): 31% of 576 cases good
OUTCOME_LATE = 0.31  # [S28] 31% adequate, read here as "done, but after the deadline"
OUTCOME_MISSED = 0.38  # [S28] 38% inadequate, read here as "never done"
"""Each required action (CSC or school referral, risk review, repeat-missing or cumulative-risk
referral, return interview) is on time, late or missed with these shares. HMICFRS grades cases,
not actions: reading a grade as an action's fate is this generator's choice, and it makes
missed opportunities as common as the inspection found them."""

HOUSEHOLD_SIZES = (1, 2, 3, 4)
HOUSEHOLD_SIZE_WEIGHTS = (0.40, 0.33, 0.18, 0.09)  # no figure
P_DA_HOUSEHOLD = 0.6  # no figure: share of the cohort's households with domestic abuse
DA_PER_HOUSEHOLD_YEAR = 1.8  # no figure; repeats are common ([S14] R9 counts 3+ in 12 months)
OTHER_INCIDENTS_PER_HOUSEHOLD_YEAR = 0.8  # no figure
OTHER_INCIDENT_TYPES = (
    IncidentType.CHILD_NEGLECT,
    IncidentType.VIOLENCE,
    IncidentType.SEXUAL_OFFENCE,
    IncidentType.CONCERN_FOR_WELFARE,
    IncidentType.OTHER,
)
OTHER_INCIDENT_WEIGHTS = (0.25, 0.20, 0.05, 0.35, 0.15)  # no figure
P_CHILD_PRESENT = 0.45  # no figure; [S8] asks to see every child, present or not
P_AGE_UNKNOWN = 0.07  # no figure: age not recorded on the incident
P_MISSING_AGE_UNKNOWN = 0.03  # no figure
DASH_GRADES = (DashRisk.STANDARD, DashRisk.MEDIUM, DashRisk.HIGH, None)
DASH_WEIGHTS = (0.55, 0.25, 0.12, 0.08)  # no national figure; the bands are [S25]'s
DASH_WEIGHTS_AFTER_DARA = (0.50, 0.23, 0.12, 0.15)  # more ungraded as DARA replaces DASH [S26]
DARA_FROM: Millis = from_datetime(datetime(2022, 11, 26, tzinfo=UTC))  # [S26]

P_LOOKED_AFTER = 0.10  # no figure: looked-after children are a minority of the cohort
# Looked-after children are over-represented among missing children (SPEC section 1; [S16]
# exists because of it); the shares are choices, GUIDANCE.md has no national figure.
P_REPEAT_MISSING = {True: 0.25, False: 0.04}  # by looked_after
P_OCCASIONAL_MISSING = {True: 0.35, False: 0.15}  # by looked_after
DA_MISSING_FACTOR = 1.5  # no figure: domestic abuse at home as a push factor
REPEAT_MISSING_PER_YEAR = 8.0  # no figure; makes 3 in 90 days ([S6] R4, no national N) common
OCCASIONAL_MISSING_PER_YEAR = 1.0  # no figure
MISSING_FROM_AGE = 10  # no figure: missing children are mostly teenagers
RISK_GRADES = (_HIGH, _MEDIUM, _LOW, _NAR)
RISK_WEIGHTS = (0.10, 0.15, 0.35, 0.40)  # [S5]: ~25% of missing children at risk of serious harm
ABSENT_ABOLISHED: Millis = from_datetime(datetime(2017, 1, 1, tzinfo=UTC))  # [S3][S4] Jan 2017
P_ABSENT_BEFORE_2017 = {True: 0.45, False: 0.30}  # no share published ([S22] is a count only)
P_ABSENT_AFTER_2017 = 0.01  # no figure: legacy recording habits in the newer part of history
EPISODE_MEDIAN_HOURS = 8.0  # no figure; with sigma 1.3: ~20% missing over 24 h, ~5% over 72 h
EPISODE_SIGMA = 1.3
EPISODE_MAX: Millis = 30 * DAY
P_NEVER_RETURNS = 0.005  # no figure: still missing at the end of history
P_SCHOOL_TOLD_OF_MISSING = 0.2  # [S29] schools told of missing children; the share: no figure
BACKGROUND_REFERRALS_PER_CHILD_YEAR = 0.5  # no figure: referrals about no incident or episode
BACKGROUND_AGENCY_WEIGHTS = (0.35, 0.30, 0.20, 0.15)  # HEALTH, EARLY_HELP, SCHOOL, CSC; no figure
P_UNLINKED_REFERRAL = 0.15  # no figure: a referral that names no incident or episode
SHOWCASE_HOUSEHOLDS = 4
"""The first households of every world are the busiest kind (domestic abuse four times a year,
a looked-after repeat-missing teenager), so that even a small world plants every rule."""

# ---- Rule parameters: SPEC section 4's defaults (the detector's Params must agree) ----------
DA_REFERRAL_DEADLINE = 24 * HOUR  # SG01
REVIEW_DEADLINE = 4 * HOUR  # SG03
LOOKBACK = 90 * DAY  # SG04, SG05, SG06
REPEAT_EPISODES = 3  # SG05
REPEAT_REFERRAL_DEADLINE = 24 * HOUR  # SG05
RETURN_INTERVIEW_DEADLINE = 72 * HOUR  # SG06
RETURN_REPEAT_EPISODES = 2  # SG06
LONG_MISSING_DEADLINE = 24 * HOUR  # SG07
CUMULATIVE_WINDOW = 30 * DAY  # SG08
CUMULATIVE_DEADLINE = 24 * HOUR  # SG08
ENCOMPASS_ZONE = ZoneInfo("Europe/London")  # SG02: 08:30 local, next Monday-Friday

MARGIN: Millis = 5 * MINUTE
"""A relevant event this close to a boundary makes a candidate ambiguous: not planted. Larger
than the allowed lateness (2 min), so the watermark never matters either."""
RESOLVE_HORIZON: Millis = 90 * DAY
"""A resolving action later than this after the deadline is not relied on: the detector keeps a
child's facts for a retention (180 days by default) and may have let the alert go final."""


# ---- Public values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planted:
    """One planted missed opportunity: an alert the detector must raise (ground truth)."""

    rule_id: RuleId
    child_id: str
    trigger_id: str
    severity: Severity
    status: AlertStatus
    """RAISED, or RESOLVED when the action came after the deadline."""
    scenario: str
    """A short label of what the household script did, e.g. ``not_present_not_referred``."""
    raised_at: Millis
    """The due time (the report time for SG04)."""

    def to_json(self) -> dict[str, str]:
        return {
            "rule_id": self.rule_id.value,
            "child_id": self.child_id,
            "trigger_id": self.trigger_id,
            "severity": self.severity.value,
            "status": self.status.value,
            "scenario": self.scenario,
            "raised_at": _rfc3339(self.raised_at),
        }

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """(rule, child, trigger, severity, status), as alerts are compared."""
        return (self.rule_id, self.child_id, self.trigger_id, self.severity, self.status)


@dataclass(frozen=True, slots=True)
class GeneratedWorld:
    """A whole world in memory: events sorted by ``occurred_at`` (stable) and the truth."""

    events: list[Event]
    planted: list[Planted]
    """In generation order (household by household); only deadlines a replay reaches."""
    start: Millis
    end: Millis
    """Exclusive end of history: start + days."""
    children: int
    households: int


@dataclass(frozen=True, slots=True)
class WorldStream:
    """A world described, not yet generated: :func:`write_world` generates it a block of
    children at a time and never holds all of its events at once."""

    children: int
    days: int
    seed: int
    start: Millis = DEFAULT_START


def generate(children: int, days: int, seed: int, start: Millis | None = None) -> GeneratedWorld:
    """Generate a whole world in memory (for tests, small demos, feeding a detector directly).

    ``write_world(generate(...))`` and ``write_world(generate_stream(...))`` with the same
    arguments write the same bytes.
    """
    _check_size(children, days, start)
    gen = _Generator(days, seed, DEFAULT_START if start is None else start)
    rows: list[tuple[Millis, Event]] = []
    planted: list[Planted] = []
    households = 0
    for block in _blocks(children):
        for hh in gen.block(*block):
            rows.extend(_typed_rows(hh))
            planted.extend(Planted(*p) for p in hh.planted)
            households += 1
    rows.sort(key=_FIRST)  # stable: block, household, then time within the household
    events: list[Event] = [r[1] for r in rows]
    until = events[-1].occurred_at if events else gen.start
    return GeneratedWorld(
        events, _reachable(planted, until), gen.start, gen.end, children, households
    )


def generate_stream(
    children: int, days: int, seed: int, start: Millis | None = None
) -> WorldStream:
    """The streaming variant of :func:`generate`: pass the result to :func:`write_world`."""
    _check_size(children, days, start)
    return WorldStream(children, days, seed, DEFAULT_START if start is None else start)


def truth_path_for(out_path: str | os.PathLike[str]) -> Path:
    """``world.jsonl.gz`` -> ``world.planted.jsonl``: the default ground-truth file."""
    out = Path(out_path)
    name = out.name
    for suffix in (".jsonl.gz", ".json.gz", ".gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(name + ".planted.jsonl")


def write_world(
    world: GeneratedWorld | WorldStream,
    out_path: str | os.PathLike[str],
    truth_path: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write the events as JSON Lines sorted by ``occurred_at`` (gzip when ``out_path`` ends in
    ``.gz``) and the planted truth to ``truth_path`` (default :func:`truth_path_for`); return a
    summary (counts per event type, per planted rule and status).

    A :class:`WorldStream` is generated a block of children at a time (in ``workers``
    processes, default 1; the bytes do not depend on it); each block's events are sorted into
    a temporary file next to ``out_path`` and the blocks are merged at the end, so memory holds
    one block per worker plus 8 bytes per event.
    """
    out = Path(out_path)
    truth = Path(truth_path) if truth_path is not None else truth_path_for(out)
    counts: Counter[str] = Counter({"incident": 0, "missing_report": 0, "referral": 0})
    if isinstance(world, GeneratedWorld):
        encode = _line_encoder()
        with _open_out(out) as sink:
            _write_lines(sink, (encode(e) for e in world.events))
        counts.update(e.type for e in world.events)
        with _open_out(truth) as sink:
            _write_lines(sink, (_truth_line(p) for p in world.planted))
        planted = Counter((p.rule_id.value, p.status.value) for p in world.planted)
        meta = (world.children, world.households, world.start, world.end)
        if progress is not None:
            progress(world.children, world.children)
    else:
        planted, meta = _write_stream(world, out, truth, counts, progress, workers)
    return _summary(counts, planted, meta, out, truth)


def run_generate(
    children: int,
    days: int,
    seed: int,
    out: str | os.PathLike[str],
    truth: str | os.PathLike[str] | None = None,
    *,
    start: Millis | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """`safeguarding generate --children N --days D --seed S --out FILE`: write the world and
    its truth (default: ``FILE`` with suffix ``.planted.jsonl``) and return a summary."""
    stream = generate_stream(children, days, seed, start)
    return write_world(stream, out, truth, progress=progress, workers=workers)


# ---- Writing ---------------------------------------------------------------------------------

_FIRST = itemgetter(0)


MAX_WORLD_CHILDREN: Final = 20_000_000
"""More children than England has (about 12 million): a larger number is a typing error."""


class WorldSizeError(ConfigurationError, ValueError):
    """A world that cannot be generated: too small, too large, or ending past the last event
    time (:data:`streams.codec.MAX_EVENT_MILLIS`)."""


def _check_size(children: int, days: int, start: Millis | None = None) -> None:
    if children < 1:
        raise WorldSizeError(f"children must be at least 1, got {children}")
    if children > MAX_WORLD_CHILDREN:
        raise WorldSizeError(f"children must be at most {MAX_WORLD_CHILDREN:,}, got {children:,}")
    if days < 1:
        raise WorldSizeError(f"days must be at least 1, got {days}")
    first = DEFAULT_START if start is None else start
    if first < MIN_MILLIS:
        raise WorldSizeError("the start must be 1900-01-01 or later")
    if first + (days + 1) * DAY > MAX_EVENT_MILLIS:
        raise WorldSizeError(
            f"{days:,} days from {_rfc3339(first)} go past 9999-12-24, the last event time"
        )


def _reachable(planted: Iterable[Planted], until: Millis) -> list[Planted]:
    """What a replay to the last event time (``--until``'s default) certainly raises: a
    deadline after that never fires, so it is not planted."""
    return [p for p in planted if p.raised_at <= until - MARGIN]


def _truth_line(p: Planted | _PlantedRow) -> bytes:
    """The truth row's JSON line (ids and labels need no escaping, as in :func:`_json_rows`);
    the same object as :meth:`Planted.to_json`."""
    if isinstance(p, Planted):
        p = (p.rule_id, p.child_id, p.trigger_id, p.severity, p.status, p.scenario, p.raised_at)
    rule, child, trigger, severity, status, scenario, raised_at = p
    return (
        f'{{"rule_id":"{rule}","child_id":"{child}","trigger_id":"{trigger}",'
        f'"severity":"{severity}","status":"{status}","scenario":"{scenario}",'
        f'"raised_at":"{_rfc3339(raised_at)}"}}\n'
    ).encode()


def _summary(
    counts: Counter[str],
    planted: Counter[tuple[str, str]],
    meta: tuple[int, int, Millis, Millis],
    out: Path,
    truth: Path,
) -> dict[str, Any]:
    children, households, start, end = meta
    by_rule: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for (rule, status), n in planted.items():
        by_rule[rule] += n
        by_status[status] += n
    return {
        "out": str(out),
        "truth": str(truth),
        "children": children,
        "households": households,
        "start": _rfc3339(start),
        "end": _rfc3339(end),
        "events": sum(counts.values()),
        "events_by_type": dict(sorted(counts.items())),
        "planted": sum(by_rule.values()),
        "planted_by_rule": dict(sorted(by_rule.items())),
        "planted_by_status": dict(sorted(by_status.items())),
    }


@contextlib.contextmanager
def _open_out(path: Path) -> Iterator[IO[bytes]]:
    """A binary sink; gzip with a fixed header (no name, no mtime) so bytes are reproducible.
    ``path`` is replaced only when the whole file is written."""
    with replaced_on_success(path) as raw:
        if not path.name.endswith(".gz"):
            yield raw
            return
        # level 1: three times faster than 6 on this data, for a third more bytes (33 MB
        # rather than 24 MB a million events)
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz:
            yield gz  # type: ignore[misc]


def _write_lines(sink: IO[bytes], lines: Iterable[bytes], batch: int = 8192) -> None:
    """Write newline-terminated lines in batches (one ``write`` per ``batch`` lines)."""
    buf: list[bytes] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= batch:
            sink.write(b"".join(buf))
            buf.clear()
    if buf:
        sink.write(b"".join(buf))


BLOCK_CHILDREN = 2_000
"""Children per block (more when a world would have over MAX_BLOCKS blocks). Each block has its
own random stream, seeded from the seed and the block number, so blocks are generated in any
order or in parallel and the world is the same."""
MAX_BLOCKS = 256
"""At most this many sorted block files are merged at once (open files, read buffers)."""


def _blocks(children: int) -> list[tuple[int, int, int]]:
    """(block number, index of its first child, number of children) of each block."""
    size = max(BLOCK_CHILDREN, -(-children // MAX_BLOCKS))
    return [
        (b, first, min(size, children - first)) for b, first in enumerate(range(0, children, size))
    ]


@dataclass(frozen=True, slots=True)
class _BlockResult:
    children: int
    households: int
    events_path: str
    """The block's event lines, sorted by time (stable)."""
    times: array[int]
    """The time of each line of ``events_path``."""
    truth_path: str
    """The block's truth lines, each prefixed with its raised_at and a tab."""
    kinds: tuple[int, int, int]
    """Incidents, missing reports, referrals."""
    planted: dict[tuple[str, str], int]
    until: Millis
    """The greatest event time of the block."""


def _block_task(task: tuple[int, int, Millis, int, int, int, str]) -> _BlockResult:
    """Generate one block into two files in ``tmp``: a top-level function, for worker processes."""
    days, seed, start, block, first, n, tmp = task
    gen = _Generator(days, seed, start)
    kinds = [0, 0, 0]
    lines: list[tuple[Millis, bytes]] = []
    truth_lines: list[bytes] = []
    planted: Counter[tuple[str, str]] = Counter()
    until = start
    households = 0
    for hh in gen.block(block, first, n):
        households += 1
        lines.extend(_json_rows(hh, kinds))
        for p in hh.planted:
            planted[(p[0].value, p[4].value)] += 1
            truth_lines.append(b"%d\t" % p[6] + _truth_line(p))
        if hh.rows and hh.rows[-1][0] > until:
            until = hh.rows[-1][0]
    lines.sort(key=_FIRST)  # stable: household order breaks ties
    events_path = os.path.join(tmp, f"events{block:06d}")
    with open(events_path, "wb", buffering=1 << 20) as fh:
        _write_lines(fh, (line for _, line in lines))
    truth_path = os.path.join(tmp, f"truth{block:06d}")
    with open(truth_path, "wb", buffering=1 << 20) as fh:
        _write_lines(fh, truth_lines)
    times = array("q", (t for t, _ in lines))
    return _BlockResult(
        n,
        households,
        events_path,
        times,
        truth_path,
        (kinds[0], kinds[1], kinds[2]),
        dict(planted),
        until,
    )


def _run_blocks(tasks: list[Any], workers: int | None) -> Iterator[_BlockResult]:
    """Results in block order, from ``workers`` processes (default 1: in this process).

    More workers only pay on idle cores: on a busy two-core machine two workers were slower
    than one, as the merge that follows is serial anyway."""
    workers = min(workers or 1, len(tasks))
    if workers <= 1:
        yield from map(_block_task, tasks)
        return
    # fork is fast, but unsafe with other threads alive (a progress bar's, say): then spawn
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield from pool.imap(_block_task, tasks)


def _write_stream(
    world: WorldStream,
    out: Path,
    truth: Path,
    counts: Counter[str],
    progress: Progress | None,
    workers: int | None,
) -> tuple[Counter[tuple[str, str]], tuple[int, int, Millis, Millis]]:
    """Generate the blocks, then merge their sorted files; the truth rows a replay cannot
    reach (a deadline after the last event) are known only at the end, and dropped then."""
    _check_size(world.children, world.days, world.start)
    end = world.start + world.days * DAY
    if out.parent != Path():
        out.parent.mkdir(parents=True, exist_ok=True)
    planted: Counter[tuple[str, str]] = Counter()
    with tempfile.TemporaryDirectory(prefix=".generate-", dir=out.parent) as tmp:
        tasks = [
            (world.days, world.seed, world.start, *block, tmp) for block in _blocks(world.children)
        ]
        results: list[_BlockResult] = []
        done = 0
        for result in _run_blocks(tasks, workers):
            results.append(result)
            done += result.children
            if progress is not None:
                progress(done, world.children)
        until = max(r.until for r in results)
        with _open_out(out) as sink:
            _merge(sink, [(r.events_path, r.times) for r in results])
        with _open_out(truth) as sink:
            for r in results:
                planted.update(r.planted)
                _copy_reachable(r.truth_path, sink, until, planted)
    for r in results:
        counts["incident"] += r.kinds[0]
        counts["missing_report"] += r.kinds[1]
        counts["referral"] += r.kinds[2]
    households = sum(r.households for r in results)
    return planted, (world.children, households, world.start, end)


def _merge(sink: IO[bytes], sources: list[tuple[str, array[int]]]) -> None:
    """heapq.merge is stable across its inputs: on equal times the earlier block comes first,
    as the in-memory sort orders them."""
    with contextlib.ExitStack() as stack:
        inputs: list[Iterable[tuple[Millis, bytes]]] = []
        for path, times in sources:
            fh = stack.enter_context(open(path, "rb", buffering=1 << 16))
            inputs.append(zip(times, fh, strict=True))
        if len(inputs) == 1:
            _write_lines(sink, (line for _, line in inputs[0]))
        else:
            _write_lines(sink, (line for _, line in heapq.merge(*inputs, key=_FIRST)))


def _copy_reachable(
    path: str, sink: IO[bytes], until: Millis, planted: Counter[tuple[str, str]]
) -> None:
    """Copy the truth rows a replay reaches; uncount the others."""
    with open(path, "rb") as fh:
        for line in fh:
            raised_at, _, row = line.partition(b"\t")
            if int(raised_at) <= until - MARGIN:
                sink.write(row)
            else:
                obj = orjson.loads(row)
                planted[(obj["rule_id"], obj["status"])] -= 1


# ---- JSON ------------------------------------------------------------------------------------


def _line_encoder() -> Callable[[Event], bytes]:
    """The shared codec's encoder (a newline-terminated line) when it exists, else this
    module's own; both give SPEC section 3's JSON shape."""
    try:
        from streams.codec import encode_json_line
    except ImportError:
        return _encode_json_line
    probe = encode_json_line(Referral("e", 0, "r", "c", Agency.SCHOOL, None, None))
    if probe.endswith(b"\n"):
        return encode_json_line
    return lambda event: encode_json_line(event) + b"\n"


_HOUR_PREFIX: dict[int, str] = {}
_MMSS = tuple(f"{m:02d}:{sec:02d}" for m in range(60) for sec in range(60))


def _rfc3339(ms: Millis) -> str:
    """``2024-03-01T10:15:00Z`` (with ``.123`` only when there are milliseconds), as
    :func:`streams.domain.time.to_rfc3339` writes it, several times faster (an hour cache)."""
    hour, rem = divmod(ms, HOUR)
    prefix = _HOUR_PREFIX.get(hour)
    if prefix is None:
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
        prefix = _HOUR_PREFIX[hour] = dt.strftime("%Y-%m-%dT%H:")
    secs, milli = divmod(rem, 1000)
    if milli:
        return f"{prefix}{_MMSS[secs]}.{milli:03d}Z"
    return f"{prefix}{_MMSS[secs]}Z"


def _json_rows(hh: _Household, kinds: list[int]) -> list[tuple[Millis, bytes]]:
    """(time, JSON line) of each row of a household, formatted directly (the hot path).

    Every string is an id this module made ([A-Z0-9-]) or an enum value, so nothing needs
    escaping; the bytes equal ``streams.codec.encode_json_line`` of the typed event (the tests
    compare them line by line).
    """
    e, r = hh.e_prefix, hh.r_prefix
    hours, mmss = _HOUR_PREFIX, _MMSS
    out: list[tuple[Millis, bytes]] = []
    for row in hh.rows:
        t, kind, n = row[0], row[1], row[2]
        hour, rem = divmod(t, HOUR)
        prefix = hours.get(hour)
        ts = _rfc3339(t) if prefix is None or rem % 1000 else f"{prefix}{mmss[rem // 1000]}Z"
        kinds[kind] += 1
        if kind == _REF:
            _, _, _, child, agency, iid, epid = row
            iid = "null" if iid is None else f'"{iid}"'
            epid = "null" if epid is None else f'"{epid}"'
            text = (
                f'{{"type":"referral","event_id":"{e}{n}","occurred_at":"{ts}",'
                f'"referral_id":"{r}{n}","child_id":"{child}","agency":"{agency}",'
                f'"incident_id":{iid},"episode_id":{epid}}}\n'
            )
        elif kind == _MIS:
            _, _, _, epid, child, status, risk, lac, age = row
            risk = "null" if risk is None else f'"{risk}"'
            text = (
                f'{{"type":"missing_report","event_id":"{e}{n}","occurred_at":"{ts}",'
                f'"episode_id":"{epid}","child_id":"{child}","status":"{status}",'
                f'"risk_level":{risk},"looked_after":{"true" if lac else "false"},'
                f'"age":{"null" if age is None else age}}}\n'
            )
        else:
            _, _, _, iid, itype, dash, kids = row
            dash = "null" if dash is None else f'"{dash}"'
            listed = ",".join(
                f'{{"child_id":"{c[1]}","present":{"true" if c[2] else "false"},'
                f'"age":{"null" if c[3] is None else c[3]}}}'
                for c in kids
            )
            text = (
                f'{{"type":"incident","event_id":"{e}{n}","occurred_at":"{ts}",'
                f'"incident_id":"{iid}","incident_type":"{itype}","dash_risk":{dash},'
                f'"children":[{listed}]}}\n'
            )
        out.append((t, text.encode()))
    return out


def _typed_rows(hh: _Household) -> Iterator[tuple[Millis, Event]]:
    """(time, typed event) of each row of a household."""
    e, r = hh.e_prefix, hh.r_prefix
    for row in hh.rows:
        t, kind, n = row[0], row[1], row[2]
        if kind == _REF:
            _, _, _, child, agency, iid, epid = row
            yield t, Referral(f"{e}{n}", t, f"{r}{n}", child, agency, iid, epid)
        elif kind == _MIS:
            _, _, _, epid, child, status, risk, lac, age = row
            yield t, MissingReport(f"{e}{n}", t, epid, child, status, risk, lac, age)
        else:
            _, _, _, iid, itype, dash, kids = row
            listed = tuple(HouseholdChild(c[1], c[2], c[3]) for c in kids)
            yield t, Incident(f"{e}{n}", t, iid, itype, dash, listed)


def _encode_json_line(event: Event) -> bytes:
    """One event as SPEC section 3's JSON object, newline-terminated (used only when
    ``streams.codec`` is missing)."""
    if isinstance(event, Referral):
        obj: dict[str, Any] = {
            "type": "referral",
            "event_id": event.event_id,
            "occurred_at": _rfc3339(event.occurred_at),
            "referral_id": event.referral_id,
            "child_id": event.child_id,
            "agency": event.agency.value,
            "incident_id": event.incident_id,
            "episode_id": event.episode_id,
        }
    elif isinstance(event, MissingReport):
        obj = {
            "type": "missing_report",
            "event_id": event.event_id,
            "occurred_at": _rfc3339(event.occurred_at),
            "episode_id": event.episode_id,
            "child_id": event.child_id,
            "status": event.status.value,
            "risk_level": None if event.risk_level is None else event.risk_level.value,
            "looked_after": event.looked_after,
            "age": event.age,
        }
    else:
        obj = {
            "type": "incident",
            "event_id": event.event_id,
            "occurred_at": _rfc3339(event.occurred_at),
            "incident_id": event.incident_id,
            "incident_type": event.incident_type.value,
            "dash_risk": None if event.dash_risk is None else event.dash_risk.value,
            "children": [
                {"child_id": c.child_id, "present": c.present, "age": c.age} for c in event.children
            ],
        }
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


# ---- The household script --------------------------------------------------------------------
#
# A household's events are rows, cheaper than the typed events and turned into JSON or typed
# events only at the end:
#   incident:       (t, _INC, n, incident_id, IncidentType, DashRisk | None,
#                    ((kid index, child_id, present, age), ...))
#   missing_report: (t, _MIS, n, episode_id, child_id, MissingStatus, RiskLevel | None,
#                    looked_after, age)
#   referral:       (t, _REF, n, child_id, Agency, incident_id, episode_id)
# n numbers the household's rows; event_id is E<household>-n, referral_id R<household>-n.

_INC, _MIS, _REF = 0, 1, 2


def _cumulative(weights: tuple[float, ...]) -> tuple[float, ...]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return tuple(x / total for x in out)


def _pick(rnd: Callable[[], float], values: tuple[Any, ...], cum: tuple[float, ...]) -> Any:
    """``random.choices(values, weights)[0]`` with precomputed cumulative weights, faster."""
    return values[bisect.bisect_right(cum, rnd(), 0, len(values) - 1)]


_SIZE_CUM = _cumulative(HOUSEHOLD_SIZE_WEIGHTS)
_OTHER_CUM = _cumulative(OTHER_INCIDENT_WEIGHTS)
_DASH_CUM = _cumulative(DASH_WEIGHTS)
_DASH_DARA_CUM = _cumulative(DASH_WEIGHTS_AFTER_DARA)
_RISK_CUM = _cumulative(RISK_WEIGHTS)
_BACKGROUND_AGENCIES = (_HEALTH, _EARLY_HELP, _SCHOOL, _CSC)
_BACKGROUND_CUM = _cumulative(BACKGROUND_AGENCY_WEIGHTS)
_REVIEW_LOW_CUM = _cumulative((0.45, 0.25, 0.25, 0.05))  # LOW, same, MEDIUM, HIGH; no figure
_P_CSC_AFTER_OTHER = {  # no figure: referrals to children's social care after other incidents
    IncidentType.CHILD_NEGLECT: 0.8,
    IncidentType.SEXUAL_OFFENCE: 0.9,
    IncidentType.VIOLENCE: 0.4,
    IncidentType.CONCERN_FOR_WELFARE: 0.4,
    IncidentType.OTHER: 0.1,
}
_LATE_CUT = OUTCOME_ON_TIME + OUTCOME_LATE
_LOG_MEDIAN = math.log(EPISODE_MEDIAN_HOURS * HOUR)


class _Kid:
    """A child of the household as the script knows it."""

    __slots__ = (
        "birth",
        "child_id",
        "da_times",
        "first",
        "last",
        "last_repeat",
        "looked_after",
        "missing_rate",
        "reports",
    )

    def __init__(
        self, child_id: str, birth: Millis, looked_after: bool, first: Millis, last: Millis
    ) -> None:
        self.child_id = child_id
        self.birth = birth
        self.looked_after = looked_after
        self.missing_rate = 0.0  # episodes a year while of missing age; 0: never missing
        self.first = first  # listed from: born, or the start of history
        self.last = last  # listed until: 18th birthday, or the end of history
        self.reports: list[Millis] = []  # report times so far (the script's SG05 decision)
        self.last_repeat: Millis | None = None  # the script's last repeat-missing decision
        self.da_times: list[Millis] = []  # domestic abuse so far (the script's SG08 decision)


@dataclass(slots=True)
class _Household:
    e_prefix: str
    r_prefix: str
    kids: list[_Kid]
    rows: list[tuple[Any, ...]]
    """Sorted by time (stable)."""
    planted: list[_PlantedRow]


class _Generator:
    """The households of a world, block by block, each with its rows sorted by time."""

    def __init__(self, days: int, seed: int, start: Millis) -> None:
        self.seed = seed
        self.start = start
        self.end = start + days * DAY
        self.rng = random.Random(seed)
        self._encompass: dict[int, Millis] = {}

    def poisson_times(self, per_year: float, lo: Millis, hi: Millis) -> list[Millis]:
        """Whole-second times of a Poisson process with ``per_year`` events a year in [lo, hi)."""
        out: list[Millis] = []
        if per_year <= 0 or hi <= lo:
            return out
        rate = per_year / _YEAR
        expo = self.rng.expovariate
        t = lo + expo(rate)
        while t < hi:
            out.append(int(t) // 1000 * 1000)  # police systems record whole seconds
            t += expo(rate)
        return out

    def between(self, lo: Millis, hi: Millis) -> Millis:
        """A whole-second time uniformly in [lo, hi]."""
        return int(lo + self.rng.random() * (hi - lo)) // 1000 * 1000

    def encompass_due(self, t: Millis) -> Millis:
        """SG02 due: 08:30 Europe/London on the first Monday-Friday after the local date."""
        hour = t // HOUR  # the local date is constant within a UTC hour (UK offsets are whole)
        due = self._encompass.get(hour)
        if due is None:
            local = datetime.fromtimestamp(t / 1000, ENCOMPASS_ZONE).date()
            day = local + timedelta(days=1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            due = from_datetime(
                datetime(day.year, day.month, day.day, 8, 30, tzinfo=ENCOMPASS_ZONE)
            )
            self._encompass[hour] = due
        return due

    def block(self, block: int, first: int, children: int) -> Iterator[_Household]:
        """The households of children ``first`` to ``first + children - 1``, from the block's
        own random stream."""
        self.rng = random.Random(f"{self.seed}/{block}")
        rnd = self.rng.random
        done = households = 0
        while done < children:
            size = min(_pick(rnd, HOUSEHOLD_SIZES, _SIZE_CUM), children - done)
            showcase = block == 0 and households < SHOWCASE_HOUSEHOLDS
            households += 1
            script = _HouseholdScript(self, first + done, size, showcase)
            rows = script.run()
            planted = _oracle(rows, script.kids, self)
            done += size
            yield _Household(script.e_prefix, script.r_prefix, script.kids, rows, planted)


class _HouseholdScript:
    """One household's history: what happened, and what was (or was not) done about it."""

    def __init__(self, gen: _Generator, first_child: int, size: int, showcase: bool) -> None:
        self.gen = gen
        self.rng = gen.rng
        rnd = self.rnd = gen.rng.random
        self.start, self.end = start, end = gen.start, gen.end
        hid = f"{first_child:07d}"  # the household is named after its first child
        self.e_prefix, self.r_prefix = f"E{hid}-", f"R{hid}-"
        self.i_prefix, self.m_prefix = f"I{hid}-", f"M{hid}-"
        self.n = 0
        self.rows: list[tuple[Any, ...]] = []
        self.showcase = showcase
        self.da_household = showcase or rnd() < P_DA_HOUSEHOLD
        span = min(2.0, (end - start) / _YEAR)  # some children are born during history
        factor = DA_MISSING_FACTOR if self.da_household else 1.0
        self.kids: list[_Kid] = []
        for i in range(size):
            lac = rnd() < P_LOOKED_AFTER
            if showcase and i == 0:
                age0 = 13.0 + rnd() * 2  # a teenager for the whole of a short history
                lac = True
            else:
                age0 = -span + rnd() * (18.0 + span)
            birth = start - int(age0 * _YEAR)
            kid = _Kid(
                f"C{hid}-{i + 1}", birth, lac, max(start, birth), min(end, birth + 18 * _YEAR)
            )
            r = rnd()
            p_repeat = P_REPEAT_MISSING[lac] * factor
            if (showcase and i == 0) or r < p_repeat:
                kid.missing_rate = REPEAT_MISSING_PER_YEAR
            elif r < p_repeat + P_OCCASIONAL_MISSING[lac] * factor:
                kid.missing_rate = OCCASIONAL_MISSING_PER_YEAR
            self.kids.append(kid)

    # -- emitters ------------------------------------------------------------------------------

    def referral(
        self, t: Millis, kid: _Kid, agency: Agency, incident_id: str | None, episode_id: str | None
    ) -> None:
        if self.start <= t < self.end:
            self.n += 1
            self.rows.append((t, _REF, self.n, kid.child_id, agency, incident_id, episode_id))

    def step(
        self,
        t: Millis,
        kid: _Kid,
        episode_id: str,
        status: MissingStatus,
        risk: RiskLevel | None,
        age: int,
    ) -> None:
        """One step of an episode; ``age`` is the child's age at the report (a child reported
        at 17 stays 17 on the episode's record after an 18th birthday)."""
        if self.start <= t < self.end:
            self.n += 1
            if self.rnd() < P_MISSING_AGE_UNKNOWN:
                age = None  # type: ignore[assignment]
            self.rows.append(
                (t, _MIS, self.n, episode_id, kid.child_id, status, risk, kid.looked_after, age)
            )

    def when(self, t: Millis, due: Millis, late_max: Millis = 5 * DAY) -> Millis | None:
        """When a required action is done: on time (from ``t`` + 10 min to ``due`` - 15 min),
        late (from ``due`` + 30 min to ``due`` + ``late_max``) or never, in the OUTCOME_ shares."""
        r = self.rnd()
        if r < OUTCOME_ON_TIME:
            lo = t + 10 * MINUTE
            return self.gen.between(lo, max(lo, due - 15 * MINUTE))
        if r < _LATE_CUT:
            return self.gen.between(due + 30 * MINUTE, due + late_max)
        return None

    # -- the script ----------------------------------------------------------------------------

    def run(self) -> list[tuple[Any, ...]]:
        gen, rnd, start, end = self.gen, self.rnd, self.start, self.end
        timeline: list[tuple[Millis, int, int, Millis | None]] = []
        if self.da_household:
            da_rate = 4.0 if self.showcase else DA_PER_HOUSEHOLD_YEAR
            timeline.extend((t, 0, 0, None) for t in gen.poisson_times(da_rate, start, end))
        other = gen.poisson_times(OTHER_INCIDENTS_PER_HOUSEHOLD_YEAR, start, end)
        timeline.extend((t, 1, 0, None) for t in other)
        for i, kid in enumerate(self.kids):
            if kid.missing_rate > 0:
                timeline.extend(self._episodes(i, kid))
            background = BACKGROUND_REFERRALS_PER_CHILD_YEAR
            timeline.extend(
                (t, 3, i, None) for t in gen.poisson_times(background, kid.first, kid.last)
            )
        timeline.sort(key=_TIMELINE_ORDER)
        kids = self.kids
        for t, what, i, returned in timeline:
            if what == 0:
                self._incident(t, _DA)
            elif what == 1:
                self._incident(t, _pick(rnd, OTHER_INCIDENT_TYPES, _OTHER_CUM))
            elif what == 2:
                self._episode(kids[i], t, returned)
            else:
                agency = _pick(rnd, _BACKGROUND_AGENCIES, _BACKGROUND_CUM)
                self.referral(t, kids[i], agency, None, None)
        self.rows.sort(key=_FIRST)
        return self.rows

    def _episodes(self, i: int, kid: _Kid) -> list[tuple[Millis, int, int, Millis | None]]:
        """A child's missing episodes, one after another (a child is missing once at a time):
        (reported, 2, kid index, returned, or None when still missing at the end)."""
        rng = self.rng
        lo = max(kid.first, kid.birth + MISSING_FROM_AGE * _YEAR)
        rate = kid.missing_rate / _YEAR
        out: list[tuple[Millis, int, int, Millis | None]] = []
        t = lo + rng.expovariate(rate)
        while t < kid.last:
            reported = int(t) // 1000 * 1000
            if rng.random() < P_NEVER_RETURNS:
                out.append((reported, 2, i, None))
                break
            duration = min(EPISODE_MAX, int(rng.lognormvariate(_LOG_MEDIAN, EPISODE_SIGMA)))
            duration = max(duration, 20 * MINUTE) // 1000 * 1000
            out.append((reported, 2, i, reported + duration))
            t = reported + duration + HOUR + rng.expovariate(rate)
        return out

    def _incident(self, t: Millis, kind: IncidentType) -> None:
        rng, rnd = self.rng, self.rnd
        listed = [(i, k) for i, k in enumerate(self.kids) if k.first <= t < k.last]
        if not listed:
            return
        if kind is not _DA and len(listed) > 1:
            listed = sorted(rng.sample(listed, rng.randint(1, len(listed))), key=_FIRST)
        kids = tuple(
            (
                i,
                k.child_id,
                rnd() < P_CHILD_PRESENT,
                None if rnd() < P_AGE_UNKNOWN else (t - k.birth) // _YEAR,
            )
            for i, k in listed
        )
        dash = None
        if kind is _DA:
            dash = _pick(rnd, DASH_GRADES, _DASH_DARA_CUM if t >= DARA_FROM else _DASH_CUM)
        self.n += 1
        incident_id = f"{self.i_prefix}{self.n}"
        self.rows.append((t, _INC, self.n, incident_id, kind, dash, kids))
        for i, _, present, age in kids:
            if kind is _DA:
                self._after_da(t, self.kids[i], incident_id, present, age, dash)
            else:
                self._after_other(t, self.kids[i], incident_id, kind, present)

    def _after_da(
        self,
        t: Millis,
        kid: _Kid,
        incident_id: str,
        present: bool,
        age: int | None,
        dash: DashRisk | None,
    ) -> None:
        gen, rnd = self.gen, self.rnd
        kid.da_times.append(t)
        # SG01: children's social care within 24 h [S8][S9]
        at = self.when(t, t + DA_REFERRAL_DEADLINE)
        if at is not None:
            self.referral(at, kid, _CSC, None if rnd() < P_UNLINKED_REFERRAL else incident_id, None)
        # SG02: Operation Encompass before the next school day [S12]; the police tell the
        # school of a school-age child (4-17), whatever age the incident recorded
        if 4 <= (t - kid.birth) // _YEAR <= 17:
            at = self.when(t, gen.encompass_due(t))
            if at is not None:
                linked = None if rnd() < P_UNLINKED_REFERRAL else incident_id
                self.referral(at, kid, _SCHOOL, linked, None)
        # MARAC for high-risk domestic abuse [S14]: no deadline, so no rule yet (GUIDANCE R8)
        if dash is DashRisk.HIGH and rnd() < _LATE_CUT:
            self.referral(gen.between(t + HOUR, t + 10 * DAY), kid, _MARAC, incident_id, None)
        if dash is DashRisk.STANDARD and rnd() < 0.15:  # no figure
            self.referral(gen.between(t + DAY, t + 14 * DAY), kid, _EARLY_HELP, incident_id, None)
        if present and age is not None and age < 5 and rnd() < 0.10:  # no figure
            self.referral(gen.between(t + HOUR, t + 7 * DAY), kid, _HEALTH, incident_id, None)

    def _after_other(
        self, t: Millis, kid: _Kid, incident_id: str, kind: IncidentType, present: bool
    ) -> None:
        gen, rnd = self.gen, self.rnd
        if rnd() < _P_CSC_AFTER_OTHER[kind]:
            self.referral(gen.between(t + HOUR, t + 3 * DAY), kid, _CSC, incident_id, None)
        hurt = kind is IncidentType.SEXUAL_OFFENCE or kind is IncidentType.VIOLENCE
        if present and hurt and rnd() < 0.4:  # no figure
            self.referral(gen.between(t + HOUR, t + 2 * DAY), kid, _HEALTH, incident_id, None)
        welfare = kind is IncidentType.CONCERN_FOR_WELFARE or kind is IncidentType.CHILD_NEGLECT
        if welfare and rnd() < 0.3:  # no figure
            self.referral(gen.between(t + DAY, t + 14 * DAY), kid, _EARLY_HELP, incident_id, None)

    def _grade(self, t: Millis, kid: _Kid) -> RiskLevel:
        if t < ABSENT_ABOLISHED:
            p_absent = P_ABSENT_BEFORE_2017[kid.looked_after]
        else:
            p_absent = P_ABSENT_AFTER_2017
        if self.rnd() < p_absent:
            return _ABSENT
        return _pick(self.rnd, RISK_GRADES, _RISK_CUM)  # type: ignore[no-any-return]

    def _episode(self, kid: _Kid, tr: Millis, ret: Millis | None) -> None:
        gen, rnd = self.gen, self.rnd
        self.n += 1
        episode_id = f"{self.m_prefix}{self.n}"
        age = (tr - kid.birth) // _YEAR

        def step(at: Millis, status: MissingStatus, risk: RiskLevel | None = None) -> None:
            self.step(at, kid, episode_id, status, risk, age)

        open_until = self.end if ret is None else ret
        level = self._grade(tr, kid)
        step(tr, _REPORTED, level)
        # SG03: a supervisor reviews a low-risk report within 4 h [S1]; nothing once returned
        if level in LOW_RISK:
            at = self.when(tr, tr + REVIEW_DEADLINE, late_max=16 * HOUR)
            if at is not None and at < open_until - 10 * MINUTE:
                new = _pick(rnd, (_LOW, level, _MEDIUM, _HIGH), _REVIEW_LOW_CUM)
                step(at, _REVIEWED, new)
                level = new
        elif rnd() < 0.5:  # no figure: medium and high reports are reviewed too
            at = gen.between(tr + HOUR, tr + 12 * HOUR)
            if at < open_until - 10 * MINUTE:
                step(at, _REVIEWED, level if rnd() < 0.8 else _HIGH)
        # SG07: a 24-hour review of a child still missing ([S7], local) raises the grade
        if level in LOW_RISK and open_until > tr + LONG_MISSING_DEADLINE + HOUR:
            at = self.when(tr + 18 * HOUR, tr + LONG_MISSING_DEADLINE, late_max=DAY)
            if at is not None and at < open_until - 10 * MINUTE:
                step(at, _REVIEWED, _MEDIUM if rnd() < 0.8 else _HIGH)
        if open_until > tr + 73 * HOUR and rnd() < 0.5:  # [S7] the 72-hour meeting
            at = gen.between(tr + 72 * HOUR, tr + 72 * HOUR + 50 * MINUTE)
            step(at, _REVIEWED, _HIGH)
        # SG05: repeat missing, children's social care within 24 h ([S6] R4: no national N)
        kid.reports.append(tr)
        lo = tr - LOOKBACK
        referred = False
        recent = len(kid.reports) - bisect.bisect_left(kid.reports, lo)
        if recent >= REPEAT_EPISODES and (kid.last_repeat is None or kid.last_repeat < lo):
            kid.last_repeat = tr
            referred = True
            at = self.when(tr, tr + REPEAT_REFERRAL_DEADLINE)
            if at is not None:
                link = None if rnd() < P_UNLINKED_REFERRAL else episode_id
                self.referral(at, kid, _CSC, None, link)
        # SG08: domestic abuse in the 30 days before a missing report is a cumulative risk
        if not referred and kid.da_times and kid.da_times[-1] >= tr - CUMULATIVE_WINDOW:
            at = self.when(tr, tr + CUMULATIVE_DEADLINE)
            if at is not None:
                link = None if rnd() < P_UNLINKED_REFERRAL else episode_id
                self.referral(at, kid, _CSC, None, link)
        if rnd() < P_SCHOOL_TOLD_OF_MISSING:
            self.referral(gen.between(tr + HOUR, tr + 2 * DAY), kid, _SCHOOL, None, episode_id)
        if ret is None:
            return
        step(ret, _RETURNED)
        # SG06: return home interview within 72 h [S5]
        at = self.when(ret, ret + RETURN_INTERVIEW_DEADLINE, late_max=10 * DAY)
        if at is not None:
            step(at, _INTERVIEW)


_TIMELINE_ORDER = itemgetter(0, 1, 2)


# ---- The oracle: which candidates the rules certainly raise ----------------------------------
#
# Per child, from every row of the household (the child's whole history), each rule of SPEC
# section 4 as docs/semantics.md reads it. A candidate is planted only when its outcome is
# certain: no relevant event within MARGIN of a boundary, a resolution that every reading
# counts, within RESOLVE_HORIZON of the deadline.

_Ref = tuple[Millis, str | None, str | None]
"""(time, incident_id, episode_id) of a referral to one agency."""
_Step = tuple[Millis, MissingStatus, RiskLevel | None]


class _Ep:
    __slots__ = ("episode_id", "level", "reported", "steps")

    def __init__(self, episode_id: str, reported: Millis, level: RiskLevel) -> None:
        self.episode_id = episode_id
        self.reported = reported  # the first REPORTED step (the script writes exactly one)
        self.level = level  # its grade
        self.steps: list[_Step] = []


class _Facts:
    __slots__ = ("child_id", "csc", "da", "episodes", "looked_after", "school")

    def __init__(self, child_id: str, looked_after: bool) -> None:
        self.child_id = child_id
        self.looked_after = looked_after  # the same on every step of the child's episodes
        self.csc: list[_Ref] = []
        self.school: list[_Ref] = []
        self.da: list[tuple[Millis, str, bool, int | None, DashRisk | None]] = []
        self.episodes: dict[str, _Ep] = {}


_PlantedRow = tuple[RuleId, str, str, Severity, AlertStatus, str, Millis]
"""A :class:`Planted`'s fields, as the oracle makes them (a tuple is cheaper)."""
_AMBIGUOUS = "ambiguous"
_MET = "met"
_RAISED, _RESOLVED = AlertStatus.RAISED, AlertStatus.RESOLVED
_SEV_HIGH, _SEV_MEDIUM = Severity.HIGH, Severity.MEDIUM


def _oracle(rows: list[tuple[Any, ...]], kids: list[_Kid], gen: _Generator) -> list[_PlantedRow]:
    """Every missed opportunity of the household that the rules certainly raise."""
    facts = [_Facts(k.child_id, k.looked_after) for k in kids]
    index = {k.child_id: i for i, k in enumerate(kids)}
    for row in rows:  # sorted by time, so every list below is sorted too
        kind = row[1]
        if kind == _REF:
            agency = row[4]
            if agency is _CSC:
                facts[index[row[3]]].csc.append((row[0], row[5], row[6]))
            elif agency is _SCHOOL:
                facts[index[row[3]]].school.append((row[0], row[5], row[6]))
        elif kind == _MIS:
            t, _, _, epid, child, status, risk = row[:7]
            f = facts[index[child]]
            ep = f.episodes.get(epid)
            if ep is None:  # the REPORTED step comes first: later steps are later in time
                ep = f.episodes[epid] = _Ep(epid, t, risk)
            ep.steps.append((t, status, risk))
        elif row[4] is _DA:
            t, iid, dash = row[0], row[3], row[5]
            for i, _, present, age in row[6]:
                facts[i].da.append((t, iid, present, age, dash))
    out: list[_PlantedRow] = []
    for f in facts:
        if f.da:
            _sg01_sg02(f, gen, out)
        if f.episodes:
            report_times = [ep.reported for ep in f.episodes.values()]  # in report order
            _episode_rules(f, report_times, out)
            _sg05(f, report_times, out)
            if f.da:
                _sg08(f, report_times, out)
    return out


def _status(resolver: Millis | None, due: Millis) -> str | AlertStatus:
    if resolver is None:
        return _RAISED
    if resolver - due > RESOLVE_HORIZON:
        return _AMBIGUOUS
    return _RESOLVED


def _count_in(times: list[Millis], lo: Millis, hi: Millis) -> int:
    """How many of the sorted ``times`` are in [lo, hi]."""
    return bisect.bisect_right(times, hi) - bisect.bisect_left(times, lo)


def _referral_outcome(refs: list[_Ref], t0: Millis, due: Millis, incident_id: str) -> Any:
    """SG01/SG02: met by a referral carrying the incident by ``due`` or made in [t0, due];
    resolved after ``due`` by one carrying this incident_id or none (docs/semantics.md)."""
    resolver = None
    for t, iid, _ in refs:
        if -MARGIN <= t - t0 <= MARGIN or -MARGIN <= t - due <= MARGIN:
            return _AMBIGUOUS
        if t <= due:
            if iid == incident_id or t >= t0:
                return _MET
        elif resolver is None and (iid is None or iid == incident_id):
            resolver = t
    return _status(resolver, due)


def _sg01_sg02(f: _Facts, gen: _Generator, out: list[_PlantedRow]) -> None:
    for t0, iid, present, age, dash in f.da:
        due = t0 + DA_REFERRAL_DEADLINE
        st = _referral_outcome(f.csc, t0, due, iid)
        if st is _RAISED or st is _RESOLVED:
            sev = _SEV_HIGH if present or dash is DashRisk.HIGH else _SEV_MEDIUM
            where = "present" if present else "not_present"
            what = "referred_late" if st is _RESOLVED else "not_referred"
            out.append((RuleId.SG01, f.child_id, iid, sev, st, f"{where}_{what}", due))
        if age is None or 4 <= age <= 17:
            due = gen.encompass_due(t0)
            st = _referral_outcome(f.school, t0, due, iid)
            if st is _RAISED or st is _RESOLVED:
                what = "school_told_late" if st is _RESOLVED else "school_not_told"
                if age is None:
                    what += "_age_unknown"
                out.append((RuleId.SG02, f.child_id, iid, _SEV_MEDIUM, st, what, due))


def _episode_rules(f: _Facts, report_times: list[Millis], out: list[_PlantedRow]) -> None:
    """SG03, SG04, SG06, SG07: the rules of one episode."""
    lac = f.looked_after
    for ep in f.episodes.values():
        if ep.level in LOW_RISK:
            _sg03(f, ep, out)
            if lac and ep.level is not _LOW:
                _sg04(f, ep, report_times, out)
        _sg06(f, ep, report_times, out)
        _sg07(f, ep, out)


def _sg03(f: _Facts, ep: _Ep, out: list[_PlantedRow]) -> None:
    """Low at report, no review in [reported, due] and no return before due."""
    tr = ep.reported
    due = tr + REVIEW_DEADLINE
    resolver = None
    for t, status, _ in ep.steps[1:]:
        if status is not _REVIEWED and status is not _RETURNED:
            continue
        if -MARGIN <= t - tr <= MARGIN or -MARGIN <= t - due <= MARGIN:
            return
        if status is _REVIEWED:
            if t <= due:
                return
            if resolver is None:
                resolver = t
        elif t < due:
            return
    st = _status(resolver, due)
    if st is _RAISED or st is _RESOLVED:
        sev = _SEV_HIGH if f.looked_after else _SEV_MEDIUM
        what = "reviewed_late" if st is _RESOLVED else "never_reviewed"
        out.append((RuleId.SG03, f.child_id, ep.episode_id, sev, st, what, due))


def _sg04(f: _Facts, ep: _Ep, report_times: list[Millis], out: list[_PlantedRow]) -> None:
    """Looked-after, graded ABSENT or NO_APPARENT_RISK, with another report or a domestic-abuse
    incident in [report - 90d, report]. Only a cause clear of the 90-day edge is relied on."""
    tr = ep.reported
    lo = tr - LOOKBACK + MARGIN
    repeat = _count_in(report_times, lo, tr) > 1  # this episode's own report is one
    da = any(lo <= d[0] <= tr for d in f.da)
    if not (repeat or da):
        return
    resolver = None
    for t, status, level in ep.steps[1:]:
        if status is not _INTERVIEW and status is not _RETURNED and level in _RAISED_GRADES:
            resolver = t
            break
    st = _status(resolver, tr)
    if st is _RAISED or st is _RESOLVED:
        what = f"lac_graded_{ep.level.value.lower()}_after_{'da' if da else 'repeat'}"
        if st is _RESOLVED:
            what += "_regraded"
        out.append((RuleId.SG04, f.child_id, ep.episode_id, _SEV_HIGH, st, what, tr))


def _sg06(f: _Facts, ep: _Ep, report_times: list[Millis], out: list[_PlantedRow]) -> None:
    """Returned, and no return interview in [returned, returned + 72h]."""
    ret = next((t for t, s, _ in ep.steps if s is _RETURNED), None)
    if ret is None:
        return
    due = ret + RETURN_INTERVIEW_DEADLINE
    resolver = None
    for t, status, _ in ep.steps:
        if status is not _INTERVIEW:
            continue
        if -MARGIN <= t - ret <= MARGIN or -MARGIN <= t - due <= MARGIN:
            return
        if ret <= t <= due:
            return
        if t > due and resolver is None:
            resolver = t
    st = _status(resolver, due)
    if st is not _RAISED and st is not _RESOLVED:
        return
    if f.looked_after:
        sev = _SEV_HIGH
    else:  # 2+ other episodes reported in [return - 90d, return]; the window's edges must be clear
        lo = ret - LOOKBACK
        if _count_in(report_times, lo - MARGIN, lo + MARGIN) or _count_in(
            report_times, ret - MARGIN, ret + MARGIN
        ):
            return
        others = _count_in(report_times, lo, ret) - 1  # minus this episode (reported < ret)
        sev = _SEV_HIGH if others >= RETURN_REPEAT_EPISODES else _SEV_MEDIUM
    what = "interview_late" if st is _RESOLVED else "no_interview"
    out.append((RuleId.SG06, f.child_id, ep.episode_id, sev, st, what, due))


def _sg07(f: _Facts, ep: _Ep, out: list[_PlantedRow]) -> None:
    """Still missing at reported + 24h (no return at or before it) and low risk then."""
    due = ep.reported + LONG_MISSING_DEADLINE
    risk: RiskLevel | None = None
    resolver = None
    graded: set[Millis] = set()
    for t, status, level in ep.steps:
        if status is _INTERVIEW:
            continue
        if -MARGIN <= t - due <= MARGIN:
            return
        if status is _RETURNED:
            if t <= due:
                return
            if resolver is None:
                resolver = t
            continue
        if t in graded:  # two gradings at one instant: a tie-break would decide
            return
        graded.add(t)
        if t <= due:
            risk = level
        elif resolver is None and level in _RAISED_GRADES:
            resolver = t
    if risk not in LOW_RISK:
        return
    st = _status(resolver, due)
    if st is _RAISED or st is _RESOLVED:
        what = "long_missing_resolved" if st is _RESOLVED else "still_missing"
        out.append((RuleId.SG07, f.child_id, ep.episode_id, _SEV_HIGH, st, what, due))


def _window_outcome(
    refs: list[_Ref], lo: Millis, due: Millis, trigger_is_incident: bool, trigger: str
) -> Any:
    """SG05/SG08: met by a CSC referral in [lo, due]. SPEC says only "the referral" resolves,
    so a status is planted only when every reading (any CSC referral; one carrying the trigger
    or no id; one carrying the trigger or no id of the trigger's kind; one carrying the
    trigger) agrees on whether a resolving referral exists, and on it being in the horizon."""
    first: list[Millis | None] = [None, None, None, None]
    for t, iid, epid in refs:
        if -MARGIN <= t - lo <= MARGIN or -MARGIN <= t - due <= MARGIN:
            return _AMBIGUOUS
        if t < lo:
            continue
        if t <= due:
            return _MET
        own = iid if trigger_is_incident else epid
        readings = (
            True,
            own == trigger or (iid is None and epid is None),
            own == trigger or own is None,
            own == trigger,
        )
        for k, ok in enumerate(readings):
            if ok and first[k] is None:
                first[k] = t
    if len({x is None for x in first}) > 1:
        return _AMBIGUOUS
    if first[0] is not None and any(x is not None and x - due > RESOLVE_HORIZON for x in first):
        return _AMBIGUOUS
    return _status(first[0], due)


def _sg05(f: _Facts, report_times: list[Millis], out: list[_PlantedRow]) -> None:
    """Obligations open in report order when 3+ episodes are reported in [report - 90d, report]
    and none opened in the 90 days before; met by a CSC referral in [report - 90d, due]."""
    times = report_times
    if len(times) < REPEAT_EPISODES:
        return
    # reports too close to each other, or to 90 days apart, make the chain ambiguous
    for k, t in enumerate(times):
        if k and t - times[k - 1] <= MARGIN:
            return
        if _count_in(times, t + LOOKBACK - MARGIN, t + LOOKBACK + MARGIN):
            return
    ids = list(f.episodes)
    last_opened: Millis | None = None
    for k, tr in enumerate(times):
        lo = tr - LOOKBACK
        if k + 1 - bisect.bisect_left(times, lo) < REPEAT_EPISODES:
            continue
        if last_opened is not None and last_opened >= lo:
            continue
        last_opened = tr
        due = tr + REPEAT_REFERRAL_DEADLINE
        st = _window_outcome(f.csc, lo, due, False, ids[k])
        if st is _RAISED or st is _RESOLVED:
            what = "referred_late" if st is _RESOLVED else "not_referred"
            out.append(
                (RuleId.SG05, f.child_id, ids[k], _SEV_HIGH, st, f"repeat_missing_{what}", due)
            )


def _sg08(f: _Facts, report_times: list[Millis], out: list[_PlantedRow]) -> None:
    """A DA incident or a report (the later event) with one of the other kind in the 30 days
    before it: no CSC referral in [the first such earlier event, later + 24h]."""
    da_times = [d[0] for d in f.da]
    da_ids = [d[1] for d in f.da]
    ep_ids = list(f.episodes)
    for later_times, later_ids, other, is_incident, label in (
        (da_times, da_ids, report_times, True, "da_after_missing"),
        (report_times, ep_ids, da_times, False, "missing_after_da"),
    ):
        for later, trigger in zip(later_times, later_ids, strict=True):
            lo = later - CUMULATIVE_WINDOW
            k = bisect.bisect_left(other, lo - MARGIN)
            if k >= len(other) or other[k] > later + MARGIN:
                continue  # nothing of the other kind anywhere near the window
            if other[k] <= lo + MARGIN or _count_in(other, later - MARGIN, later + MARGIN):
                continue  # which event is "earlier", or whether there is one, is at an edge
            due = later + CUMULATIVE_DEADLINE
            st = _window_outcome(f.csc, other[k], due, is_incident, trigger)
            if st is _RAISED or st is _RESOLVED:
                what = "referred_late" if st is _RESOLVED else "not_referred"
                out.append(
                    (RuleId.SG08, f.child_id, trigger, _SEV_HIGH, st, f"{label}_{what}", due)
                )
