"""The hub's web application: page, JSON API, live stream, sign-in (the imperative shell).

Build it with :func:`create_app` and serve it with :func:`start_hub`, which installs the access
logger that never prints a child's id. Routes are listed in ``docs/openapi.yaml``.

>>> from streams.hub.state import HubState
>>> async def publish(action): ...
>>> app = create_app(HubState(), publish, UserStore.with_password("hub", "pw", n=2**10))
>>> sorted(PUBLIC_ROUTES)[0]
('GET', '/healthz')
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from streams.domain.alerts import RULE_NAMES, RULE_TITLES, AlertAction, AlertStatus, Severity
from streams.domain.time import Millis
from streams.hub.actions import InvalidAction, build_action
from streams.hub.auth import (
    LoginThrottle,
    Principal,
    SessionStore,
    UserStore,
    same_secret,
)
from streams.hub.feed import HubFeed
from streams.hub.sse import KEEP_ALIVE, RETRY_MS, sse_message
from streams.hub.state import (
    Filters,
    HubState,
    Outcome,
    QualityProvider,
    Workflow,
    live_quality,
)
from streams.hub.views import action_to_dict

log = structlog.get_logger(__name__)

PublishAction = Callable[[AlertAction], Awaitable[None]]
"""Sends an action to the ``alert-actions`` topic; the hub applies it when it comes back."""
Clock = Callable[[], Millis]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6066

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_BODY = 64 * 1024  # bytes; an action is a few hundred
HEARTBEAT_S = 15.0  # seconds between SSE keep-alives; also how soon a dead stream is noticed
MAX_CONCURRENT_LOGINS = 2  # scrypt needs 16 MiB and ~50 ms of a core each; the host has 2
MAX_CHILD_ID = 200
MAX_LIST_LIMIT = 10_000

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/healthz"),
        ("GET", "/static/app.css"),  # the sign-in page's styles: no data in it
    }
)
"""(method, route) pairs open without signing in; every other route needs a user."""

HUB_FEED = web.AppKey("hub_feed", HubFeed)
USERS = web.AppKey("hub_users", UserStore)
SESSIONS = web.AppKey("hub_sessions", SessionStore)
_PUBLISH: web.AppKey[PublishAction] = web.AppKey("hub_publish")
_CLOCK: web.AppKey[Clock] = web.AppKey("hub_clock")
_QUALITY: web.AppKey[QualityProvider] = web.AppKey("hub_quality")
_THROTTLE = web.AppKey("hub_throttle", LoginThrottle)
_LOGINS = web.AppKey("hub_logins", asyncio.Semaphore)
_OPTIONS = web.AppKey("hub_options", dict)
_ASSETS = web.AppKey("hub_assets", dict)

# aiohttp >= 3.13 wants typed request keys (a plain str warns); older versions take the str.
PRINCIPAL: Any = (
    web.RequestKey("hub_principal", Principal) if hasattr(web, "RequestKey") else "hub_principal"
)
"""Request key of the signed-in :class:`~streams.hub.auth.Principal`."""


def wall_clock() -> Millis:
    """Now, in UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


# -- the application -------------------------------------------------------------------------


def create_app(
    state: HubState,
    publish_action: PublishAction,
    users: UserStore,
    *,
    feed: HubFeed | None = None,
    now: Clock = wall_clock,
    quality_provider: QualityProvider = live_quality,
    secure_cookies: bool = False,
    heartbeat_s: float = HEARTBEAT_S,
    login_throttle: LoginThrottle | None = None,
) -> web.Application:
    """The hub's aiohttp application.

    - ``state``: the :class:`HubState` the page shows;
    - ``publish_action``: how an action reaches ``alert-actions``; the state changes only when
      the consumer hands it back to ``feed.apply_action`` (tests: an in-memory loop);
    - ``users``: who may sign in (:func:`streams.hub.auth.load_users`);
    - ``feed``: the :class:`HubFeed` the Kafka consumer will call (made here if not given; get
      it back with ``app[HUB_FEED]``);
    - ``now``: the wall clock (actions' ``at``, sessions' expiry, the quality period's end);
    - ``secure_cookies``: set when served over HTTPS.
    """
    if feed is None:
        feed = HubFeed(state)
    elif feed.state is not state:
        raise ValueError("create_app: feed.state must be the state given")
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[_error_middleware, _auth_middleware]
    )
    app[HUB_FEED] = feed
    app[USERS] = users
    app[SESSIONS] = SessionStore(now)
    app[_PUBLISH] = publish_action
    app[_CLOCK] = now
    app[_QUALITY] = quality_provider
    app[_THROTTLE] = login_throttle or LoginThrottle(now)
    app[_LOGINS] = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)
    app[_OPTIONS] = {"secure": secure_cookies, "heartbeat": heartbeat_s}
    app[_ASSETS] = _load_assets()
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_close_streams)

    r = app.router
    r.add_get("/", _index, name="page", allow_head=False)
    r.add_get("/login", _login_page, name="login_page", allow_head=False)
    r.add_post("/login", _login_submit, name="login")
    r.add_post("/logout", _logout, name="logout")
    r.add_get("/healthz", _healthz, name="healthz", allow_head=False)
    r.add_get("/static/app.js", _asset, name="app_js", allow_head=False)
    r.add_get("/static/app.css", _asset, name="app_css", allow_head=False)
    r.add_get("/api/session", _session_info, name="session", allow_head=False)
    r.add_get("/api/alerts", _list_alerts, name="alerts", allow_head=False)
    r.add_get("/api/alerts/stream", _stream, name="alerts_stream", allow_head=False)
    r.add_get("/api/alerts/{alert_id}", _get_alert, name="alert", allow_head=False)
    r.add_post("/api/alerts/{alert_id}/actions", _post_action, name="alert_actions")
    r.add_get(
        "/api/children/{child_id}/timeline", _timeline, name="child_timeline", allow_head=False
    )
    r.add_get("/api/quality", _quality, name="quality", allow_head=False)
    return app


