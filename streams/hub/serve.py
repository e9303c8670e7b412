"""The hub on Kafka: the web app, its consumer and its producer, as one thing to run.

- :func:`serve_hub` runs until an :class:`asyncio.Event` is set (``safeguarding run`` runs it
  beside the worker, tests run it in their own loop);
- :func:`main_hub` is ``safeguarding hub``: it prints the sign-in URL (and the password when it
  generated one; passwords go to the terminal only, never into a log line) and stops on Ctrl-C
  or SIGTERM.

>>> import asyncio
>>> from streams.settings import Settings
>>> async def for_a_while(settings):                     # doctest: +SKIP
...     stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
...     hub = asyncio.create_task(serve_hub(settings, stop=stop, ready=ready))
...     print(await ready)                               # http://127.0.0.1:6066/
...     stop.set()
...     await hub
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from pathlib import Path

import structlog

from streams import logs
from streams.errors import ConfigurationError, SafeguardingError
from streams.hub.app import create_app, start_hub
from streams.hub.auth import UserStore, load_users
from streams.hub.feed import HubFeed
from streams.hub.kafka import METADATA_INTERVAL_S, MISSING_TOPIC_INTERVAL_S, HubKafka
from streams.hub.state import HubState
from streams.settings import Settings

log = structlog.get_logger(__name__)

HUB_USER = "hub"
"""The user ``safeguarding run`` and ``safeguarding hub`` create when no users file is given."""


def hub_users(settings: Settings) -> tuple[UserStore, str | None]:
    """The hub's users from the settings (``SAFEGUARDING_HUB_USERS``,
    ``SAFEGUARDING_HUB_PASSWORD``), and the password generated for ``hub`` if one was.

    Raises :class:`~streams.errors.ConfigurationError` for an unreadable users file.
    """
    return load_users(
        users_file=Path(settings.hub_users_file) if settings.hub_users_file else None,
        hub_password=settings.hub_password,
        hub_user=HUB_USER,
    )


def login_banner(url: str, user: str, password: str | None) -> str:
    """What ``run`` prints so a person can sign in (the password only when it was generated).

    >>> print(login_banner("http://127.0.0.1:6066/", "hub", None))
    Safeguarding hub: http://127.0.0.1:6066/
      user:     hub
      password: (SAFEGUARDING_HUB_PASSWORD)
    """
    lines = [f"Safeguarding hub: {url}", f"  user:     {user}"]
    lines.append(
        f"  password: {password}" if password else "  password: (SAFEGUARDING_HUB_PASSWORD)"
    )
    return "\n".join(lines)


def settings_banner(settings: Settings, url: str, generated: str | None) -> str:
    """The sign-in lines for these settings: a users file's users, or the ``hub`` user."""
    if settings.hub_users_file:
        text = f"Safeguarding hub: {url}\n  users:    from {settings.hub_users_file}"
        if settings.hub_password:
            text += f"\n  and user {HUB_USER} with SAFEGUARDING_HUB_PASSWORD"
        return text
    return login_banner(url, HUB_USER, generated)


