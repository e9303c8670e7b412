"""The interim `safeguarding run` (until the live pipeline lands): generate a history, run the
inline backtest over it, print the alerts and the quality report."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import orjson

from streams import codec
from streams.backtest import backtest_inline
from streams.cli_output import err, out, print_alert, print_backtest_summary
from streams.generate import run_generate


def run_inline_demo(children: int, days: int, seed: int) -> int:
    with tempfile.TemporaryDirectory(prefix="safeguarding-run-") as tmp:
        world = Path(tmp) / "world.jsonl"
        alerts_path = Path(tmp) / "alerts.jsonl"
        err.print(
            f"[bold]safeguarding run[/]: a synthetic history of {children} children "
            f"over {days} days"
        )
        run_generate(children, days, seed, world)
        summary = backtest_inline([world], alerts_path)
        alerts = [codec.alert_from_dict(orjson.loads(line)) for line in alerts_path.open("rb")]
        alerts.sort(key=lambda a: a.raised_at)
        pretty = out.is_terminal
        for alert in alerts:
            if alert.status == "WITHDRAWN":
                continue
            if pretty:
                print_alert(alert)
            else:
                sys.stdout.buffer.write(orjson.dumps(codec.alert_to_dict(alert)) + b"\n")
        print_backtest_summary(summary, alerts_path, None)
        try:
            from streams.report import render_text, run_report

            events_end = summary.until
            if events_end is not None:
                start = events_end - 30 * 24 * 3600 * 1000
                render_text(run_report([world], start, events_end), err)
        except ImportError:
            pass
    return 0