def get_feed(app: web.Application) -> HubFeed:
    """The feed the Kafka consumer calls for this app."""
    return app[HUB_FEED]


def _load_assets() -> dict[str, tuple[bytes, str]]:
    static = files("streams.hub") / "static"
    return {
        "index.html": ((static / "index.html").read_bytes(), "text/html"),
        "app.js": ((static / "app.js").read_bytes(), "text/javascript"),
        "app.css": ((static / "app.css").read_bytes(), "text/css"),
    }


async def _close_streams(app: web.Application) -> None:
    app[HUB_FEED].broadcaster.close()


# -- serving and access logs -----------------------------------------------------------------


def route_label(request: BaseRequest) -> str:
    """The route template a request matched (``/api/children/{child_id}/timeline``), never the
    path itself: paths can carry a child's id. Unmatched requests are ``<unmatched>``."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    return "<unmatched>" if resource is None else resource.canonical


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with the route template instead of the path, and no query string,
    referrer or user agent: nothing that could name a child."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        principal = request.get(PRINCIPAL)
        self.logger.info(
            "http_request method=%s route=%s status=%s bytes=%s duration_ms=%.1f user=%s",
            request.method,
            route_label(request),
            response.status,
            response.body_length,
            time * 1000,
            principal.user if isinstance(principal, Principal) else "-",
        )


ACCESS_LOGGER = logging.getLogger("streams.hub.access")


def runner_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` (or ``TestServer``): the redacting access log."""
    return {"access_log_class": RedactingAccessLogger, "access_log": ACCESS_LOGGER}


SHUTDOWN_TIMEOUT_S = 5.0
"""Seconds a stopping hub waits for requests in flight (aiohttp's default is 60)."""


