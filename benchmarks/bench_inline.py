"""The inline backtest benchmark: events/s and peak memory as history grows.

    .venv/bin/python benchmarks/bench_inline.py [--events 1000000] [--years 1,2,4]

Generates worlds of the same children with growing history (``streams.generate``, about
:data:`~streams.generate.EVENTS_PER_CHILD_YEAR` events per child per year; the longest has at
least ``--events`` events) into a temporary directory, then runs ``safeguarding backtest
--engine inline`` (:func:`streams.backtest.backtest_inline`) over each in a fresh child process,
one at a time, so that each run's peak resident memory is its own. Two ceilings are measured on
the longest world in the same way: reading its lines alone, and reading and decoding them
(:func:`streams.history.ordered_events`) with no detection.

The table has, per run: events, seconds (the backtest's own timing: read, decode, detect, write
the alerts; not the child's start-up), events/s, events per second of the child's CPU time (on
a shared machine, less disturbed by other processes than the wall clock), peak RSS in MB (the
child's ``VmHWM``), and alerts written. Memory that stays flat as history grows shows as the
same peak RSS for 1, 2 and 4 years. Speed is printed, never asserted: it depends on the machine
and on what else runs.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
Measure = dict[str, Any]
"""One child process's measurement: events, seconds, rss_mb (and alerts for a backtest)."""
sys.path.insert(0, str(ROOT))


# -- child processes: one measurement each, printed as one JSON line -----------------------------


def _peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to the address space made by
    ``exec``; ``ru_maxrss`` (the fallback off Linux) also counts the parent's peak at the fork."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child_backtest(world: str, out: str, core: str) -> Measure:
    from streams.backtest import backtest_inline

    cpu = time.process_time()
    summary = backtest_inline([world], out, core=core)
    return {
        "events": summary.events,
        "seconds": summary.seconds,
        "cpu": time.process_time() - cpu,
        "alerts": sum(summary.alerts.values()),
        "invalid": summary.invalid,
        "rss_mb": _peak_rss_mb(),
    }


def _child_decode(world: str) -> Measure:
    from streams.history import ordered_events

    started, cpu = time.perf_counter(), time.process_time()
    n = sum(1 for _ in ordered_events([world], lambda record: None))
    return {
        "events": n,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "rss_mb": _peak_rss_mb(),
    }


def _child_lines(world: str) -> Measure:
    started, cpu = time.perf_counter(), time.process_time()
    with open(world, "rb") as file:
        n = sum(1 for line in file if line.strip())
    return {
        "events": n,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "rss_mb": _peak_rss_mb(),
    }


def _run_child(*args: str) -> Measure:
    """Run this script as a fresh child process for one measurement."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    result: Measure = orjson.loads(done.stdout.splitlines()[-1])
    return result


# -- the benchmark --------------------------------------------------------------------------------


def _row(label: str, r: Measure) -> str:
    events, seconds, cpu = int(r["events"]), float(r["seconds"]), float(r["cpu"])
    rate = events / seconds if seconds else 0.0
    cpu_rate = events / cpu if cpu else 0.0
    alerts = f"{r['alerts']:>10,}" if "alerts" in r else f"{'':>10}"
    return (
        f"{label:<24} {events:>11,} {seconds:>9.1f} {rate:>10,.0f} {cpu_rate:>10,.0f} "
        f"{float(r['rss_mb']):>9.0f} {alerts}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the longest world")
    parser.add_argument("--years", default="1,2,4", help="history lengths, in years")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this directory")
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the Python reference core on the longest world (default: yes)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:  # one measurement, in a fresh process
        kind, *rest = args.child
        runs: dict[str, Callable[..., Measure]] = {
            "backtest": _child_backtest,
            "decode": _child_decode,
            "lines": _child_lines,
        }
        run = runs[kind]
        print(orjson.dumps(run(*rest)).decode())
        return 0

    from streams.generate import EVENTS_PER_CHILD_YEAR

    years = sorted(int(y) for y in args.years.split(","))
    # 3% more children than the mean rate asks for, so that the longest world reaches --events.
    children = math.ceil(args.events / (EVENTS_PER_CHILD_YEAR * years[-1]) * 1.03)
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        else:
            directory = args.keep
            directory.mkdir(parents=True, exist_ok=True)
        print(f"{children:,} children; worlds in {directory}", flush=True)
        return _measure(children, years, args.seed, directory, args.reference)


def _measure(children: int, years: list[int], seed: int, directory: Path, reference: bool) -> int:
    from streams.domain.native import inline_engine
    from streams.generate import run_generate

    core = inline_engine()
    print(f"detection core: {core}", flush=True)

    worlds: list[tuple[int, Path]] = []
    for y in years:
        path = directory / f"world-{children}-{y}y-seed{seed}.jsonl"
        if not path.exists():
            started = time.perf_counter()
            summary = run_generate(children, 365 * y, seed, path)
            print(
                f"generated {y} year(s): {summary['events']:,} events "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        worlds.append((y, path))

    rows: list[str] = []
    for y, path in worlds:
        out = str(directory / f"alerts-{y}y.jsonl")
        result = _run_child("backtest", str(path), out, core)
        rows.append(_row(f"backtest, {core}, {y} year{'s' if y > 1 else ''}", result))
        print(rows[-1], flush=True)
    longest = str(worlds[-1][1])
    if reference and core != "python":
        y = years[-1]
        out = str(directory / f"alerts-{y}y-python.jsonl")
        result = _run_child("backtest", longest, out, "python")
        rows.append(_row(f"backtest, python, {y} year{'s' if y > 1 else ''}", result))
        print(rows[-1], flush=True)
    rows.append(_row("ceiling: read + decode", _run_child("decode", longest)))
    print(rows[-1], flush=True)
    rows.append(_row("ceiling: read lines", _run_child("lines", longest)))
    print(rows[-1], flush=True)

    header = (
        f"{'':<24} {'events':>11} {'seconds':>9} {'events/s':>10} {'per cpu s':>10} "
        f"{'peak MB':>9} {'alerts':>10}"
    )
    print()
    print(f"inline backtest, {children:,} children, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs (one used)")  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