async def serve_hub(
    settings: Settings,
    *,
    stop: asyncio.Event,
    users: UserStore | None = None,
    ready: asyncio.Future[str] | None = None,
    show_replay: bool = False,
    ensure_topics: bool = True,
    metadata_interval_s: float = METADATA_INTERVAL_S,
    missing_topic_interval_s: float = MISSING_TOPIC_INTERVAL_S,
) -> None:
    """Run the hub on ``settings.hub_host:hub_port`` against ``settings.bootstrap`` (topics
    under ``settings.topic_prefix``) until ``stop`` is set, then shut everything down.

    - ``users``: who may sign in; default :func:`hub_users` (a generated password is then
      printed on stdout, the only way to learn it);
    - ``ready``: resolved with the page's URL (``http://127.0.0.1:6066/``; the real port when
      ``hub_port`` is 0) once the page is served and the consumer assigned; given the
      exception if the hub fails to start; cancelled if ``stop`` comes first;
    - ``show_replay``: also show alerts with ``mode: replay`` (a hub pointed at a replay's
      topic prefix); a live hub ignores them;
    - ``ensure_topics``: create ``alerts`` and ``alert-actions`` if missing
      (:func:`streams.hub.kafka.hub_topic_specs`); input topics are read once they exist.

    Waits for Kafka (logging ``hub_waiting_for_kafka``) while the broker does not answer.
    Raises when the page cannot be served (port in use: ``OSError``), the broker refuses a
    topic (``ConfigurationError``) or the consumer fails. Everything runs on the caller's
    loop; from another thread, stop it with ``loop.call_soon_threadsafe(stop.set)``.
    """
    if users is None:
        users, generated = hub_users(settings)
    else:
        generated = None
    state = HubState(show_replay=show_replay)
    feed = HubFeed(state)
    edge = HubKafka(
        settings,
        feed,
        ensure_topics=ensure_topics,
        metadata_interval_s=metadata_interval_s,
        missing_topic_interval_s=missing_topic_interval_s,
    )
    app = create_app(state, edge.publish_action, users, feed=feed)
    runner = None
    consumer: asyncio.Task[None] | None = None
    try:
        if not await edge.start(stop):
            if ready is not None and not ready.done():
                ready.cancel()
            return
        consumer = asyncio.create_task(edge.run(), name="hub-consumer")
        runner = await start_hub(app, settings.hub_host, settings.hub_port)
        url = _url(runner, settings.hub_host)
        if generated is not None:
            print(settings_banner(settings, url, generated), flush=True)
        if ready is not None and not ready.done():
            ready.set_result(url)
        log.info(
            "hub_serving",
            url=url,
            bootstrap=settings.bootstrap,
            topic_prefix=settings.topic_prefix,
            partitions=len(edge.assignment()),
        )
        stopping = asyncio.create_task(stop.wait(), name="hub-stop")
        try:
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if consumer.done() and not consumer.cancelled():
            error = consumer.exception()
            log.error("hub_consumer_failed", error=type(error).__name__)
            if error is not None:
                raise error
            raise SafeguardingError("the hub's consumer stopped by itself")
    except BaseException as exc:
        if ready is not None and not ready.done():
            if isinstance(exc, Exception):
                ready.set_exception(exc)
            else:
                ready.cancel()
        raise
    finally:
        # The page first (it closes the live streams), then the consumer, then the producer,
        # which sends whatever an answered request left behind.
        if runner is not None:
            await runner.cleanup()
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consumer
        await edge.close()
        log.info(
            "hub_stopped",
            records_applied=edge.records_applied,
            records_skipped=edge.records_skipped,
        )


def _url(runner: object, host: str) -> str:
    addresses = getattr(runner, "addresses", [])
    port = addresses[0][1] if addresses else 0
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def main_hub(settings: Settings, *, show_replay: bool | None = None) -> int:
    """``safeguarding hub``: serve the hub until Ctrl-C (or SIGTERM).

    Configures logging (``settings.log_level``, JSON lines on stderr) and prints the sign-in
    lines on stdout once the page is up. ``show_replay`` defaults to
    ``settings.mode == "replay"``. Returns 0 after Ctrl-C, 2 for a configuration error (a bad
    users file, a topic the broker refuses), 1 when the hub cannot run (port in use, consumer
    failure).
    """
    logs.configure(settings.log_level)
    try:
        users, generated = hub_users(settings)
    except ConfigurationError as exc:
        print(f"safeguarding hub: {exc}", file=sys.stderr)
        return 2
    replay = settings.mode == "replay" if show_replay is None else show_replay
    try:
        asyncio.run(_main(settings, users, generated, replay))
    except KeyboardInterrupt:
        return 0
    except ConfigurationError as exc:
        print(f"safeguarding hub: {exc}", file=sys.stderr)
        return 2
    except (SafeguardingError, OSError) as exc:
        print(f"safeguarding hub: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _main(
    settings: Settings, users: UserStore, generated: str | None, show_replay: bool
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
    ready: asyncio.Future[str] = loop.create_future()

    def announce(done: asyncio.Future[str]) -> None:
        if not done.cancelled() and done.exception() is None:
            print(settings_banner(settings, done.result(), generated), flush=True)
            print("Ctrl-C stops it.", flush=True)

    ready.add_done_callback(announce)
    try:
        await serve_hub(settings, stop=stop, users=users, ready=ready, show_replay=show_replay)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


__all__ = ["HUB_USER", "hub_users", "login_banner", "main_hub", "serve_hub", "settings_banner"]
