"""`safeguarding report FILE... --from DATE --to DATE [--json]`: SPEC section 6 for a period.

Reads the files once, in event-time order (:mod:`streams.history`), feeds every event both to
the detection core (as the inline backtest does) and to the pure
:class:`~streams.domain.quality.QualityAccumulator`, then adds every alert in its final state.

The period is ``[--from, --to)``: ``--to`` is exclusive, so ``--from 2024-01-01 --to
2024-02-01`` is the whole of January. A bare date is midnight at the start of that day in
Europe/London (the local time of the practitioners who read the report); a full RFC 3339
timestamp with an offset is taken as it is.

Like the backtest, the detector's clock ends at the greatest event time of the input: deadlines
after it are *pending*, shown apart and left out of the shares.

Use::

    >>> from streams.domain.events import HouseholdChild, Incident, IncidentType
    >>> start, end = parse_date("2024-03-01"), parse_date("2024-04-01")
    >>> kids = (HouseholdChild("C1", False, 9),)
    >>> da = Incident("e1", start + 3_600_000, "I1", IncidentType.DOMESTIC_ABUSE, None, kids)
    >>> report = report_events([da], start, end, until=end)
    >>> report.measure("da_referral_not_present").share
    0.0
    >>> report_to_dict(report)["grades"]["inadequate"]
    {'children': 0, 'share': 0.0}
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.table import Table

from streams.codec import MAX_EVENT_MILLIS, MIN_MILLIS
from streams.domain.alerts import Mode
from streams.domain.detector import wall_clock_ms
from streams.domain.events import Event
from streams.domain.native import NativeDetector, detector_for, inline_engine
from streams.domain.params import Params
from streams.domain.quality import Grade, Measure, QualityAccumulator, QualityReport
from streams.domain.summaries import local
from streams.domain.time import Millis, from_datetime, parse_rfc3339, to_rfc3339
from streams.errors import ConfigurationError
from streams.history import InvalidRecord, NotInEventTimeOrder, OnInvalid, OnProgress
from streams.history import ordered_events as _ordered_events

REPORT_ZONE = ZoneInfo("Europe/London")
"""A bare ``--from``/``--to`` date starts at midnight here."""

_DRAIN_EVERY = 50_000
"""Events between two collections of the alerts that became final (as the backtest)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str) -> Millis:
    """``YYYY-MM-DD`` (midnight starting that day, Europe/London) or RFC 3339 with an offset.

    >>> to_rfc3339(parse_date("2024-01-01")), to_rfc3339(parse_date("2024-07-01"))
    ('2024-01-01T00:00:00Z', '2024-06-30T23:00:00Z')
    >>> to_rfc3339(parse_date("2024-07-01T00:00:00Z"))
    '2024-07-01T00:00:00Z'

    Raises ``ValueError`` with a sentence saying what was expected and what was received.
    """
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            at = from_datetime(datetime.combine(day, clock_time(0), tzinfo=REPORT_ZONE))
        else:
            at = parse_rfc3339(text)
    except (ValueError, OverflowError) as exc:
        raise ValueError(
            "expected a date (2024-02-01, midnight Europe/London) or an RFC 3339 timestamp "
            f"with an offset (2024-02-01T00:00:00Z), received {text!r}"
        ) from exc
    if not MIN_MILLIS <= at <= MAX_EVENT_MILLIS:
        raise ValueError(
            f"expected a time from 1900-01-01 to 9999-12-24, as events have, received {text!r}"
        )
    return at


# --------------------------------------------------------------------------------------------
# Running


def report_events(
    events: Iterable[Event],
    start: Millis,
    end: Millis,
    *,
    params: Params | None = None,
    until: Millis | None = None,
    now: Callable[[], Millis] | None = None,
    core: str | None = None,
) -> QualityReport:
    """The report of ``[start, end)`` over ``events`` in event-time order.

    The detector's clock is advanced to ``until`` at the end (default: the greatest event
    time), as in the backtest; deadlines after it are pending. ``core`` is the detection core,
    ``"native"`` or ``"python"`` (default: the compiled one when installed, as the backtest).
    """
    acc = QualityAccumulator(start, end, params)
    detector = detector_for(
        core or inline_engine(), params, mode=Mode.REPLAY, until=until, now=now or wall_clock_ms
    )
    # The compiled core's quiet feed builds no alert versions: only the final ones are read.
    feed: Callable[[Event], object] = (
        detector.feed_quiet if isinstance(detector, NativeDetector) else detector.feed
    )
    add_event, add_alert = acc.add_event, acc.add_alert
    for n, event in enumerate(events, 1):
        feed(event)
        add_event(event)
        if n % _DRAIN_EVERY == 0:
            for alert in detector.drain_final():
                add_alert(alert)
    detector.finish(until)
    for alert in detector.drain_final():
        add_alert(alert)
    for alert in detector.alerts():
        add_alert(alert)
    return acc.result(detector.until)


