"""What the command line shows a person: progress bars, summaries, alerts (rich, on stderr
for progress so that stdout stays clean for pipes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from streams.backtest import BacktestSummary
from streams.domain.alerts import RULE_TITLES, Alert, RuleId
from streams.domain.summaries import local

err = Console(stderr=True)
out = Console()

Advance = Callable[..., None]


@contextmanager
def progress_bar(total: int | None, label: str, *, quiet: bool) -> Iterator[Advance]:
    """A bar with rate and ETA on a terminal; nothing when quiet or not a terminal.

    The callable takes a byte count (``advance(n)``) or absolute ``done``/``total``.
    """
    if quiet or not err.is_terminal:

        def ignore(*_: Any, **__: Any) -> None:
            return None

        yield ignore
        return
    bytes_mode = total is not None
    columns: list[Any] = [TextColumn(f"[bold]{label}"), BarColumn(), TaskProgressColumn()]
    columns += [TransferSpeedColumn()] if bytes_mode else [MofNCompleteColumn()]
    columns += [TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)

        def advance(
            n: int | None = None, *, done: int | None = None, total: int | None = None
        ) -> None:
            if n is not None:
                progress.advance(task, n)
            else:
                progress.update(task, completed=done, total=total)

        yield advance


def print_backtest_summary(s: BacktestSummary, out_path: Path, dl_path: Path | None) -> None:
    table = Table(title="backtest", show_header=False, box=None)
    table.add_row("valid events", f"{s.events:,}")
    where = ""
    if s.invalid:
        where = f" -> {dl_path}" if dl_path else " (--dead-letters FILE keeps them with reasons)"
    table.add_row("invalid records", f"{s.invalid:,}{where}")
    table.add_row("duplicates ignored", f"{s.stats.duplicates:,}")
    table.add_row("late events applied", f"{s.stats.late:,}")
    if s.stats.too_late:
        table.add_row("too late (dropped)", f"{s.stats.too_late:,}")
    if s.sorted_in_memory:
        table.add_row("input order", "not in event-time order: sorted in memory")
    table.add_row("clock advanced to", local(s.until) if s.until is not None else "-")
    table.add_row("time", f"{s.seconds:.2f} s ({s.events_per_second:,.0f} events/s)")
    if s.core:
        core = "compiled (native/)" if s.core == "native" else "Python reference"
        table.add_row("detection core", core)
    err.print(table)
    print_damaged(s.unread)
    by_rule = Table(title=f"alerts -> {out_path}")
    by_rule.add_column("rule")
    by_rule.add_column("what was missed")
    for status in ("RAISED", "RESOLVED", "WITHDRAWN"):
        by_rule.add_column(status, justify="right")
    for rule in RuleId:
        counts = [s.alerts.get((rule, st), 0) for st in ("RAISED", "RESOLVED", "WITHDRAWN")]
        by_rule.add_row(rule.value, RULE_TITLES[rule], *(f"{c:,}" for c in counts))
    err.print(by_rule)


def print_damaged(damage: list[str]) -> None:
    """A warning for each file read only in part (``InvalidRecord.damage``)."""
    for text in damage:
        err.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False)


def print_mapping(title: str, mapping: Mapping[str, Any]) -> None:
    table = Table(title=title, show_header=False, box=None)
    for key, value in mapping.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    err.print(table)


_COLOURS = {"HIGH": "bold red", "MEDIUM": "yellow", "LOW": "cyan"}


def print_alert(alert: Alert, console: Console = out) -> None:
    """One alert as a practitioner reads it (pretty on a terminal)."""
    colour = _COLOURS.get(alert.severity, "white")
    console.print(
        f"[{colour}]{alert.severity:<6}[/] {alert.rule_id} {alert.status:<9} "
        f"due {local(alert.due_at)}  {RULE_TITLES[RuleId(alert.rule_id)]}\n"
        f"       {alert.summary}\n       [dim]-> {alert.recommended_action}[/]"
    )