async def start_hub(
    app: web.Application, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> web.AppRunner:
    """Serve ``app`` on host:port (0: a free port, see ``runner.addresses``);
    ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, **runner_kwargs())
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("hub_started", url=f"http://{host}:{bound}/")
    return runner


# -- middlewares -----------------------------------------------------------------------------


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    h.setdefault("Cache-Control", "no-store")


@web.middleware
async def _error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The message of an exception may quote data (a KeyError of a child's id): log the type
        # and where it happened, not the message.
        log.error(
            "hub_request_failed",
            route=route_label(request),
            error=type(exc).__name__,
            where="".join(traceback.format_tb(exc.__traceback__, limit=-3)),
        )
        return _json({"error": "internal error"}, status=500)


def _authenticate(request: web.Request) -> Principal | None:
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = request.app[USERS].user_for_token(token.strip())
        return None if user is None else Principal(user, "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    return None if cookie is None else request.app[SESSIONS].get(cookie)


def _same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        # No Origin: older browsers and non-browser clients. "null": what browsers send for a
        # same-origin POST from a page with Referrer-Policy: no-referrer (ours). Either way the
        # CSRF token (and Sec-Fetch-Site, where sent) decides.
        return True
    return urlsplit(origin).netloc == request.host


async def _csrf_ok(request: web.Request, principal: Principal) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return same_secret(given, principal.csrf_token)


@web.middleware
async def _auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = request.match_info.route
    resource = route.resource
    if resource is not None and (request.method, resource.canonical) in PUBLIC_ROUTES:
        return await handler(request)
    principal = _authenticate(request)
    if principal is None:
        return _unauthorized(request)
    if (
        request.method not in SAFE_METHODS
        and principal.via == "session"
        and (not _same_origin(request) or not await _csrf_ok(request, principal))
    ):
        return _json({"error": "forbidden: this request needs the page's CSRF token"}, 403)
    request[PRINCIPAL] = principal
    return await handler(request)


def _unauthorized(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and request.path == "/":
        # The page itself: answer 401 with the sign-in form, so a browser shows it in place.
        return _login_response(request, status=401)
    response = _json({"error": "authentication required"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="safeguarding-hub"'
    return response


# -- pages -----------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _bad_request(reason: str) -> web.Response:
    return _json({"error": reason}, status=400)


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _index(request: web.Request) -> web.Response:
    body, content_type = request.app[_ASSETS]["index.html"]
    return web.Response(body=body, content_type=content_type, charset="utf-8")


async def _asset(request: web.Request) -> web.Response:
    name = request.path.rsplit("/", 1)[-1]
    body, content_type = request.app[_ASSETS][name]
    response = web.Response(body=body, content_type=content_type, charset="utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response


_LOGIN_ERRORS = {
    "failed": "Sign-in failed: the user name or password is not right.",
    "expired": "The sign-in form expired. Please try again.",
    "throttled": "Too many failed sign-ins from this computer. Wait 15 minutes and try again.",
}


def _login_html(csrf_token: str, error: str | None) -> str:
    message = (
        f'<p class="login-error" role="alert" data-testid="login-error">'
        f"{html.escape(_LOGIN_ERRORS[error])}</p>"
        if error
        else ""
    )
    return f"""<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Safeguarding hub</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body class="login-body">
<main class="login">
<h1>Safeguarding hub</h1>
{message}
<form method="post" action="/login" data-testid="login-form">
<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(csrf_token)}">
<label for="user">User name</label>
<input id="user" name="user" autocomplete="username" required maxlength="64" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" data-testid="login-submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


def _login_response(
    request: web.Request, *, status: int = 200, error: str | None = None, fresh: bool = False
) -> web.Response:
    """The sign-in page with a double-submit CSRF token (cookie and hidden field)."""
    token = None if fresh else request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        set_cookie = True
    else:
        set_cookie = False
    response = web.Response(
        text=_login_html(token, error), status=status, content_type="text/html", charset="utf-8"
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="safeguarding-hub"'
    if set_cookie:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=request.app[_OPTIONS]["secure"],
            path="/",
        )
    return response


async def _login_page(request: web.Request) -> web.StreamResponse:
    if _authenticate(request) is not None and "Authorization" not in request.headers:
        raise web.HTTPSeeOther("/")
    return _login_response(request)


async def _login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if not _same_origin(request) or not same_secret(
        given if isinstance(given, str) else None, request.cookies.get(LOGIN_CSRF_COOKIE)
    ):
        return _login_response(request, status=403, error="expired", fresh=True)
    client = request.remote or "-"
    throttle = request.app[_THROTTLE]
    if throttle.blocked(client):
        log.warning("hub_login_throttled")
        return _login_response(request, status=429, error="throttled")
    name, password = form.get("user"), form.get("password")
    user = None
    if isinstance(name, str) and isinstance(password, str):
        async with request.app[_LOGINS]:
            loop = asyncio.get_running_loop()
            user = await loop.run_in_executor(
                None, request.app[USERS].authenticate, name.strip(), password
            )
    if user is None:
        throttle.failed(client)
        # Not the name typed: it may be a password typed in the wrong box.
        log.info("hub_login_failed")
        return _login_response(request, status=401, error="failed")
    throttle.succeeded(client)
    sessions = request.app[SESSIONS]
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        previous = sessions.get(old)
        if previous is not None and previous.session_key is not None:
            sessions.drop(previous.session_key)
    cookie, _ = sessions.create(user)
    log.info("hub_login", user=user)
    response = _see_other("/")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=request.app[_OPTIONS]["secure"],
        path="/",
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    principal: Principal = request[PRINCIPAL]
    if principal.session_key is not None:
        request.app[SESSIONS].drop(principal.session_key)
        request.app[HUB_FEED].broadcaster.close(principal.session_key)
    log.info("hub_logout", user=principal.user)
    response = _see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- API -------------------------------------------------------------------------------------