def run_report(
    paths: Sequence[str | os.PathLike[str]],
    start: Millis,
    end: Millis,
    *,
    params: Params | None = None,
    until: Millis | None = None,
    on_invalid: OnInvalid | None = None,
    on_progress: OnProgress | None = None,
    on_restart: Callable[[str], None] | None = None,
    core: str | None = None,
) -> QualityReport:
    """Read ``paths`` once (twice when they are not in event-time order) and report
    ``[start, end)``.

    Invalid records never stop the run; each is passed once to ``on_invalid``, even when the
    input has to be read again sorted. ``on_restart`` hears why the input was sorted.
    """
    if end <= start:
        raise ConfigurationError(
            f"the period must end after it starts: --from {to_rfc3339(start)}, "
            f"--to {to_rfc3339(end)}"
        )
    delivered: dict[str, int] = {}
    """source -> greatest line passed to on_invalid in the first pass."""

    def first_pass(record: InvalidRecord) -> None:
        if record.line > delivered.get(record.source, 0):
            delivered[record.source] = record.line
        if on_invalid is not None:
            on_invalid(record)

    def second_pass(record: InvalidRecord) -> None:
        # Each file is read in line order in both passes: lines up to the first pass's last
        # one were already reported.
        if on_invalid is not None and record.line > delivered.get(record.source, 0):
            on_invalid(record)

    kwargs: dict[str, Any] = {"params": params, "until": until, "core": core}
    try:
        events = _ordered_events(paths, first_pass, on_progress, assume_sorted=True)
        return report_events(events, start, end, **kwargs)
    except NotInEventTimeOrder as exc:
        if on_restart is not None:
            on_restart(str(exc))
        events = _ordered_events(paths, second_pass, on_progress, assume_sorted=False)
        return report_events(events, start, end, **kwargs)


# --------------------------------------------------------------------------------------------
# Rendering


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_text(report: QualityReport, console: Console) -> None:
    """Two tables, measures and grades, then the children graded inadequate."""
    console.print(
        f"[bold]Quality of safeguarding[/] from {local(report.start)} to {local(report.end)} "
        "(UK time; the end is excluded)"
    )
    if report.input_end is not None:
        console.print(f"Input ends {local(report.input_end)}: later deadlines are pending.")
    else:
        console.print("The input has no events.")

    measures = Table(title="Measures", title_justify="left", box=box.SIMPLE_HEAD)
    measures.add_column("Measure", ratio=1, min_width=30)
    for name in ("Count", "Of", "Share", "Missed", "Late", "Pending"):
        measures.add_column(name, justify="right", no_wrap=True)
    for m in report.measures:
        measures.add_row(
            f"[dim]{m.rule_id.value}[/] {m.title}"
            + ("" if m.higher_is_better else " [dim](lower is better)[/]"),
            f"{m.numerator:,}",
            f"{m.denominator:,}",
            _share(m.share),
            f"{m.alerted:,}",
            f"{m.late:,}",
            f"{m.pending:,}" if m.pending else "",
        )
    measures.caption = (
        "Count: met the deadline (looked-after: graded absent or no apparent risk). "
        "Of: judged items (deadline passed). Missed: an alert was raised (looked-after: "
        "SG04). Late: of the missed, done after the deadline. Pending: deadline after the "
        "end of the input, not in the share."
    )
    measures.caption_justify = "left"
    console.print(measures)

    g = report.grades
    grades = Table(title="Grades", title_justify="left", box=box.SIMPLE_HEAD)
    grades.add_column("Grade")
    grades.add_column("Children", justify="right")
    grades.add_column("Share", justify="right")
    styles = {Grade.GOOD: "green", Grade.REQUIRES_IMPROVEMENT: "yellow", Grade.INADEQUATE: "red"}
    for grade in Grade:
        grades.add_row(
            f"[{styles[grade]}]{grade.value}[/]", f"{g.count(grade):,}", _share(g.share(grade))
        )
    grades.add_row("[bold]children with events in the period[/]", f"{g.children:,}", "")
    console.print(grades)
    console.print(
        "good: no alert raised in the period; requires improvement: alerts, none of them an "
        "open HIGH; inadequate: a HIGH alert raised in the period and still open at its end."
    )
    if report.inadequate_children:
        console.print("[bold]Children graded inadequate[/] (child_id):")
        console.print(", ".join(report.inadequate_children), highlight=False)


def _measure_dict(m: Measure) -> dict[str, Any]:
    return {
        "key": m.key,
        "rule_id": m.rule_id.value,
        "title": m.title,
        "numerator": m.numerator,
        "denominator": m.denominator,
        "share": m.share,
        "pending": m.pending,
        "alerted": m.alerted,
        "late": m.late,
        "higher_is_better": m.higher_is_better,
    }


def report_to_dict(report: QualityReport) -> dict[str, Any]:
    """The report for ``--json``: times as RFC 3339 UTC, shares as fractions (null when
    there is nothing to judge), grades keyed ``good``, ``requires_improvement``,
    ``inadequate``."""
    g = report.grades
    return {
        "from": to_rfc3339(report.start),
        "to": to_rfc3339(report.end),
        "input_end": None if report.input_end is None else to_rfc3339(report.input_end),
        "measures": [_measure_dict(m) for m in report.measures],
        "grades": {
            "children": g.children,
            **{
                grade.name.lower(): {"children": g.count(grade), "share": g.share(grade)}
                for grade in Grade
            },
        },
        "inadequate_children": list(report.inadequate_children),
    }
