"""`safeguarding ...`: the command line of SPEC section 7 (stable; scripts depend on it).

Each subcommand parses its options here, builds plain values, and calls one function of the
package. Errors a user can fix print one line on stderr and exit 2; invalid input records are
reported, never fatal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.domain.time import Millis, parse_rfc3339
from streams.errors import SafeguardingError

EXIT_USAGE = 2


def _timestamp(text: str) -> Millis:
    """RFC 3339 with an offset, or a bare date meaning midnight UTC at its start."""
    try:
        if len(text) == 10:
            return parse_rfc3339(text + "T00:00:00Z")
        return parse_rfc3339(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 timestamp with an offset (2024-06-01T00:00:00Z) or a date "
            f"(2024-06-01), received {text!r}"
        ) from exc


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, received {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safeguarding",
        description="Detect missed child-safeguarding opportunities in police and partner events.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the embedded default: broker, worker, hub and a live feed")
    run.add_argument("--children", type=_positive, default=300, help="size of the synthetic feed")
    run.add_argument("--days", type=_positive, default=120, help="history of the synthetic feed")
    run.add_argument("--seed", type=int, default=1)

    backtest = sub.add_parser("backtest", help="detect over historic files, write final alerts")
    backtest.add_argument("files", nargs="+", type=_existing_file, metavar="FILE")
    backtest.add_argument("--out", required=True, type=Path, metavar="ALERTS.jsonl")
    backtest.add_argument("--engine", choices=["inline", "kafka"], default="inline")
    backtest.add_argument("--until", type=_timestamp, metavar="TS")
    backtest.add_argument("--dead-letters", type=Path, metavar="FILE")
    backtest.add_argument("--bootstrap", metavar="HOST:PORT")
    backtest.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    gen = sub.add_parser("generate", help="synthetic history with planted missed opportunities")
    gen.add_argument("--children", type=_positive, required=True)
    gen.add_argument("--days", type=_positive, required=True)
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True, metavar="FILE")
    gen.add_argument("--truth", type=Path, metavar="FILE", help="default: FILE.planted.jsonl")
    gen.add_argument("--start", type=_timestamp, metavar="TS", help="default: 2024-01-01")

    report = sub.add_parser("report", help="quality measures and per-child grades for a period")
    report.add_argument("files", nargs="+", type=_existing_file, metavar="FILE")
    report.add_argument("--from", dest="start", required=True, metavar="DATE")
    report.add_argument("--to", dest="end", required=True, metavar="DATE")
    report.add_argument("--json", action="store_true")

    broker = sub.add_parser("broker", help="run the embedded Kafka-protocol broker")
    broker.add_argument("--port", type=int)

    for name, text in (
        ("worker", "a Faust worker against --bootstrap / KAFKA_BOOTSTRAP_SERVERS"),
        ("replay", "produce historic events to the topics, in event-time order"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = _HANDLERS[args.command]
        return handler(args)
    except SafeguardingError as exc:
        print(f"safeguarding {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _cmd_backtest(args: argparse.Namespace) -> int:
    from streams.cli_output import print_backtest_summary, progress_bar

    if args.engine == "kafka":
        print(
            "safeguarding backtest: --engine kafka needs the live pipeline, which is not built "
            "yet; use --engine inline (the same rules, in one process)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from streams.backtest import backtest_inline
    from streams.history import total_size

    with progress_bar(total_size(args.files), "backtest", quiet=args.quiet) as advance:
        summary = backtest_inline(
            args.files,
            args.out,
            until=args.until,
            dead_letters=args.dead_letters,
            on_progress=advance,
            on_restart=None if args.quiet else lambda msg: print(msg, file=sys.stderr),
        )
    if not args.quiet:
        print_backtest_summary(summary, args.out, args.dead_letters)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from streams.cli_output import print_mapping, progress_bar
    from streams.generate import run_generate

    with progress_bar(None, "generate", quiet=False) as advance:
        summary = run_generate(
            args.children,
            args.days,
            args.seed,
            args.out,
            args.truth,
            start=args.start,
            progress=lambda done, total: advance(None, done=done, total=total),
        )
    print_mapping("generated", summary)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from streams.report import parse_date, render_text, report_to_dict, run_report

    try:
        start, end = parse_date(args.start), parse_date(args.end)
    except ValueError as exc:
        print(f"safeguarding report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if end <= start:
        print("safeguarding report: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    result = run_report(args.files, start, end)
    if args.json:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(report_to_dict(result), option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    else:
        from rich.console import Console

        render_text(result, Console())
    return 0


def _cmd_broker(args: argparse.Namespace) -> int:
    from streams.broker import main_broker

    return main_broker(args.port)


def _cmd_run(args: argparse.Namespace) -> int:
    from streams.demo import run_inline_demo

    return run_inline_demo(args.children, args.days, args.seed)


def _not_yet(args: argparse.Namespace) -> int:
    print(
        f"safeguarding {args.command}: needs the live Kafka pipeline, which is not built yet",
        file=sys.stderr,
    )
    return EXIT_USAGE


_HANDLERS = {
    "backtest": _cmd_backtest,
    "generate": _cmd_generate,
    "report": _cmd_report,
    "broker": _cmd_broker,
    "run": _cmd_run,
    "worker": _not_yet,
    "replay": _not_yet,
}


if __name__ == "__main__":
    raise SystemExit(main())
