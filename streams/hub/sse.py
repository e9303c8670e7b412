"""Server-sent events: one broadcaster, one bounded buffer per open page.

A page that cannot keep up (its buffer fills) is disconnected rather than slowing the feed or
growing memory; ``EventSource`` reconnects by itself and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from streams.hub.state import AlertChanged, Change

MAX_BUFFERED = 1_000
"""Distinct alerts buffered per subscriber before it is dropped (it reconnects with a
snapshot)."""
RETRY_MS = 3_000
"""How long a browser waits before reconnecting a dropped stream (ms)."""


def sse_message(event: str, data: Mapping[str, Any], event_id: int | None = None) -> bytes:
    """One SSE message; ``data`` is JSON on one line (json.dumps escapes newlines).

    >>> sse_message("alert", {"a": 1}, 7)
    b'event: alert\\nid: 7\\ndata: {"a": 1}\\n\\n'
    """
    head = f"event: {event}\n" + ("" if event_id is None else f"id: {event_id}\n")
    return (head + "data: " + json.dumps(data, separators=(", ", ": ")) + "\n\n").encode()


def change_message(change: AlertChanged) -> bytes:
    """The SSE message a page receives when an alert appears or changes."""
    view = change.view
    return sse_message("alert", {"version": view.version, "alert": view.to_dict()}, view.version)


KEEP_ALIVE = b": keep-alive\n\n"


class Subscription:
    """What one open stream has still to send.

    Messages with the same key (an alert_id) replace each other, so a burst of changes to one
    alert sends only its latest state; timeline notices merge into one message. The buffer is
    bounded by ``limit`` distinct keys.
    """

    def __init__(self, limit: int, tag: str | None) -> None:
        self._limit = limit
        self._items: OrderedDict[object, bytes] = OrderedDict()
        self._children: set[str] = set()
        self._all_children = False
        self._timeline_version = 0
        self._wake = asyncio.Event()
        self.tag = tag
        """The session it belongs to, so signing out closes it."""
        self.closed = False

    def push(self, message: bytes, key: object) -> None:
        if self.closed:
            return
        self._items.pop(key, None)
        if len(self._items) >= self._limit:
            self.close()
            return
        self._items[key] = message
        self._wake.set()

    def push_timeline(self, child_ids: tuple[str, ...], version: int) -> None:
        if self.closed:
            return
        if not self._all_children:
            self._children.update(child_ids)
            if len(self._children) > self._limit:
                self._children.clear()
                self._all_children = True  # too many to list: "refresh any open timeline"
        self._timeline_version = max(self._timeline_version, version)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._children.clear()
        self._wake.set()

    async def get(self, timeout: float) -> list[bytes] | None:
        """The messages waiting (an empty list after ``timeout`` seconds), or None once closed."""
        if not self._items and not self._timeline_version and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self.closed:
            return None
        items = list(self._items.values())
        self._items.clear()
        if self._timeline_version:
            v = self._timeline_version
            items.append(
                sse_message(
                    "timeline",
                    {"version": v, "child_ids": sorted(self._children), "all": self._all_children},
                    v,
                )
            )
            self._children.clear()
            self._all_children = False
            self._timeline_version = 0
        return items


class Broadcaster:
    """Fans each message out to every open stream, without waiting for any of them."""

    def __init__(self, max_buffered: int = MAX_BUFFERED) -> None:
        self._max = max_buffered
        self._subs: set[Subscription] = set()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, tag: str | None = None) -> Subscription:
        sub = Subscription(self._max, tag)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.close()

    def publish(self, message: bytes, key: object = None) -> None:
        """Send ``message`` to every stream; a later message with the same ``key`` replaces it
        in streams that have not sent it yet (None: never replaced)."""
        if key is None:
            key = ("seq", next(self._seq))
        for sub in list(self._subs):
            sub.push(message, key)
            if sub.closed:
                self._subs.discard(sub)

    def publish_change(self, change: Change) -> None:
        """The SSE form of one change of the hub's state, to every stream."""
        if isinstance(change, AlertChanged):
            self.publish(change_message(change), ("alert", change.view.alert.alert_id))
        else:
            for sub in self._subs:
                sub.push_timeline(change.child_ids, change.version)

    def close(self, tag: str | None = None) -> None:
        """Close the streams of one session (``tag``), or all of them (shutdown)."""
        for sub in list(self._subs):
            if tag is None or sub.tag == tag:
                self.unsubscribe(sub)
