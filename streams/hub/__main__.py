"""Developer entry points for the hub (``safeguarding run`` serves the real one).

- ``python -m streams.hub --demo [--port 6066]``: the hub on 127.0.0.1 with made-up alerts and an
  in-memory loop standing in for the ``alert-actions`` topic;
- ``python -m streams.hub serve [--bootstrap B] [--topic-prefix P] [--port N]``: the real hub on
  Kafka (what ``safeguarding hub`` runs: :func:`streams.hub.serve.main_hub`); options override
  the settings' environment variables;
- ``python -m streams.hub hash-password``: a ``password_hash`` for a users file (reads the
  password from the terminal, or from standard input when piped);
- ``python -m streams.hub new-token --user NAME``: a bearer token and its users-file entry.

This is an edge: it reads ``SAFEGUARDING_HUB_PASSWORD`` and ``SAFEGUARDING_HUB_USERS`` (a users
file path) from the environment. ``safeguarding run`` should read them through the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from streams.domain.alerts import AlertAction
from streams.hub.app import DEFAULT_HOST, DEFAULT_PORT, create_app, start_hub, wall_clock
from streams.hub.auth import hash_password, load_users, new_token, token_digest
from streams.hub.demo import run_demo_feed
from streams.hub.feed import HubFeed
from streams.hub.serve import login_banner, main_hub
from streams.hub.state import HubState
from streams.settings import Settings

__all__ = ["login_banner", "main"]


async def _demo(host: str, port: int, every_s: float) -> None:
    users_file = os.environ.get("SAFEGUARDING_HUB_USERS")
    users, generated = load_users(
        users_file=Path(users_file) if users_file else None,
        hub_password=os.environ.get("SAFEGUARDING_HUB_PASSWORD"),
    )
    state = HubState()
    feed = HubFeed(state)
    loop = asyncio.get_running_loop()

    async def publish(action: AlertAction) -> None:
        # Stands in for the round trip through the alert-actions topic.
        loop.call_later(0.2, feed.apply_action, action)

    app = create_app(state, publish, users, feed=feed)
    runner = await start_hub(app, host, port)
    print(login_banner(f"http://{host}:{port}/", "hub", generated), flush=True)
    task = asyncio.create_task(run_demo_feed(feed, wall_clock, every_s))
    try:
        await asyncio.Event().wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.hub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", choices=["demo", "serve", "hash-password", "new-token"]
    )
    parser.add_argument("--demo", action="store_true", help="same as the demo command")
    parser.add_argument("--host", help=f"default {DEFAULT_HOST} (serve: SAFEGUARDING_HUB_HOST)")
    parser.add_argument(
        "--port", type=int, help=f"default {DEFAULT_PORT} (serve: SAFEGUARDING_HUB_PORT; 0: any)"
    )
    parser.add_argument("--bootstrap", help="serve: Kafka bootstrap (KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--topic-prefix", help="serve: topic prefix (SAFEGUARDING_TOPIC_PREFIX)")
    parser.add_argument(
        "--show-replay", action="store_true", help="serve: also show alerts with mode replay"
    )
    parser.add_argument("--every", type=float, default=30.0, help="seconds between demo alerts")
    parser.add_argument("--user", help="for new-token: the user the token acts as")
    args = parser.parse_args(argv)

    if args.command == "hash-password":
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        if not password:
            print("hash-password: empty password", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    if args.command == "new-token":
        if not args.user:
            print("new-token: --user NAME is required", file=sys.stderr)
            return 2
        token = new_token()
        print(f"token: {token}")
        print(
            "users file entry:",
            json.dumps({"user": args.user, "token_sha256": token_digest(token)}),
        )
        return 0
    if args.command == "serve":
        settings = Settings.from_env(
            bootstrap=args.bootstrap,
            topic_prefix=args.topic_prefix,
            hub_host=args.host,
            hub_port=args.port,
        )
        return main_hub(settings, show_replay=True if args.show_replay else None)
    if args.command == "demo" or args.demo:
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
        host = args.host or DEFAULT_HOST
        port = DEFAULT_PORT if args.port is None else args.port
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_demo(host, port, args.every))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
