"""`safeguarding ...`: the command line of SPEC section 7 (stable; scripts depend on it).

Each subcommand parses its options here, builds plain values, and calls one function of the
package. Errors a user can fix print one line on stderr and exit 2; invalid input records are
reported, never fatal.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.domain.time import Millis, parse_rfc3339
from streams.errors import ConfigurationError, SafeguardingError
from streams.settings import Settings

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
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give the files in it")
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


def _kafka_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="default: KAFKA_BOOTSTRAP_SERVERS")
    p.add_argument("--topic-prefix", metavar="P", help="default: safeguarding.")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return Settings.from_env(
        None,
        bootstrap=getattr(args, "bootstrap", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        partitions=getattr(args, "partitions", None),
        **extra,
    )


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
    run.add_argument("--partitions", type=_positive, help="default: 4")

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
    gen.add_argument(
        "--truth",
        type=Path,
        metavar="FILE",
        help="the planted missed opportunities; default: FILE without .jsonl or .gz, then "
        ".planted.jsonl",
    )
    gen.add_argument("--start", type=_timestamp, metavar="TS", help="default: 2024-01-01")

    report = sub.add_parser("report", help="quality measures and per-child grades for a period")
    report.add_argument("files", nargs="+", type=_existing_file, metavar="FILE")
    report.add_argument("--from", dest="start", required=True, metavar="DATE")
    report.add_argument("--to", dest="end", required=True, metavar="DATE")
    report.add_argument("--json", action="store_true")

    hub = sub.add_parser("hub", help="the safeguarding hub page and API against --bootstrap")
    _kafka_options(hub)

    broker = sub.add_parser("broker", help="run the embedded Kafka-protocol broker")
    broker.add_argument("--port", type=int)

    worker = sub.add_parser("worker", help="a Faust worker against --bootstrap")
    _kafka_options(worker)
    worker.add_argument("--mode", choices=["live", "replay"], help="default: live")
    worker.add_argument("--partitions", type=_positive, help="default: 4")

    replay = sub.add_parser("replay", help="produce historic events in event-time order")
    replay.add_argument("files", nargs="+", type=_existing_file, metavar="FILE")
    replay.add_argument("--speed", default="max", help="max, or a factor like 60x")
    replay.add_argument("--until", type=_timestamp, metavar="TS")
    replay.add_argument("--dead-letters", type=Path, metavar="FILE")
    replay.add_argument("--partitions", type=_positive, help="when creating topics; default 4")
    _kafka_options(replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in _WRITES | {"report"}:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        handler = _HANDLERS[args.command]
        return handler(args)
    except SafeguardingError as exc:
        print(f"safeguarding {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file that cannot be read or written: the user can fix it
        where = f": {exc.filename}" if exc.filename else ""
        print(f"safeguarding {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command in _WRITES:
            print(f"safeguarding {args.command}: interrupted; no file was written", file=sys.stderr)
        return 130


_WRITES = frozenset({"backtest", "generate"})
"""Commands whose output files are replaced only when they finish (:mod:`streams.files`)."""


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so a `kill` cleans up as Ctrl-C does (temporary files)


def _cmd_backtest(args: argparse.Namespace) -> int:
    from streams.cli_output import print_backtest_summary, progress_bar
    from streams.files import check_outputs
    from streams.history import total_size

    check_outputs(args.files, {"--out": args.out, "--dead-letters": args.dead_letters})
    with progress_bar(total_size(args.files), "backtest", quiet=args.quiet) as advance:
        if args.engine == "kafka":
            from streams.backtest_kafka import backtest_kafka

            summary = backtest_kafka(
                args.files,
                args.out,
                until=args.until,
                dead_letters=args.dead_letters,
                bootstrap=args.bootstrap,
                on_progress=advance,
            )
        else:
            from streams.backtest import backtest_inline
            from streams.domain.native import inline_engine

            summary = backtest_inline(
                args.files,
                args.out,
                until=args.until,
                dead_letters=args.dead_letters,
                on_progress=advance,
                on_restart=None if args.quiet else lambda msg: print(msg, file=sys.stderr),
                core=inline_engine(Settings.from_env().core),
            )
    if not args.quiet:
        print_backtest_summary(summary, args.out, args.dead_letters)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from streams.cli_output import print_mapping, progress_bar
    from streams.files import check_outputs
    from streams.generate import run_generate, truth_path_for

    if args.out.name.endswith(".avro"):
        raise ConfigurationError(
            f"--out {args.out}: generate writes JSON Lines; name it .jsonl, or .jsonl.gz to gzip it"
        )
    check_outputs([], {"--out": args.out, "--truth": args.truth or truth_path_for(args.out)})
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
    from streams.cli_output import err, print_damaged, progress_bar
    from streams.domain.native import inline_engine
    from streams.history import InvalidRecord, total_size

    invalid: list[int] = [0]
    unread: list[str] = []

    def count(record: InvalidRecord) -> None:
        invalid[0] += 1
        if record.damage:
            unread.append(record.damage)

    with progress_bar(total_size(args.files), "report", quiet=False) as advance:
        result = run_report(
            args.files,
            start,
            end,
            on_invalid=count,
            on_progress=advance,
            on_restart=lambda msg: print(msg, file=sys.stderr),
            core=inline_engine(Settings.from_env().core),
        )
    if invalid[0]:
        err.print(
            f"{invalid[0]:,} invalid {'record was' if invalid[0] == 1 else 'records were'} left "
            "out (`safeguarding backtest FILE... "
            "--dead-letters DL.jsonl` lists them with their reasons)",
            markup=False,
            highlight=False,
        )
    print_damaged(unread)
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
    from streams.run import run_embedded

    return run_embedded(_settings(args), children=args.children, days=args.days, seed=args.seed)


def _cmd_hub(args: argparse.Namespace) -> int:
    from streams.hub.serve import main_hub

    return main_hub(_settings(args))


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.run import run_worker

    return run_worker(_settings(args, mode=args.mode))


def _cmd_replay(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from streams.cli_output import print_mapping, progress_bar
    from streams.history import total_size
    from streams.replay import parse_speed, replay

    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        print(f"safeguarding replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from streams.files import check_outputs

    check_outputs(args.files, {"--dead-letters": args.dead_letters})
    settings = _settings(args, mode="replay")
    dl = args.dead_letters.open("wb") if args.dead_letters else None
    try:
        with progress_bar(total_size(args.files), "replay", quiet=False) as advance:
            summary = asyncio.run(
                replay(
                    args.files,
                    settings,
                    speed=speed,
                    until=args.until,
                    on_invalid=(lambda r: dl.write(orjson.dumps(r.to_dict()) + b"\n"))
                    if dl
                    else None,
                    on_progress=advance,
                )
            )
    finally:
        if dl:
            dl.close()
    print_mapping(
        "replayed",
        {
            "events": summary.events,
            "invalid (to dead-letters)": summary.invalid,
            "topic prefix": settings.topic_prefix,
            "seconds": f"{summary.seconds:.1f}",
        },
    )
    return 0


_HANDLERS = {
    "backtest": _cmd_backtest,
    "generate": _cmd_generate,
    "report": _cmd_report,
    "broker": _cmd_broker,
    "run": _cmd_run,
    "hub": _cmd_hub,
    "worker": _cmd_worker,
    "replay": _cmd_replay,
}


if __name__ == "__main__":
    raise SystemExit(main())
