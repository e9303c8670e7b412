"""The hub's web app: access control, actions, SSE, redacted access log, rebuild from topics.

Runs the real aiohttp application on a loopback port with an in-memory loop standing in for the
``alert-actions`` topic: a published action is handed straight back to the feed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from streams.domain.alerts import (
    ActionKind,
    Alert,
    AlertAction,
    AlertStatus,
    RuleId,
    Severity,
)
from streams.domain.events import (
    DashRisk,
    Event,
    HouseholdChild,
    Incident,
    IncidentType,
    MissingReport,
    MissingStatus,
    RiskLevel,
)
from streams.domain.time import HOUR, MINUTE, Millis
from streams.hub.app import (
    PUBLIC_ROUTES,
    SESSION_COOKIE,
    create_app,
    runner_kwargs,
)
from streams.hub.auth import LoginThrottle, UserStore, hash_password
from streams.hub.feed import HubFeed
from streams.hub.sse import Broadcaster
from streams.hub.state import HubState
from tests.hubkit import T0, make_alert

PASSWORD = "correct horse battery staple"
SECRET_CHILD = "CHILD-SECRET-4242"
FAST_SCRYPT = 2**10  # test users only; the default cost is 2**14
REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: Millis) -> None:
        self.now = now

    def __call__(self) -> Millis:
        return self.now


def make_users() -> tuple[UserStore, str]:
    users = UserStore(
        {
            "alice": hash_password(PASSWORD, n=FAST_SCRYPT),
            "bob": hash_password("bob's own password", n=FAST_SCRYPT),
        }
    )
    return users, users.add_token("reporter")


@dataclasses.dataclass
class Hub:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    feed: HubFeed
    clock: Clock
    published: list[AlertAction]
    alerts: list[Alert]
    events: list[Event]
    token: str
    csrf: str | None = None


async def start_hub(
    *,
    alerts: list[Alert] | None = None,
    events: list[Event] | None = None,
    state: HubState | None = None,
    fail_publish: bool = False,
    **options: Any,
) -> Hub:
    state = state or HubState()
    feed = HubFeed(state)
    clock = Clock(T0 + 2 * HOUR)
    published: list[AlertAction] = []
    users, token = make_users()

    async def publish(action: AlertAction) -> None:
        if fail_publish:
            raise ConnectionError("broker down")
        published.append(action)
        feed.apply_action(action)  # the round trip through alert-actions, in memory

    app = create_app(state, publish, users, feed=feed, now=clock, **options)
    server = TestServer(app)
    # The same access logger as start_hub (TestServer's constructor ignores runner options).
    await server.start_server(**runner_kwargs())
    client: TestClient[web.Request, web.Application] = TestClient(server)
    await client.start_server()
    alerts = list(alerts or [])
    events = list(events or [])
    for event in events:
        feed.apply_event(event)
    for alert in alerts:
        feed.apply_alert(alert)
    return Hub(client, app, feed, clock, published, alerts, events, token)


DEFAULT_ALERTS = [
    make_alert("C1"),
    make_alert(SECRET_CHILD, RuleId.SG03, "EP-9", Severity.MEDIUM, T0 - HOUR),
]
DEFAULT_EVENTS: list[Event] = [
    Incident(
        "ev-1",
        T0 - 24 * HOUR,
        "INC-1",
        IncidentType.DOMESTIC_ABUSE,
        DashRisk.HIGH,
        (HouseholdChild("C1", True, 6),),
    ),
    MissingReport(
        "ev-9",
        T0 - 5 * HOUR,
        "EP-9",
        SECRET_CHILD,
        MissingStatus.REPORTED,
        RiskLevel.LOW,
        False,
        13,
    ),
]


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    h = await start_hub(alerts=DEFAULT_ALERTS, events=DEFAULT_EVENTS)
    yield h
    await h.client.close()


def _form_token(text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match, "the sign-in form has a CSRF token"
    return match.group(1)


async def sign_in(hub: Hub, user: str = "alice", password: str = PASSWORD) -> str:
    page = await hub.client.get("/login")
    assert page.status == 200
    token = _form_token(await page.text())
    response = await hub.client.post(
        "/login",
        data={"user": user, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"
    session = await hub.client.get("/api/session")
    assert session.status == 200
    hub.csrf = (await session.json())["csrf_token"]
    assert hub.csrf
    return hub.csrf


async def post_action(hub: Hub, alert_id: str, body: Any, **headers: str) -> ClientResponse:
    if hub.csrf and "X-CSRF-Token" not in headers and not headers.get("Authorization"):
        headers["X-CSRF-Token"] = hub.csrf
    return await hub.client.post(
        f"/api/alerts/{alert_id}/actions",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )


# -- access control ------------------------------------------------------------------------------


def _concrete(path: str) -> str:
    values = {"alert_id": DEFAULT_ALERTS[0].alert_id, "child_id": SECRET_CHILD}
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values[m.group(1)], path)


def _routes(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        out.append((route.method, resource.canonical))
    return out


async def test_every_route_refuses_unauthenticated_requests(hub: Hub) -> None:
    routes = [r for r in _routes(hub.app) if r not in PUBLIC_ROUTES]
    assert len(routes) >= 10
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer sgh_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Cookie": f"{SESSION_COOKIE}=forged-session-value"},
    ]
    for method, path in routes:
        for headers in attempts:
            response = await hub.client.request(
                method,
                _concrete(path),
                headers=headers,
                data=b"{}" if method == "POST" else None,
            )
            assert response.status == 401, (method, path, headers)
            assert "WWW-Authenticate" in response.headers
            body = await response.text()
            assert "alice" not in body
            assert SECRET_CHILD not in body
    assert hub.published == []


async def test_public_routes_are_exactly_the_sign_in_and_health_routes(hub: Hub) -> None:
    assert {
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/healthz"),
        ("GET", "/static/app.css"),
    } == PUBLIC_ROUTES
    assert set(_routes(hub.app)) >= PUBLIC_ROUTES
    assert (await hub.client.get("/healthz")).status == 200
    assert (await hub.client.get("/static/app.css")).status == 200


async def test_unknown_paths_need_a_user_too(hub: Hub) -> None:
    assert (await hub.client.get("/nope")).status == 401
    await sign_in(hub)
    assert (await hub.client.get("/nope")).status == 404


async def test_the_page_answers_401_with_the_sign_in_form(hub: Hub) -> None:
    response = await hub.client.get("/")
    assert response.status == 401
    text = await response.text()
    assert 'action="/login"' in text
    assert 'name="password"' in text


async def test_wrong_password_and_unknown_user_get_the_same_answer(hub: Hub) -> None:
    token = _form_token(await (await hub.client.get("/login")).text())
    answers = []
    for user, password in [("alice", "wrong"), ("mallory", "wrong"), ("alice", PASSWORD + "x")]:
        response = await hub.client.post(
            "/login",
            data={"user": user, "password": password, "csrf_token": token},
            allow_redirects=False,
        )
        headers = {k: v for k, v in response.headers.items() if k.lower() != "date"}
        answers.append((response.status, await response.read(), headers))
    assert answers[0][0] == 401
    assert answers[0] == answers[1] == answers[2]
    assert b"user name or password is not right" in answers[0][1]
    assert (await hub.client.get("/api/session")).status == 401


async def test_session_cookie_is_httponly_and_samesite_strict(hub: Hub) -> None:
    page = await hub.client.get("/login")
    login_cookie = page.headers.getall("Set-Cookie")[0]
    assert "HttpOnly" in login_cookie
    assert "SameSite=Strict" in login_cookie
    response = await hub.client.post(
        "/login",
        data={"user": "alice", "password": PASSWORD, "csrf_token": _form_token(await page.text())},
        allow_redirects=False,
    )
    assert response.status == 303
    session_cookie = next(
        c for c in response.headers.getall("Set-Cookie") if c.startswith(f"{SESSION_COOKIE}=")
    )
    assert "HttpOnly" in session_cookie
    assert "SameSite=Strict" in session_cookie
    assert "Path=/" in session_cookie


async def test_secure_cookies_when_asked() -> None:
    h = await start_hub(secure_cookies=True)
    try:
        page = await h.client.get("/login")
        assert "Secure" in page.headers.getall("Set-Cookie")[0]
    finally:
        await h.client.close()


async def test_sign_in_needs_the_form_csrf_token(hub: Hub) -> None:
    await hub.client.get("/login")
    for token in (None, "forged"):
        data = {"user": "alice", "password": PASSWORD}
        if token:
            data["csrf_token"] = token
        response = await hub.client.post("/login", data=data, allow_redirects=False)
        assert response.status == 403
    assert (await hub.client.get("/api/session")).status == 401


async def test_state_changing_requests_need_the_csrf_token(hub: Hub) -> None:
    csrf = await sign_in(hub)
    alert_id = DEFAULT_ALERTS[0].alert_id
    body = {"kind": "ACKNOWLEDGE"}
    for headers in (
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": "forged"},
        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
        {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
    ):
        response = await post_action(hub, alert_id, body, **headers)
        assert response.status == 403, headers
    response = await hub.client.post(
        f"/api/alerts/{alert_id}/actions",
        json=body,  # no token at all
    )
    assert response.status == 403
    assert hub.published == []
    # What Chromium sends from our own page (Referrer-Policy: no-referrer makes Origin "null").
    response = await post_action(
        hub, alert_id, body, Origin="null", **{"Sec-Fetch-Site": "same-origin"}
    )
    assert response.status == 202
    assert len(hub.published) == 1


async def test_sign_out_needs_the_token_and_ends_the_session(hub: Hub) -> None:
    csrf = await sign_in(hub)
    assert (await hub.client.post("/logout", allow_redirects=False)).status == 403
    response = await hub.client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    assert (await hub.client.get("/api/session")).status == 401


async def test_a_signed_in_user_going_to_the_sign_in_page_is_sent_to_the_board(hub: Hub) -> None:
    await sign_in(hub)
    response = await hub.client.get("/login", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_sessions_expire_after_a_shift(hub: Hub) -> None:
    await sign_in(hub)
    hub.clock.now += 9 * HOUR  # idle longer than 8 hours
    assert (await hub.client.get("/api/session")).status == 401


async def test_bearer_token_works_for_the_api_without_csrf(hub: Hub) -> None:
    auth = {"Authorization": f"Bearer {hub.token}"}
    response = await hub.client.get("/api/alerts", headers=auth)
    assert response.status == 200
    assert (await response.json())["count"] == 2
    session = await (await hub.client.get("/api/session", headers=auth)).json()
    assert session["user"] == "reporter"
    assert session["csrf_token"] is None
    response = await post_action(hub, DEFAULT_ALERTS[0].alert_id, {"kind": "ACKNOWLEDGE"}, **auth)
    assert response.status == 202
    assert hub.published[-1].user == "reporter"
    bad = {"Authorization": f"Bearer {hub.token}x"}
    assert (await hub.client.get("/api/alerts", headers=bad)).status == 401


async def test_repeated_sign_in_failures_are_throttled() -> None:
    clock = Clock(T0)
    h = await start_hub(login_throttle=LoginThrottle(clock, max_failures=2))
    try:
        token = _form_token(await (await h.client.get("/login")).text())
        statuses = []
        for password in ("wrong", "wrong", PASSWORD):
            response = await h.client.post(
                "/login",
                data={"user": "alice", "password": password, "csrf_token": token},
                allow_redirects=False,
            )
            statuses.append(response.status)
        assert statuses == [401, 401, 429]
        clock.now += 16 * MINUTE
        response = await h.client.post(
            "/login",
            data={"user": "alice", "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
        )
        assert response.status == 303
    finally:
        await h.client.close()


async def test_security_headers_on_every_answer(hub: Hub) -> None:
    answers = [await hub.client.get("/"), await hub.client.get("/api/alerts")]
    await sign_in(hub)
    answers += [
        await hub.client.get("/"),
        await hub.client.get("/static/app.js"),
        await hub.client.get("/api/alerts"),
    ]
    for response in answers:
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_the_page_has_no_inline_script(hub: Hub) -> None:
    await sign_in(hub)
    page = await (await hub.client.get("/")).text()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script src="/static/app.js" defer>']
    assert not re.search(r"<[^>]+\son\w+=", page), "no inline event handlers"
    assert not re.search(r"<[^>]+\sstyle=", page), "no inline styles"
    js = await hub.client.get("/static/app.js")
    assert js.status == 200
    assert js.content_type == "text/javascript"
    for testid in ("alert-list", "timeline-panel", "quality-panel", "filter-severity"):
        assert f'data-testid="{testid}"' in page


# -- actions -------------------------------------------------------------------------------------


async def test_actions_are_published_with_the_signed_in_user_and_come_back(hub: Hub) -> None:
    await sign_in(hub)
    alert_id = DEFAULT_ALERTS[0].alert_id
    steps = [
        ({"kind": "ACKNOWLEDGE"}, "ACKNOWLEDGED"),
        ({"kind": "ASSIGN", "assignee": "bob"}, "ASSIGNED"),
        ({"kind": "NOTE", "note": "  Phoned the school.  "}, "ASSIGNED"),
        ({"kind": "CLOSE", "outcome": "REFERRED", "note": "Referred to MASH."}, "CLOSED"),
    ]
    for n, (body, workflow) in enumerate(steps):
        hub.clock.now += MINUTE
        response = await post_action(hub, alert_id, body)
        assert response.status == 202
        answer = await response.json()
        assert answer["status"] == "accepted"
        published = hub.published[n]
        assert published.user == "alice"
        assert published.at == hub.clock.now
        assert published.alert_id == alert_id
        assert published.kind is ActionKind(body["kind"])
        assert answer["action"]["action_id"] == published.action_id
        view = await (await hub.client.get(f"/api/alerts/{alert_id}")).json()
        assert view["workflow"] == workflow
    assert hub.published[2].note == "Phoned the school."
    assert len({a.action_id for a in hub.published}) == 4
    assert view["acknowledged"]["user"] == "alice"
    assert view["assignee"] == "bob"
    assert view["closed"] == {
        "user": "alice",
        "at": view["actions"][-1]["at"],
        "outcome": "REFERRED",
        "note": "Referred to MASH.",
    }
    assert [a["kind"] for a in view["actions"]] == ["ACKNOWLEDGE", "ASSIGN", "NOTE", "CLOSE"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "field 'kind' is required"),
        ([], "must be a JSON object"),
        ("ACKNOWLEDGE", "must be a JSON object"),
        ({"kind": "ESCALATE"}, "kind 'ESCALATE' is not one of ACKNOWLEDGE, ASSIGN, NOTE, CLOSE"),
        ({"kind": "ASSIGN"}, "ASSIGN needs 'assignee'"),
        ({"kind": "ASSIGN", "assignee": ""}, "ASSIGN needs 'assignee'"),
        ({"kind": "ASSIGN", "assignee": "mallory"}, "assignee 'mallory' is not a hub user"),
        ({"kind": "CLOSE"}, "CLOSE needs 'outcome': one of REFERRED"),
        ({"kind": "CLOSE", "outcome": "SOLVED"}, "outcome 'SOLVED' is not one of"),
        ({"kind": "NOTE"}, "NOTE needs 'note'"),
        ({"kind": "NOTE", "note": "   "}, "NOTE needs 'note'"),
        ({"kind": "NOTE", "note": "x" * 2001}, "at most 2000 characters"),
        ({"kind": "NOTE", "note": 5}, "'note' must be text"),
        ({"kind": "ACKNOWLEDGE", "user": "bob"}, "field 'user' is set by the server"),
        ({"kind": "ACKNOWLEDGE", "assignee": "bob"}, "not allowed for ACKNOWLEDGE"),
    ],
)
async def test_malformed_actions_are_refused_with_a_reason(
    hub: Hub, body: Any, reason: str
) -> None:
    await sign_in(hub)
    response = await post_action(hub, DEFAULT_ALERTS[0].alert_id, body)
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert hub.published == []


async def test_a_body_that_is_not_json_is_refused(hub: Hub) -> None:
    await sign_in(hub)
    assert hub.csrf is not None
    url = f"/api/alerts/{DEFAULT_ALERTS[0].alert_id}/actions"
    headers = {"X-CSRF-Token": hub.csrf}
    response = await hub.client.post(
        url, data=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]
    response = await hub.client.post(
        url, data=b"kind=NOTE", headers={**headers, "Content-Type": "text/plain"}
    )
    assert response.status == 400
    assert "must be JSON" in (await response.json())["error"]


async def test_unknown_alert_is_404(hub: Hub) -> None:
    await sign_in(hub)
    response = await post_action(hub, "no-such-alert", {"kind": "ACKNOWLEDGE"})
    assert response.status == 404
    assert (await hub.client.get("/api/alerts/no-such-alert")).status == 404
    assert hub.published == []


async def test_a_publish_failure_is_503_and_changes_nothing() -> None:
    h = await start_hub(alerts=DEFAULT_ALERTS, fail_publish=True)
    try:
        await sign_in(h)
        response = await post_action(h, DEFAULT_ALERTS[0].alert_id, {"kind": "ACKNOWLEDGE"})
        assert response.status == 503
        view = await (await h.client.get(f"/api/alerts/{DEFAULT_ALERTS[0].alert_id}")).json()
        assert view["workflow"] == "NEW"
    finally:
        await h.client.close()


# -- queries -------------------------------------------------------------------------------------


async def test_list_filters_and_order(hub: Hub) -> None:
    await sign_in(hub)
    extra = make_alert(
        "C3", RuleId.SG06, "EP-3", Severity.HIGH, T0 - 3 * HOUR, AlertStatus.RESOLVED, T0
    )
    hub.feed.apply_alert(extra)
    body = await (await hub.client.get("/api/alerts")).json()
    assert [a["child_id"] for a in body["alerts"]] == ["C3", "C1", SECRET_CHILD]
    assert body["alerts"][1]["rule_title"].startswith("Domestic abuse")
    body = await (await hub.client.get("/api/alerts?severity=HIGH&status=RAISED")).json()
    assert [a["child_id"] for a in body["alerts"]] == ["C1"]
    body = await (await hub.client.get("/api/alerts?rule=SG03,SG06&limit=1")).json()
    assert body["count"] == 2
    assert body["truncated"]
    assert len(body["alerts"]) == 1
    response = await hub.client.get("/api/alerts?severity=SEVERE")
    assert response.status == 400
    assert "severity" in (await response.json())["error"]
    assert (await hub.client.get("/api/alerts?limit=0")).status == 400


async def test_child_timeline(hub: Hub) -> None:
    await sign_in(hub)
    body = await (await hub.client.get("/api/children/C1/timeline")).json()
    assert body["child_id"] == "C1"
    assert body["complete"]
    assert [(e["kind"], e["ref"]) for e in body["entries"]] == [
        ("event", "ev-1"),
        ("alert_raised", DEFAULT_ALERTS[0].alert_id),
    ]
    assert body["entries"][0]["event"]["incident_type"] == "DOMESTIC_ABUSE"
    assert body["entries"][1]["alert"]["rule_id"] == "SG01"
    unknown = await (await hub.client.get("/api/children/nobody/timeline")).json()
    assert unknown["entries"] == []
    assert not unknown["complete"]
    too_long = await hub.client.get(f"/api/children/{'x' * 201}/timeline")
    assert too_long.status == 400


async def test_quality(hub: Hub) -> None:
    await sign_in(hub)
    q = await (await hub.client.get("/api/quality")).json()
    assert q["days"] == 30
    assert q["alerts"] == 2
    assert q["grades"] == {"good": 0, "requires_improvement": 1, "inadequate": 1}
    assert (await hub.client.get("/api/quality?days=0")).status == 400
    assert (await hub.client.get("/api/quality?days=abc")).status == 400


async def test_the_quality_provider_can_be_swapped() -> None:
    def provider(state: HubState, now: Millis, days: int) -> dict[str, Any]:
        return {"custom": True, "days": days, "now": now}

    h = await start_hub(quality_provider=provider)
    try:
        await sign_in(h)
        q = await (await h.client.get("/api/quality?days=7")).json()
        assert q == {"custom": True, "days": 7, "now": h.clock.now}
    finally:
        await h.client.close()


# -- server-sent events --------------------------------------------------------------------------


async def next_event(response: ClientResponse, timeout: float = 5.0) -> tuple[str, Any]:
    """The next SSE message (skipping comments and the retry line): (event, data)."""
    while True:
        block = await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout)
        event, data = None, None
        for line in block.decode().splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if event is not None:
            return event, data


async def test_the_stream_delivers_new_alerts_and_changes_in_place(hub: Hub) -> None:
    await sign_in(hub)
    response = await hub.client.get("/api/alerts/stream")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    event, data = await next_event(response)
    assert event == "snapshot"
    assert {a["alert_id"] for a in data["alerts"]} == {a.alert_id for a in DEFAULT_ALERTS}

    new = make_alert("C7", RuleId.SG07, "EP-7", Severity.HIGH, T0 + HOUR)
    hub.feed.apply_alert(new)
    event, data = await next_event(response)
    assert event == "alert"
    assert data["alert"]["alert_id"] == new.alert_id
    assert data["alert"]["status"] == "RAISED"
    assert data["alert"]["workflow"] == "NEW"
    first_version = data["version"]

    hub.feed.apply_alert(
        dataclasses.replace(new, status=AlertStatus.RESOLVED, resolved_at=T0 + 2 * HOUR)
    )
    event, data = await next_event(response)
    assert (event, data["alert"]["alert_id"], data["alert"]["status"]) == (
        "alert",
        new.alert_id,
        "RESOLVED",
    )
    assert data["version"] > first_version

    assert (await post_action(hub, new.alert_id, {"kind": "ACKNOWLEDGE"})).status == 202
    event, data = await next_event(response)
    assert data["alert"]["workflow"] == "ACKNOWLEDGED"
    assert data["alert"]["acknowledged"]["user"] == "alice"

    hub.feed.apply_event(
        MissingReport("ev-20", T0, "EP-7", "C7", MissingStatus.RETURNED, None, False, 15)
    )
    event, data = await next_event(response)
    assert (event, data["child_ids"]) == ("timeline", ["C7"])
    response.close()


async def test_the_stream_sends_keep_alives() -> None:
    h = await start_hub(heartbeat_s=0.05)
    try:
        await sign_in(h)
        response = await h.client.get("/api/alerts/stream")
        await next_event(response)
        block = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert block == b": keep-alive\n\n"
        response.close()
    finally:
        await h.client.close()


async def test_signing_out_ends_the_stream(hub: Hub) -> None:
    csrf = await sign_in(hub)
    response = await hub.client.get("/api/alerts/stream")
    await next_event(response)
    await hub.client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    rest = await asyncio.wait_for(response.content.read(), 5)
    assert rest == b""
    assert response.content.at_eof()
    assert len(hub.feed.broadcaster) == 0


def test_a_subscriber_that_falls_behind_is_dropped() -> None:
    broadcaster = Broadcaster(max_buffered=2)
    slow = broadcaster.subscribe()
    for n in range(3):
        broadcaster.publish(b"m%d" % n)
    assert slow.closed
    assert len(broadcaster) == 0


async def test_a_slow_subscriber_gets_the_latest_state_of_each_alert_and_one_timeline() -> None:
    broadcaster = Broadcaster(max_buffered=2)
    sub = broadcaster.subscribe()
    state = HubState()
    a, b = make_alert("C1"), make_alert("C2")
    for change in (
        state.apply_alert(a),
        state.apply_alert(b),
        state.apply_alert(dataclasses.replace(a, status=AlertStatus.RESOLVED, resolved_at=T0)),
        state.apply_event(
            MissingReport("m1", T0, "E1", "C1", MissingStatus.RETURNED, None, False, 9)
        ),
        state.apply_event(
            MissingReport("m2", T0, "E2", "C2", MissingStatus.RETURNED, None, False, 9)
        ),
    ):
        assert change is not None
        broadcaster.publish_change(change)
    assert not sub.closed  # five changes, two alerts: within the bound of two
    messages = await sub.get(0.1)
    assert messages is not None
    events = [(m.split(b"\n")[0], json.loads(m.split(b"data: ")[1])) for m in messages]
    assert [e for e, _ in events] == [b"event: alert", b"event: alert", b"event: timeline"]
    assert [d["alert"]["status"] for _, d in events[:2]] == ["RAISED", "RESOLVED"]
    assert events[1][1]["alert"]["alert_id"] == a.alert_id
    assert events[2][1] == {"version": 5, "child_ids": ["C1", "C2"], "all": False}
    assert await sub.get(0.01) == []


# -- logs never name a child ---------------------------------------------------------------------


async def test_the_access_log_and_app_logs_never_name_a_child(
    hub: Hub, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_alert = DEFAULT_ALERTS[1]
    with structlog.testing.capture_logs() as app_logs:
        await hub.client.get(f"/api/children/{SECRET_CHILD}/timeline")  # not signed in
        await sign_in(hub)  # GET /login, POST /login, GET /api/session
        await hub.client.get(f"/api/children/{SECRET_CHILD}/timeline")
        await hub.client.get(f"/api/alerts?child={SECRET_CHILD}")
        await hub.client.get(f"/api/children/{SECRET_CHILD}/elsewhere")
        await post_action(hub, secret_alert.alert_id, {"kind": "NOTE", "note": "seen"})
        await hub.client.get(f"/api/alerts/{SECRET_CHILD}")
        requests = 9
        hub.feed.apply_alert(make_alert(SECRET_CHILD, RuleId.SG06, "EP-10"))
        hub.feed.apply_event(
            MissingReport(
                "ev-30", T0, "EP-10", SECRET_CHILD, MissingStatus.RETURNED, None, False, 13
            )
        )
        for _ in range(100):  # the access log line is written just after the answer is sent
            if sum(r.name == "streams.hub.access" for r in caplog.records) >= requests:
                break
            await asyncio.sleep(0.01)
    access = [r.getMessage() for r in caplog.records if r.name == "streams.hub.access"]
    assert len(access) >= requests
    assert any("route=/api/children/{child_id}/timeline status=200" in line for line in access)
    assert any("route=<unmatched> status=404" in line for line in access)
    assert any(event["event"] == "hub_action_published" for event in app_logs)
    out, err = capsys.readouterr()
    assert SECRET_CHILD not in caplog.text
    assert SECRET_CHILD not in repr(app_logs)
    assert SECRET_CHILD not in out + err


# -- a restart rebuilds the same state from the topics -------------------------------------------


def _without_versions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k != "version"}
    if isinstance(value, list):
        return [_without_versions(v) for v in value]
    return value


async def _answers(h: Hub) -> list[Any]:
    paths = [
        "/api/alerts",
        "/api/quality",
        "/api/children/C1/timeline",
        f"/api/children/{SECRET_CHILD}/timeline",
        *(f"/api/alerts/{a.alert_id}" for a in h.alerts),
    ]
    return [_without_versions(await (await h.client.get(p)).json()) for p in paths]


async def test_a_restart_rebuilds_the_same_answers_from_the_topics(hub: Hub) -> None:
    await sign_in(hub)
    first, second = DEFAULT_ALERTS
    for alert_id, body in [
        (first.alert_id, {"kind": "ACKNOWLEDGE"}),
        (second.alert_id, {"kind": "ASSIGN", "assignee": "bob"}),
        (first.alert_id, {"kind": "NOTE", "note": "Called children's social care."}),
        (first.alert_id, {"kind": "CLOSE", "outcome": "REFERRED"}),
    ]:
        hub.clock.now += MINUTE
        assert (await post_action(hub, alert_id, body)).status == 202
    resolved = dataclasses.replace(second, status=AlertStatus.RESOLVED, resolved_at=T0 + HOUR)
    hub.feed.apply_alert(resolved)
    hub.alerts.append(resolved)
    before = await _answers(hub)

    # A fresh hub reads the topics from the start: the actions topic may come first.
    restarted = await start_hub(state=HubState())
    try:
        restarted.clock.now = hub.clock.now
        for action in hub.published:
            restarted.feed.apply_action(action)
        for alert in hub.alerts:
            restarted.feed.apply_alert(alert)
        for event in hub.events:
            restarted.feed.apply_event(event)
        restarted.alerts = hub.alerts
        await sign_in(restarted)
        assert await _answers(restarted) == before
    finally:
        await restarted.client.close()


# -- the OpenAPI document lists every route ------------------------------------------------------


def _openapi_operations(text: str) -> set[tuple[str, str]]:
    """(METHOD, path) of docs/openapi.yaml, read by indentation (PyYAML is not a dependency)."""
    ops: set[tuple[str, str]] = set()
    in_paths, path = False, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_paths = line.startswith("paths:")
            continue
        if not in_paths:
            continue
        if indent == 2 and line.rstrip().endswith(":"):
            path = line.strip()[:-1]
        elif indent == 4 and path and line.strip().rstrip(":") in {"get", "post", "put", "delete"}:
            ops.add((line.strip().rstrip(":").upper(), path))
    return ops


async def test_the_openapi_document_lists_every_route(hub: Hub) -> None:
    documented = _openapi_operations((REPO / "docs" / "openapi.yaml").read_text())
    assert documented == set(_routes(hub.app))