async def _session_info(request: web.Request) -> web.Response:
    principal: Principal = request[PRINCIPAL]
    return _json(
        {
            "user": principal.user,
            "via": principal.via,
            "csrf_token": principal.csrf_token,
            "users": request.app[USERS].names(),
            "rules": [
                {"rule_id": str(r), "rule_name": RULE_NAMES[r], "rule_title": t}
                for r, t in RULE_TITLES.items()
            ],
            "severities": [str(s) for s in Severity],
            "statuses": [str(s) for s in AlertStatus],
            "workflows": [str(w) for w in Workflow],
            "outcomes": [str(o) for o in Outcome],
            "time_zone": "Europe/London",
        }
    )


async def _list_alerts(request: web.Request) -> web.Response:
    query = request.query
    try:
        filters = Filters.parse({k: query.getall(k) for k in set(query.keys())})
    except ValueError as exc:
        return _bad_request(str(exc))
    limit = MAX_LIST_LIMIT
    if "limit" in query:
        raw = query["limit"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST_LIMIT:
            return _bad_request(f"query parameter 'limit' must be 1 to {MAX_LIST_LIMIT}")
        limit = int(raw)
    state = request.app[HUB_FEED].state
    views = state.alerts(filters)
    return _json(
        {
            "version": state.version,
            "count": len(views),
            "truncated": len(views) > limit,
            "alerts": [v.to_dict() for v in views[:limit]],
        }
    )


async def _get_alert(request: web.Request) -> web.Response:
    view = request.app[HUB_FEED].state.alert(request.match_info["alert_id"])
    if view is None:
        return _json({"error": "no such alert"}, status=404)
    return _json(view.to_dict())


async def _post_action(request: web.Request) -> web.Response:
    principal: Principal = request[PRINCIPAL]
    alert_id = request.match_info["alert_id"]
    app = request.app
    if app[HUB_FEED].state.alert(alert_id) is None:
        return _json({"error": "no such alert"}, status=404)
    if request.content_type != "application/json":
        return _bad_request("the body must be JSON (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError:
        return _bad_request("the body is not valid JSON")
    users: UserStore = app[USERS]
    try:
        action = build_action(
            body,
            alert_id=alert_id,
            user=principal.user,
            at=app[_CLOCK](),
            action_id=str(uuid.uuid4()),
            assignees=users,
        )
    except InvalidAction as exc:
        return _bad_request(exc.reason)
    try:
        await app[_PUBLISH](action)
    except Exception as exc:
        log.error(
            "hub_action_publish_failed",
            alert_id=alert_id,
            kind=str(action.kind),
            error=type(exc).__name__,
        )
        return _json({"error": "the action could not be recorded; try again"}, status=503)
    log.info(
        "hub_action_published",
        alert_id=alert_id,
        action_id=action.action_id,
        kind=str(action.kind),
        user=principal.user,
    )
    return _json({"status": "accepted", "action": action_to_dict(action)}, status=202)


async def _timeline(request: web.Request) -> web.Response:
    child_id = request.match_info["child_id"]
    if not child_id or len(child_id) > MAX_CHILD_ID:
        return _bad_request(f"a child id is 1 to {MAX_CHILD_ID} characters")
    timeline = request.app[HUB_FEED].state.timeline(child_id)
    return _json(
        {
            "child_id": timeline.child_id,
            "complete": timeline.complete,
            "entries": [e.to_dict() for e in timeline.entries],
        }
    )


async def _quality(request: web.Request) -> web.Response:
    raw = request.query.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 366:
        return _bad_request("query parameter 'days' must be 1 to 366")
    provider = request.app[_QUALITY]
    now = request.app[_CLOCK]()
    return _json(dict(provider(request.app[HUB_FEED].state, now, int(raw))))


async def _stream(request: web.Request) -> web.StreamResponse:
    """SSE: a ``snapshot`` of the board (:meth:`HubState.board`), then ``alert`` and
    ``timeline`` changes."""
    principal: Principal = request[PRINCIPAL]
    feed = request.app[HUB_FEED]
    sessions = request.app[SESSIONS]
    heartbeat: float = request.app[_OPTIONS]["heartbeat"]
    # Subscribe and take the snapshot with no await between: nothing can fall in the gap.
    sub = feed.broadcaster.subscribe(principal.session_key)
    state = feed.state
    snapshot = sse_message(
        "snapshot",
        {"version": state.version, "alerts": [v.to_dict() for v in state.board()]},
        state.version,
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a reverse proxy must not buffer the stream
        }
    )
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode() + snapshot)
        while True:
            items = await sub.get(heartbeat)
            if items is None:
                break
            if principal.session_key is not None and not sessions.alive(principal.session_key):
                break
            await response.write(b"".join(items) if items else KEEP_ALIVE)
    except ConnectionError:
        pass  # the page went away
    finally:
        feed.broadcaster.unsubscribe(sub)
    return response
